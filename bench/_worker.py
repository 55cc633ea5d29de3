"""The benchmark worker process: one real DLQ worker per side, plus the bare baseline worker.

Run by :mod:`bench._stack` as ``python -m bench._worker ...`` so the
benchmark client and the workers do not share a GIL. The sides
(:class:`bench._features.Side`: task queue, read model, ``DLQ_*`` settings)
come as JSON in ``DLQ_BENCH_SIDES_JSON`` (the environment, not the command
line, since they may hold a key ring). Each side gets its own client and
engine built from its settings, as a deployed worker with those settings
would; a side whose settings name a ``DLQ_METRICS_PORT`` also serves
``/metrics`` there. The file named by ``--ready-file`` is written once every
worker polls; SIGINT or SIGTERM shuts them down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

from temporalio.worker import Worker

from bench._bare import BareWorkflow, bare_noop
from bench._features import SIDES_ENV, Side, side_config
from dlq import DLQConfig
from dlq._connect import connect, environment_hooks
from dlq._db import create_db_engine, migrate
from dlq._exposition import serve_worker_metrics
from dlq._worker import build_worker


async def serve(*, address: str, bare_task_queue: str, ready_file: Path,
                sides: list[Side]) -> None:
    """Run every side's DLQ worker and the bare worker until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    # No activity executor: the baseline activity is async, like a cheap I/O call.
    workers = [Worker(await connect(address), task_queue=bare_task_queue,
                      workflows=[BareWorkflow], activities=[bare_noop])]
    cleanups: list[Any] = []
    for side in sides:
        config = side_config(DLQConfig(temporal_address=address, task_queue=side.task_queue,
                                       database_url=side.database_url,
                                       temporal_envconfig=False,
                                       temporal_hooks=environment_hooks()), side.settings)
        engine = create_db_engine(side.database_url, key_ring=config.key_ring)
        migrate(engine)
        cleanups.append(engine.dispose)
        workers.append(build_worker(await connect(config), task_queue=side.task_queue,
                                    engine=engine, config=config))
        # Counting needs only a port that is not 0; serve only where a side asked.
        server = serve_worker_metrics(config, engine, None) if side.metrics_port else None
        if server is not None:
            cleanups.append(server.shutdown)
    async with contextlib.AsyncExitStack() as running:
        for worker in workers:
            await running.enter_async_context(worker)
        # Written last and renamed, so the parent never reads a half-written file.
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(ready_file)
        await stop.wait()
    for cleanup in reversed(cleanups):
        cleanup()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="host:port of the Temporal frontend")
    parser.add_argument("--bare-task-queue", required=True)
    parser.add_argument("--ready-file", required=True, type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sides = [Side(**side) for side in json.loads(os.environ[SIDES_ENV])]
    asyncio.run(serve(address=args.address, bare_task_queue=args.bare_task_queue,
                      ready_file=args.ready_file, sides=sides))


if __name__ == "__main__":
    main()
