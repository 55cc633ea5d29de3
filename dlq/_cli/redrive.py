"""``dlq redrive|redrive-status|redrive-control``: bulk redrives.

A redrive is named by its workflow id (``dlq-bulk-<hex>``) or the bare
``bulk_id`` that ``dlq redrive`` prints.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dlq._cli._common import (
    ActorOption,
    JsonOption,
    app,
    console,
    print_json,
    print_result,
    run,
)

BulkArgument = Annotated[str, typer.Argument(
    metavar="REDRIVE", help="dlq-bulk-<hex> or the bulk id `dlq redrive` printed.")]


@app.command()
def redrive(
    actor: ActorOption,
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    failure_type: Annotated[str | None, typer.Option(help="Only this failure type.")] = None,
    group: Annotated[str | None, typer.Option(
        help="Only this failure group (its fingerprint, see `dlq groups`).")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Statuses (default: replayable).")
                      ] = None,
    reason: Annotated[str, typer.Option(help="Why (audited on every entry).")] = "",
    rate: Annotated[float | None, typer.Option(help="At most N replays per second.")] = None,
    canary: Annotated[int, typer.Option(help="Replay N first; stop if too many fail.")] = 0,
    canary_min_success: float = 0.9,
    throttle: Annotated[bool, typer.Option(help="Adapt to the downstream (AIMD).")] = True,
    dry_run: Annotated[bool, typer.Option(help="Only show what would be replayed.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the end and show the result.")] = False,
) -> None:
    """Redrive many entries as a durable bulk replay (preview it with --dry-run)."""
    filters = {k: v for k, v in (("domain", domain), ("failure_type", failure_type),
                                 ("group", group), ("status", status)) if v}
    out = run(lambda s: s.bulk_replay(
        filters, rate_per_second=rate, throttle=throttle, dry_run=dry_run, canary=canary,
        canary_min_success=canary_min_success, actor_id=actor, reason=reason))
    if dry_run:
        console.print(f"{out['count']} entries would be replayed")
        table = Table("domain", "failure type", "count")
        for row in out["by_domain_failure_type"]:
            table.add_row(row["domain"], row["failure_type"], str(row["count"]))
        console.print(table)
        return
    console.print(f"started {out['workflow_id']} (bulk id {out['bulk_id']}) over "
                  f"{out['total']} entries; follow it with: dlq redrive-status "
                  f"{out['bulk_id']}", soft_wrap=True)
    if wait:
        print_result(run(lambda s: s.wait_bulk_replay(out["workflow_id"])).model_dump(
            mode="json"))


@app.command("redrive-status")
def redrive_status(workflow_id: BulkArgument, as_json: JsonOption = False) -> None:
    """Progress of a bulk redrive (while it runs, also mid-page, and after it ended)."""
    out = run(lambda s: s.get_bulk_replay(workflow_id)).model_dump(mode="json")
    if as_json:
        print_json(out)
        return
    print_result(out)


@app.command("redrive-control")
def redrive_control(workflow_id: BulkArgument,
                    command: Annotated[str, typer.Argument(help="pause, resume or cancel")]
                    ) -> None:
    """Pause, resume or cancel a bulk redrive (acts within a second, also mid-page)."""
    wid = run(lambda s: (s.signal_bulk_replay(workflow_id, command),
                         s.bulk_workflow_id(workflow_id))[1])
    console.print(f"sent {command} to {wid}")
