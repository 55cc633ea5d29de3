"""What every ``dlq`` command shares: the app, the console, running a call, exit codes.

Every command runs its service calls through :func:`run`: a failure prints
one line (what is wrong, and what to check) and exits with the code of
:data:`EXIT_CODES`; ``dlq --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlq._blocking import DLQService
from dlq._errors import (
    DLQCommandPendingError,
    DLQEntryNotFoundError,
    DLQError,
    DLQInvalidInputError,
    DLQReplayError,
    DLQStateConflictError,
    DLQUnavailableError,
    as_public_error,
)

__all__ = ["BAD_INPUT", "CONFLICT", "ERROR", "EXIT_CODES", "NOT_FOUND", "REPLAY_FAILED",
           "UNAVAILABLE", "ActorOption", "JsonOption", "app", "console", "default_actor",
           "exit_code", "fail", "print_json", "print_result", "run"]

app = typer.Typer(help="Temporal DLQ operator commands. Configuration comes from DLQ_* "
                       "variables (DLQ_HOME, DLQ_TEMPORAL_ADDRESS, DLQ_DATABASE_URL, ...).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

# The exit codes, one table (docs/operating.md#exit-codes). They mirror the
# HTTP mapping of the errors, so scripts can branch on them.
ERROR = 1            # any other DLQ error, or an unexpected one
BAD_INPUT = 2        # a bad argument (also typer's own usage errors)
UNAVAILABLE = 3      # Temporal or SQL cannot be reached, SQL has no DLQ schema, or a
#                      command was sent but not confirmed (no worker, SQL behind)
NOT_FOUND = 4        # no such entry, bulk redrive or purge
REPLAY_FAILED = 5    # the replay ran and failed, or could not run (no handler)
CONFLICT = 9         # not allowed in the entry's state (closed, at its cap, replaying)
EXIT_CODES: dict[type[BaseException], int] = {
    DLQCommandPendingError: UNAVAILABLE,  # sent, not confirmed: check before repeating
    DLQEntryNotFoundError: NOT_FOUND,
    DLQStateConflictError: CONFLICT,
    DLQReplayError: REPLAY_FAILED,
    DLQUnavailableError: UNAVAILABLE,
    DLQInvalidInputError: BAD_INPUT,
    DLQError: ERROR,
    ValueError: BAD_INPUT,
}


class _State:
    debug = False


@app.callback()
def _main(debug: Annotated[bool, typer.Option(
        "--debug", help="Show the full traceback of an error.")] = False) -> None:
    """Temporal DLQ operator commands."""
    _State.debug = debug


def default_actor() -> str:
    """Who runs the command: the OS user (what ``--actor`` defaults to)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "cli"


ActorOption = Annotated[str, typer.Option(
    "--actor", default_factory=default_actor, show_default="the OS user",
    help="Who is doing this (recorded in the audit trail).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def exit_code(err: BaseException) -> int:
    """The exit code of an error (its class or nearest base in :data:`EXIT_CODES`)."""
    for cls in type(err).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ERROR


def fail(message: str, code: int) -> typer.Exit:
    """Print one error line and return the exit to raise."""
    err_console.print(f"[red]error[/red]: {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def run(call: Callable[[DLQService], Any]) -> Any:
    """Run ``call`` with a service; any failure prints one line and exits with its code."""
    service: DLQService | None = None
    try:
        service = DLQService()
        return call(service)
    except typer.Exit:
        raise
    except Exception as err:
        if _State.debug:
            raise
        config = service.config if service is not None else None
        public = as_public_error(err, database_url=config.database_url if config else "",
                                 temporal_address=config.temporal_address if config else "")
        if public is not None:
            raise fail(f"{type(public).__name__}: {public}", exit_code(public)) from None
        if isinstance(err, ValueError):
            raise fail(f"bad input: {_first_line(err)}", BAD_INPUT) from None
        raise fail(f"unexpected {type(err).__name__}: {_first_line(err)} "
                   "(run with --debug for the traceback)", ERROR) from None
    finally:
        if service is not None:
            service.close()


def _first_line(err: BaseException) -> str:
    """One line about ``err`` (a settings error names each bad variable)."""
    errors = getattr(err, "errors", None)
    if callable(errors) and type(err).__name__ == "ValidationError":
        try:
            return "; ".join(_setting_error(e) for e in errors())
        except (TypeError, KeyError):
            pass
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _setting_error(error: dict[str, Any]) -> str:
    message = error["msg"].removeprefix("Value error, ")
    name = f"DLQ_{'.'.join(map(str, error['loc'])).upper()}"
    return message if message.startswith(name) else f"{name}: {message}"


describe = _first_line


def print_json(value: Any) -> None:
    """Print a value as indented JSON (plain stdout, so it pipes into ``jq``)."""
    print(json.dumps(value, indent=2, default=str))


def print_result(result: dict[str, Any]) -> None:
    """Print a result dict as a two-column table."""
    table = Table(show_header=False)
    for key, value in result.items():
        table.add_row(key, escape(value if isinstance(value, str)
                                  else json.dumps(value, default=str)))
    console.print(table)
