"""``dlq worker``: run the DLQ worker (the same as ``dlq-worker`` and ``python worker.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from dlq._cli._common import app


@app.command("worker")
def worker_cmd(
    handlers: Annotated[str, typer.Option(help="Comma-separated modules that register replay "
                                               "handlers (added to DLQ_HANDLER_MODULES).")] = "",
) -> None:
    """Run the DLQ worker with the configuration from DLQ_* variables, until Ctrl-C."""
    from dlq._worker import main

    main(["--handlers", handlers])
