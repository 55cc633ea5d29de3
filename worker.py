"""The DLQ worker: ``python worker.py [--handlers pkg.mod,other.mod]``."""

from __future__ import annotations

import asyncio
import logging

import typer

from dlq import DLQConfig
from dlq._worker import run_worker


def main(
    handlers: str = typer.Option("", help="Comma-separated modules that register replay "
                                          "handlers (added to DLQ_HANDLER_MODULES)."),
) -> None:
    """Run the DLQ worker with the configuration from DLQ_* variables."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    modules = [m.strip() for m in handlers.split(",") if m.strip()]
    try:
        asyncio.run(run_worker(DLQConfig.from_settings(), handler_modules=modules))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    typer.run(main)
