"""``dlq show|retry|force-redrive|resolve|create-test-entry``: one entry at a time."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from dlq._cli._common import EXIT_CODES, app, console, print_result, run
from dlq._errors import DLQEntryNotFoundError


@app.command()
def show(dlq_id: str,
         as_json: Annotated[bool, typer.Option("--json", help="Print raw JSON.")] = False) -> None:
    """Show one entry with its attempts and audit trail."""
    entry = run(lambda s: s.get_entry(dlq_id))
    if entry is None:
        console.print(f"[red]DLQEntryNotFoundError[/red]: DLQ entry {dlq_id} not found")
        raise typer.Exit(EXIT_CODES[DLQEntryNotFoundError])
    if as_json:
        print(json.dumps(entry, indent=2))
        return
    events, attempts = entry.pop("audit_events"), entry.pop("attempts")
    print_result(entry)
    table = Table("seq", "at", "action", "actor", "from", "to", "reason", title="audit trail")
    for e in events:
        table.add_row(str(e["seq"]), e["at"], e["action"], e["actor"] or "",
                      e["from_status"] or "", e["to_status"] or "", e["reason"])
    console.print(table)
    table = Table("#", "at", "trigger", "outcome", "ms", "error", title="attempts")
    for a in attempts:
        table.add_row(str(a["number"]), a["at"], a["trigger"], a["outcome"],
                      f"{a['duration_ms']:.0f}", a["error"] or "")
    console.print(table)


@app.command()
def retry(dlq_id: str) -> None:
    """Replay an entry now, within its retry budget."""
    print_result(run(lambda s: s.retry_entry(dlq_id)))


@app.command("force-redrive")
def force_redrive(
    dlq_id: str,
    actor: Annotated[str, typer.Option(help="Who is doing this (audited).")],
    reason: Annotated[str, typer.Option(help="Why (audited).")],
    ticket_url: Annotated[str | None, typer.Option(help="Change or incident ticket.")] = None,
) -> None:
    """Replay an entry past its cap with a fresh budget (audited)."""
    print_result(run(lambda s: s.force_redrive_entry(
        dlq_id, actor_id=actor, reason=reason, ticket_url=ticket_url)))


@app.command()
def resolve(
    dlq_ids: Annotated[list[str], typer.Argument(help="One or more entry ids.")],
    notes: str = "",
    status: Annotated[str, typer.Option(help="resolved or discarded")] = "resolved",
    resolution_type: str = "manual",
) -> None:
    """Close entries as resolved or discarded."""
    if len(dlq_ids) == 1:
        print_result(run(lambda s: s.resolve_entry(dlq_ids[0], notes, resolution_type, status)))
        return
    out = run(lambda s: s.resolve_entries_batch(dlq_ids, resolution_type, status, notes))
    table = Table("id", "ok", "status / error")
    for r in out["results"]:
        table.add_row(r["id"], "yes" if r["success"] else "no",
                      r.get("current_status") or f"{r['error_type']}: {r['error']}")
    console.print(table)
    if out["failed"]:
        raise typer.Exit(1)


@app.command("create-test-entry")
def create_test_entry(domain: str = "test", failure_type: str = "TEST_FAILURE",
                      created_by: str = "cli") -> None:
    """Store a synthetic entry through the production path."""
    out = run(lambda s: s.create_test_entry(domain, failure_type, created_by=created_by))
    print_result(out)
    if not out["success"]:
        raise typer.Exit(1)
