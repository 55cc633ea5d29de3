"""The benchmark worker process: the real DLQ worker plus the bare baseline worker.

Run by :mod:`bench._stack` as ``python -m bench._worker ...`` so the
benchmark client and the workers do not share a GIL. Both workers share one
client, as one deployed worker process would. The file named by
``--ready-file`` is written once both poll; SIGINT or SIGTERM shuts them down.
With ``--secure-task-queue`` a third worker serves the benchmark's secure side
(:mod:`bench._secure`: the settings in ``DLQ_BENCH_SECURE_SETTINGS_JSON``) on
its own client and read model.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
from pathlib import Path

from temporalio.worker import Worker

from bench._bare import BareWorkflow, bare_noop
from bench._secure import secure_config
from dlq import DLQConfig
from dlq._connect import connect, environment_hooks
from dlq._db import create_db_engine, migrate
from dlq._exposition import serve_worker_metrics
from dlq._worker import build_worker


async def serve(*, address: str, database_url: str, dlq_task_queue: str,
                bare_task_queue: str, ready_file: Path, metrics_port: int = 0,
                no_metrics_task_queue: str = "", secure_task_queue: str | None = None,
                secure_database_url: str | None = None) -> None:
    """Run both workers until SIGINT or SIGTERM.

    With ``metrics_port``, the DLQ worker counts and serves ``/metrics`` there
    (as ``DLQ_METRICS_PORT`` does), and a second DLQ worker on
    ``no_metrics_task_queue`` runs with metrics off (bench/store.py compares them).
    With ``secure_task_queue``, a DLQ worker with the secure settings serves it.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    engine = create_db_engine(database_url)
    migrate(engine)
    client = await connect(address)
    # Without metrics_port the worker counts as deployed workers do (DLQ_METRICS_PORT's
    # default) but serves nothing.
    config = DLQConfig(temporal_address=address, database_url=database_url,
                       temporal_hooks=environment_hooks(),
                       **({"metrics_port": metrics_port} if metrics_port else {}))
    dlq_worker = build_worker(client, task_queue=dlq_task_queue, engine=engine, config=config)
    workers = [dlq_worker]
    server = None
    if metrics_port:
        server = serve_worker_metrics(config, engine, None)
        if no_metrics_task_queue:
            workers.append(build_worker(client, task_queue=no_metrics_task_queue, engine=engine,
                                        config=dataclasses.replace(config, metrics_port=0)))
    # No activity executor: the baseline activity is async, like a cheap I/O call.
    bare_worker = Worker(client, task_queue=bare_task_queue, workflows=[BareWorkflow],
                         activities=[bare_noop])
    async with contextlib.AsyncExitStack() as running:
        for worker in (*workers, bare_worker):
            await running.enter_async_context(worker)
        if secure_task_queue and secure_database_url:
            await running.enter_async_context(await _secure_worker(
                address, secure_task_queue, secure_database_url))
        # Written last and renamed, so the parent never reads a half-written file.
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(ready_file)
        await stop.wait()
    if server is not None:
        server.shutdown()
    engine.dispose()


async def _secure_worker(address: str, task_queue: str, database_url: str) -> Worker:
    """The DLQ worker of the secure side: its settings, client and read model."""
    settings = json.loads(os.environ["DLQ_BENCH_SECURE_SETTINGS_JSON"])
    config = secure_config(DLQConfig(temporal_address=address, task_queue=task_queue,
                                     database_url=database_url, temporal_envconfig=False),
                           settings)
    engine = create_db_engine(database_url, key_ring=config.key_ring)
    migrate(engine)
    client = await connect(config)
    return build_worker(client, task_queue=task_queue, engine=engine, config=config)


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="host:port of the Temporal frontend")
    parser.add_argument("--database-url", required=True, help="SQLAlchemy URL of the DLQ store")
    parser.add_argument("--dlq-task-queue", required=True)
    parser.add_argument("--bare-task-queue", required=True)
    parser.add_argument("--ready-file", required=True, type=Path)
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="serve /metrics here and count (0: metrics off)")
    parser.add_argument("--no-metrics-task-queue", default="",
                        help="with --metrics-port: a second DLQ worker with metrics off")
    parser.add_argument("--secure-task-queue")
    parser.add_argument("--secure-database-url")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(address=args.address, database_url=args.database_url,
                      dlq_task_queue=args.dlq_task_queue, bare_task_queue=args.bare_task_queue,
                      ready_file=args.ready_file, metrics_port=args.metrics_port,
                      no_metrics_task_queue=args.no_metrics_task_queue,
                      secure_task_queue=args.secure_task_queue,
                      secure_database_url=args.secure_database_url))


if __name__ == "__main__":
    main()
