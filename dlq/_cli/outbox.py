"""``dlq outbox drain|stats``: the local outbox."""

from __future__ import annotations

from typing import Annotated

import typer

from dlq._cli._common import app, console, print_result, run

outbox_app = typer.Typer(help="The local outbox (DLQ_OUTBOX_PATH).", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("drain")
def outbox_drain(timeout: Annotated[float, typer.Option(help="Give up after N seconds.")] = 60.0
                 ) -> None:
    """Deliver every outbox record to Temporal now."""
    delivered = run(lambda s: s.drain_outbox(timeout=timeout))
    stats = run(lambda s: s.get_capture_stats())
    console.print(f"delivered {delivered}; {stats['outbox_depth']} left in {stats['outbox_path']}")
    if stats["outbox_depth"]:
        console.print(f"[yellow]last error[/yellow]: {stats['last_outbox_error']}")
        raise typer.Exit(1)


@outbox_app.command("stats")
def outbox_stats() -> None:
    """Outbox depth, oldest record age and failing records."""
    print_result(run(lambda s: s.get_capture_stats()))
