"""What every ``dlq`` command shares: the app, the console, running a call, printing results."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dlq._blocking import DLQService
from dlq._errors import DLQEntryNotFoundError, DLQError, DLQReplayError, DLQStateConflictError

__all__ = ["EXIT_CODES", "app", "console", "print_result", "run"]

app = typer.Typer(help="Temporal DLQ operator commands. Configuration comes from DLQ_* "
                       "variables (DLQ_TEMPORAL_ADDRESS, DLQ_DATABASE_URL, ...).",
                  no_args_is_help=True)
console = Console()
# Exit codes mirror the HTTP mapping of the errors, so scripts can branch on them.
EXIT_CODES: dict[type[Exception], int] = {DLQEntryNotFoundError: 4, DLQStateConflictError: 9,
                                          DLQReplayError: 5}


def run(call: Callable[[DLQService], Any]) -> Any:
    """Run ``call`` with a service; a DLQ error prints one line and exits with its code."""
    with DLQService() as service:
        try:
            return call(service)
        except (DLQError, ValueError) as err:
            console.print(f"[red]{type(err).__name__}[/red]: {err}")
            raise typer.Exit(EXIT_CODES.get(type(err), 1)) from None


def print_result(result: dict[str, Any]) -> None:
    """Print a result dict as a two-column table."""
    table = Table(show_header=False)
    for key, value in result.items():
        table.add_row(key, value if isinstance(value, str) else json.dumps(value, default=str))
    console.print(table)
