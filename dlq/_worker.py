"""Building and running the DLQ worker (``worker.py``, ``dlq-worker``, ``dlq worker``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import py_compile
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import ModuleType

from sqlalchemy.engine import Engine
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.worker import Worker

from dlq._config import DLQConfig
from dlq._db import create_db_engine, migrate
from dlq._handlers import import_handler_modules, registry
from dlq._messages import MaintenanceInput
from dlq._sandbox import CachedCodeSandboxedWorkflowRunner
from dlq._service import AsyncDLQService
from dlq._sql import SQLModelRepository
from dlq._temporal import (
    MAINTENANCE_SCHEDULE_ID,
    MAINTENANCE_WORKFLOW,
    connect,
    ensure_search_attributes,
)

__all__ = ["build_worker", "ensure_maintenance_schedule", "main", "run_worker"]

log = logging.getLogger("dlq.worker")


def _cache_workflow_bytecode(*modules: ModuleType) -> None:
    """Write the ``.pyc`` of each workflow module, even under ``PYTHONDONTWRITEBYTECODE``.

    The sandbox imports a workflow's module afresh for every run it starts;
    without a bytecode cache each of those imports compiles the source again
    (about 3 ms for ``workflows/entry.py``, a large share of a short entry's
    worker CPU). Reading a cache is always allowed; only writing is switched
    off, so write it once here. A read-only install just skips it.
    """
    for module in modules:
        if module.__file__:
            with contextlib.suppress(OSError, py_compile.PyCompileError):
                py_compile.compile(module.__file__, doraise=True)


def build_worker(client: Client, *, task_queue: str, engine: Engine,
                 config: DLQConfig | None = None,
                 max_concurrent_activities: int = 64) -> Worker:
    """A worker running the DLQ's workflows and activities on ``task_queue``.

    Args:
        client: Client with the pydantic data converter.
        task_queue: Task queue to poll.
        engine: Engine of the SQL read model.
        config: Configuration the maintenance activities use (defaults otherwise).
        max_concurrent_activities: Also the size of the sync-activity thread pool.
    """
    from dlq.activities.bulk import BulkActivities
    from dlq.activities.entry import EntryActivities
    from dlq.activities.maintenance import MaintenanceActivities
    from dlq.workflows.bulk import BulkReplayWorkflow
    from dlq.workflows.entry import DLQEntryWorkflow
    from dlq.workflows.maintenance import DLQMaintenanceWorkflow

    _cache_workflow_bytecode(*(sys.modules[cls.__module__] for cls in
                               (DLQEntryWorkflow, DLQMaintenanceWorkflow, BulkReplayWorkflow)))
    config = dataclasses.replace(config or DLQConfig(), task_queue=task_queue)
    entry = EntryActivities(engine)
    service = AsyncDLQService(config, SQLModelRepository(engine), client=client)
    maintenance = MaintenanceActivities(service)
    bulk = BulkActivities(service)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[DLQEntryWorkflow, DLQMaintenanceWorkflow, BulkReplayWorkflow],
        activities=[entry.persist_entry, entry.run_replay_handler,
                    maintenance.maintenance_cleanup, maintenance.maintenance_purge,
                    bulk.freeze_bulk_set, bulk.replay_bulk_page],
        workflow_runner=CachedCodeSandboxedWorkflowRunner(),
        # persist_entry is a sync activity (SQLAlchemy); it runs in this pool.
        activity_executor=ThreadPoolExecutor(max_workers=max_concurrent_activities,
                                             thread_name_prefix="dlq-activity"),
        max_concurrent_activities=max_concurrent_activities,
        # Heartbeats (and the cancels their answers bring) reach the server at
        # least every 0.5 s, so a bulk redrive's pause or cancel acts within a
        # second mid-page (the default is 80 % of the heartbeat timeout).
        max_heartbeat_throttle_interval=timedelta(milliseconds=500),
    )


async def ensure_maintenance_schedule(client: Client, config: DLQConfig, *,
                                      schedule_id: str = MAINTENANCE_SCHEDULE_ID) -> bool:
    """Create the maintenance schedule unless it exists (safe from many workers at once).

    The schedule starts ``DLQMaintenanceWorkflow`` every
    ``config.maintenance_interval_hours``; overlapping runs are skipped. It
    shows under Schedules in the Web UI, where operators can also trigger it.

    Returns:
        True if this call created it.
    """
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            MAINTENANCE_WORKFLOW,
            MaintenanceInput(retention_days=config.retention_days,
                             purge_after_days=config.purge_after_days),
            id=schedule_id, task_queue=config.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(
            every=timedelta(hours=config.maintenance_interval_hours))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        return False
    log.info("created schedule %s (every %gh)", schedule_id,
             config.maintenance_interval_hours)
    return True


async def run_worker(config: DLQConfig, *, handler_modules: Sequence[str] = (),
                     ready: asyncio.Event | None = None) -> None:
    """Migrate, register search attributes and the schedule, drain the outbox, run the worker.

    Runs until cancelled.

    Args:
        config: Where Temporal and SQL are.
        handler_modules: Extra modules to import (beside ``config.handler_modules``).
        ready: Set once the worker polls.
    """
    modules = import_handler_modules([*config.handler_modules, *handler_modules])
    engine = create_db_engine(config.database_url)
    migrate(engine)
    client = await connect(config.temporal_address, config.namespace)
    await ensure_search_attributes(client, config.namespace)
    if config.maintenance_enabled:
        await ensure_maintenance_schedule(client, config)
    worker = build_worker(client, task_queue=config.task_queue, engine=engine, config=config)
    # Drain the outbox this worker is pointed at (entries stored while Temporal was away).
    relay_service = AsyncDLQService(config, SQLModelRepository(engine), client=client)
    relay_service.start_relay()
    log.info("DLQ worker on %s/%s task queue %r; handlers from %s: %s",
             config.temporal_address, config.namespace, config.task_queue,
             modules or "-", registry.keys() or "none")
    async with worker:
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the DLQ worker with the configuration from ``DLQ_*`` variables.

    ``--handlers a.b,c.d`` adds modules that register replay handlers (beside
    ``DLQ_HANDLER_MODULES``).
    """
    parser = argparse.ArgumentParser(prog="dlq-worker", description=main.__doc__)
    parser.add_argument("--handlers", default="",
                        help="Comma-separated modules that register replay handlers "
                             "(added to DLQ_HANDLER_MODULES).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    modules = [m.strip() for m in args.handlers.split(",") if m.strip()]
    try:
        asyncio.run(run_worker(DLQConfig.from_settings(), handler_modules=modules))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
