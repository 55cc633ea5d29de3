"""``dlq outbox drain|stats`` and ``dlq outbox quarantine list|show|delete``: the local outbox."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dlq._cli._common import JsonOption, app, console, print_json, print_result, run

outbox_app = typer.Typer(help="The local outbox (DLQ_OUTBOX_PATH).", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
quarantine_app = typer.Typer(help="Outbox records Temporal refused for good (kept for you).",
                             no_args_is_help=True)
outbox_app.add_typer(quarantine_app, name="quarantine")

# A shown record clips long texts (a quarantined record is often one with a huge field).
_CLIP = 200


@outbox_app.command("drain")
def outbox_drain(timeout: Annotated[float, typer.Option(help="Give up after N seconds.")] = 60.0
                 ) -> None:
    """Deliver every outbox record to Temporal now."""
    delivered = run(lambda s: s.drain_outbox(timeout=timeout))
    stats = run(lambda s: s.get_capture_stats())
    console.print(f"delivered {delivered}; {stats['outbox_depth']} left in {stats['outbox_path']}")
    if stats["quarantined"]:
        console.print(f"[yellow]{stats['quarantined']} quarantined[/yellow]: "
                      "see dlq outbox quarantine list")
    if stats["outbox_depth"]:
        console.print(f"[yellow]last error[/yellow]: {stats['last_outbox_error']}")
        raise typer.Exit(1)


@outbox_app.command("stats")
def outbox_stats() -> None:
    """Outbox depth, oldest record age, failing and quarantined records, the circuit breaker."""
    print_result(run(lambda s: s.get_capture_stats()))


@quarantine_app.command("list")
def quarantine_list(
        limit: Annotated[int, typer.Option(help="At most N records, newest first.")] = 100,
        as_json: JsonOption = False) -> None:
    """The quarantined records: id, domain, failure type, size and why Temporal refused them."""
    records = run(lambda s: s.list_quarantined(limit=limit))
    if as_json:
        print_json(records)
        return
    if not records:
        console.print("no quarantined outbox records")
        return
    table = Table("domain", "failure_type", "size", "quarantined_at", "reason")
    table.add_column("dlq_id", no_wrap=True)  # whole, to paste into show or delete
    for r in records:
        table.add_row(escape(str(r["domain"])), escape(str(r["failure_type"])),
                      f"{r['size_bytes']:,} B", r["quarantined_at"], escape(r["reason"]),
                      r["dlq_id"])
    console.print(table)


@quarantine_app.command("show")
def quarantine_show(
        dlq_id: Annotated[str, typer.Argument(help="The record's dlq_id.")],
        full: Annotated[bool, typer.Option(
            "--full", help=f"Do not clip texts longer than {_CLIP} characters.")] = False,
        as_json: JsonOption = False) -> None:
    """One quarantined record with the entry's fields, for inspection (exit 4 if none)."""
    record = run(lambda s: s.get_quarantined(dlq_id))
    if not full:
        record = _clipped(record)
    if as_json:
        print_json(record)
    else:
        print_result(record)


@quarantine_app.command("delete")
def quarantine_delete(dlq_id: Annotated[str, typer.Argument(help="The record's dlq_id.")]
                      ) -> None:
    """Delete a quarantined record for good (exit 4 if none)."""
    run(lambda s: s.delete_quarantined(dlq_id))
    console.print(f"deleted quarantined outbox record {escape(dlq_id)}")


def _clipped(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _CLIP:
        return f"{value[:_CLIP]}... ({len(value):,} characters; --full shows all)"
    if isinstance(value, dict):
        return {k: _clipped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clipped(v) for v in value]
    return value
