"""``dlq worker``: run the DLQ worker (the same as ``dlq-worker`` and ``python worker.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from dlq._cli._common import app


@app.command("worker")
def worker_cmd(
    handlers: Annotated[str, typer.Option(help="Comma-separated modules that register replay "
                                               "handlers (added to DLQ_HANDLER_MODULES).")] = "",
    check: Annotated[bool, typer.Option("--check", help="Health check: exit 0 if a worker on "
                                                        "this host polls the task queue.")] = False,
) -> None:
    """Run the DLQ worker with the configuration from DLQ_* variables, until SIGTERM or Ctrl-C."""
    from dlq._worker import main

    main(["--handlers", handlers, *(["--check"] if check else [])])
