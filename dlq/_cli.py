"""``dlq``: operator commands (configuration from ``DLQ_*`` variables)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dlq._blocking import DLQService
from dlq._config import DLQConfig
from dlq._db import create_db_engine, migrate
from dlq._errors import DLQEntryNotFoundError, DLQError, DLQReplayError, DLQStateConflictError

app = typer.Typer(help="Temporal DLQ operator commands. Configuration comes from DLQ_* "
                       "variables (DLQ_TEMPORAL_ADDRESS, DLQ_DATABASE_URL, ...).",
                  no_args_is_help=True)
console = Console()
# Exit codes mirror the HTTP mapping of the errors, so scripts can branch on them.
EXIT_CODES = {DLQEntryNotFoundError: 4, DLQStateConflictError: 9, DLQReplayError: 5}


def _run(call: Callable[[DLQService], Any]) -> Any:
    with DLQService() as service:
        try:
            return call(service)
        except (DLQError, ValueError) as err:
            console.print(f"[red]{type(err).__name__}[/red]: {err}")
            raise typer.Exit(EXIT_CODES.get(type(err), 1)) from None


def _print_result(result: dict[str, Any]) -> None:
    table = Table(show_header=False)
    for key, value in result.items():
        table.add_row(key, value if isinstance(value, str) else json.dumps(value, default=str))
    console.print(table)


@app.command("migrate")
def migrate_cmd() -> None:
    """Create or upgrade the SQL schema (the worker also does this at start)."""
    url = DLQConfig.from_settings().database_url
    migrate(create_db_engine(url))
    console.print(f"schema at head on {url}")


@app.command()
def show(dlq_id: str,
         as_json: Annotated[bool, typer.Option("--json", help="Print raw JSON.")] = False) -> None:
    """Show one entry with its attempts and audit trail."""
    entry = _run(lambda s: s.get_entry(dlq_id))
    if entry is None:
        console.print(f"[red]DLQEntryNotFoundError[/red]: DLQ entry {dlq_id} not found")
        raise typer.Exit(EXIT_CODES[DLQEntryNotFoundError])
    if as_json:
        print(json.dumps(entry, indent=2))
        return
    events, attempts = entry.pop("audit_events"), entry.pop("attempts")
    _print_result(entry)
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
    _print_result(_run(lambda s: s.retry_entry(dlq_id)))


@app.command("force-redrive")
def force_redrive(
    dlq_id: str,
    actor: Annotated[str, typer.Option(help="Who is doing this (audited).")],
    reason: Annotated[str, typer.Option(help="Why (audited).")],
    ticket_url: Annotated[str | None, typer.Option(help="Change or incident ticket.")] = None,
) -> None:
    """Replay an entry past its cap with a fresh budget (audited)."""
    _print_result(_run(lambda s: s.force_redrive_entry(
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
        _print_result(_run(lambda s: s.resolve_entry(dlq_ids[0], notes, resolution_type, status)))
        return
    out = _run(lambda s: s.resolve_entries_batch(dlq_ids, resolution_type, status, notes))
    table = Table("id", "ok", "status / error")
    for r in out["results"]:
        table.add_row(r["id"], "yes" if r["success"] else "no",
                      r.get("current_status") or f"{r['error_type']}: {r['error']}")
    console.print(table)
    if out["failed"]:
        raise typer.Exit(1)


outbox_app = typer.Typer(help="The local outbox (DLQ_OUTBOX_PATH).", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("drain")
def outbox_drain(timeout: Annotated[float, typer.Option(help="Give up after N seconds.")] = 60.0
                 ) -> None:
    """Deliver every outbox record to Temporal now."""
    delivered = _run(lambda s: s.drain_outbox(timeout=timeout))
    stats = _run(lambda s: s.get_capture_stats())
    console.print(f"delivered {delivered}; {stats['outbox_depth']} left in {stats['outbox_path']}")
    if stats["outbox_depth"]:
        console.print(f"[yellow]last error[/yellow]: {stats['last_outbox_error']}")
        raise typer.Exit(1)


@outbox_app.command("stats")
def outbox_stats() -> None:
    """Outbox depth, oldest record age and failing records."""
    _print_result(_run(lambda s: s.get_capture_stats()))


@app.command()
def redrive(
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    failure_type: Annotated[str | None, typer.Option(help="Only this failure type.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Statuses (default: replayable).")
                      ] = None,
    actor: Annotated[str | None, typer.Option(help="Who is doing this (audited).")] = None,
    reason: Annotated[str, typer.Option(help="Why (audited).")] = "",
    rate: Annotated[float | None, typer.Option(help="At most N replays per second.")] = None,
    canary: Annotated[int, typer.Option(help="Replay N first; stop if too many fail.")] = 0,
    canary_min_success: float = 0.9,
    throttle: Annotated[bool, typer.Option(help="Adapt to the downstream (AIMD).")] = True,
    dry_run: Annotated[bool, typer.Option(help="Only show what would be replayed.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the end and show the result.")] = False,
) -> None:
    """Redrive many entries as a durable bulk replay (preview it with --dry-run)."""
    filters = {k: v for k, v in (("domain", domain), ("failure_type", failure_type),
                                 ("status", status)) if v}
    out = _run(lambda s: s.bulk_replay(
        filters, rate_per_second=rate, throttle=throttle, dry_run=dry_run, canary=canary,
        canary_min_success=canary_min_success, actor_id=actor, reason=reason))
    if dry_run:
        console.print(f"{out['count']} entries would be replayed")
        table = Table("domain", "failure type", "count")
        for row in out["by_domain_failure_type"]:
            table.add_row(row["domain"], row["failure_type"], str(row["count"]))
        console.print(table)
        return
    console.print(f"started {out['workflow_id']} over {out['total']} entries")
    if wait:
        _print_result(_run(lambda s: s.wait_bulk_replay(out["workflow_id"])).model_dump(
            mode="json"))


@app.command("redrive-status")
def redrive_status(workflow_id: str) -> None:
    """Progress of a bulk redrive."""
    _print_result(_run(lambda s: s.get_bulk_replay(workflow_id)).model_dump(mode="json"))


@app.command("redrive-control")
def redrive_control(workflow_id: str,
                    command: Annotated[str, typer.Argument(help="pause, resume or cancel")]
                    ) -> None:
    """Pause, resume or cancel a bulk redrive."""
    _run(lambda s: s.signal_bulk_replay(workflow_id, command))
    console.print(f"sent {command} to {workflow_id}")


@app.command("create-test-entry")
def create_test_entry(domain: str = "test", failure_type: str = "TEST_FAILURE",
                      created_by: str = "cli") -> None:
    """Store a synthetic entry through the production path."""
    out = _run(lambda s: s.create_test_entry(domain, failure_type, created_by=created_by))
    _print_result(out)
    if not out["success"]:
        raise typer.Exit(1)
