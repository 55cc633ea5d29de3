"""The benchmark worker process: the real DLQ worker plus the bare baseline worker.

Run by :mod:`bench._stack` as ``python -m bench._worker ...`` so the
benchmark client and the workers do not share a GIL. Both workers share one
client, as one deployed worker process would. The file named by
``--ready-file`` is written once both poll; SIGINT or SIGTERM shuts them down.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from temporalio.worker import Worker

from bench._bare import BareWorkflow, bare_noop
from dlq._config import DLQConfig
from dlq._connect import connect
from dlq._db import create_db_engine, migrate
from dlq._worker import build_worker


async def serve(*, address: str, database_url: str, dlq_task_queue: str,
                bare_task_queue: str, ready_file: Path, ungrouped_task_queue: str = "") -> None:
    """Run both workers until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    engine = create_db_engine(database_url)
    migrate(engine)
    client = await connect(address)
    dlq_worker = build_worker(client, task_queue=dlq_task_queue, engine=engine)
    # No activity executor: the baseline activity is async, like a cheap I/O call.
    bare_worker = Worker(client, task_queue=bare_task_queue, workflows=[BareWorkflow],
                         activities=[bare_noop])
    # The same DLQ worker with failure grouping off (bench/store.py compares the two).
    ungrouped = build_worker(client, task_queue=ungrouped_task_queue or f"{dlq_task_queue}-u",
                             engine=engine, config=DLQConfig(grouping_enabled=False))
    async with dlq_worker, bare_worker, ungrouped:
        # Written last and renamed, so the parent never reads a half-written file.
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(ready_file)
        await stop.wait()
    engine.dispose()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="host:port of the Temporal frontend")
    parser.add_argument("--database-url", required=True, help="SQLAlchemy URL of the DLQ store")
    parser.add_argument("--dlq-task-queue", required=True)
    parser.add_argument("--bare-task-queue", required=True)
    parser.add_argument("--ready-file", required=True, type=Path)
    parser.add_argument("--ungrouped-task-queue", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(address=args.address, database_url=args.database_url,
                      dlq_task_queue=args.dlq_task_queue, bare_task_queue=args.bare_task_queue,
                      ready_file=args.ready_file,
                      ungrouped_task_queue=args.ungrouped_task_queue))


if __name__ == "__main__":
    main()
