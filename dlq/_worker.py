"""Building and running the DLQ worker (``worker.py``, ``dlq-worker``, ``dlq worker``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import py_compile
import signal
import socket
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import ModuleType

from sqlalchemy.engine import Engine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
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

from dlq._alert_schedule import ensure_alerts_schedule
from dlq._config import DLQConfig
from dlq._connect import (
    connect,
    describe,
    environment_hooks,
    environment_keys,
    worker_interceptors,
)
from dlq._db import create_db_engine, migrate
from dlq._exposition import sdk_metrics_runtime, serve_worker_metrics
from dlq._handlers import import_handler_modules, registry
from dlq._messages import MaintenanceInput
from dlq._sandbox import workflow_runner
from dlq._sealed import attach_key_ring
from dlq._service import AsyncDLQService
from dlq._sql import SQLModelRepository
from dlq._temporal import MAINTENANCE_SCHEDULE_ID, MAINTENANCE_WORKFLOW, ensure_search_attributes

__all__ = ["build_worker", "check_health", "ensure_maintenance_schedule", "main", "run_relay",
           "run_worker", "serve", "serve_relay"]

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
        config: Configuration: what the maintenance activities use, the
            worker interceptors of its hooks and ``shutdown_grace`` (defaults
            otherwise). The data converter, client interceptors and plugins
            come with ``client``.
        max_concurrent_activities: Also the size of the sync-activity thread pool.
    """
    from dlq.activities.alerts import AlertActivities
    from dlq.activities.bulk import BulkActivities
    from dlq.activities.entry import EntryActivities
    from dlq.activities.maintenance import MaintenanceActivities
    from dlq.workflows.alerts import DLQAlertsWorkflow
    from dlq.workflows.bulk import BulkReplayWorkflow
    from dlq.workflows.entry import DLQEntryWorkflow
    from dlq.workflows.maintenance import DLQMaintenanceWorkflow

    _cache_workflow_bytecode(*(sys.modules[cls.__module__] for cls in
                               (DLQEntryWorkflow, DLQMaintenanceWorkflow, BulkReplayWorkflow,
                                DLQAlertsWorkflow)))
    # Without a configuration, the hooks and keys still come from DLQ_TEMPORAL_HOOKS and
    # DLQ_ENCRYPTION_KEYS, as the client's do.
    config = dataclasses.replace(config or DLQConfig(temporal_hooks=environment_hooks(),
                                                     encryption_keys=environment_keys()),
                                 task_queue=task_queue)
    if config.key_ring is not None:  # the activities write and read sealed data columns
        attach_key_ring(engine, config.key_ring)
    # DLQ_METRICS_PORT=0: this worker neither serves nor counts dlq_* metrics.
    entry = EntryActivities(engine, metrics=config.metrics_port != 0,
                            grouping=config.grouping_enabled, redactor=config.redactor)
    alerts = AlertActivities(engine, config)
    service = AsyncDLQService(config, SQLModelRepository(engine), client=client)
    maintenance = MaintenanceActivities(service)
    bulk = BulkActivities(service)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[DLQEntryWorkflow, DLQMaintenanceWorkflow, BulkReplayWorkflow,
                   DLQAlertsWorkflow],
        activities=[entry.persist_entry, entry.run_replay_handler,
                    maintenance.maintenance_cleanup, maintenance.maintenance_purge,
                    bulk.freeze_bulk_set, bulk.replay_bulk_page,
                    alerts.evaluate_alerts, alerts.deliver_alert, alerts.finish_alert],
        workflow_runner=workflow_runner(),
        interceptors=worker_interceptors(config),
        # persist_entry is a sync activity (SQLAlchemy); it runs in this pool.
        activity_executor=ThreadPoolExecutor(max_workers=max_concurrent_activities,
                                             thread_name_prefix="dlq-activity"),
        max_concurrent_activities=max_concurrent_activities,
        # Heartbeats (and the cancels their answers bring) reach the server at
        # least every 0.5 s, so a bulk redrive's pause or cancel acts within a
        # second mid-page (the default is 80 % of the heartbeat timeout).
        max_heartbeat_throttle_interval=timedelta(milliseconds=500),
        # On shutdown, running replays get this long to finish before they are cancelled.
        graceful_shutdown_timeout=timedelta(seconds=config.shutdown_grace),
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
                     ready: asyncio.Event | None = None,
                     stop: asyncio.Event | None = None) -> None:
    """Migrate, register search attributes and the schedule, drain the outbox, run the worker.

    Runs until ``stop`` is set (or the task is cancelled), then shuts down
    gracefully: it stops polling, lets running replays finish within
    ``config.shutdown_grace`` seconds, drains the outbox relay with what is
    left of that time, and logs each step.

    Args:
        config: Where Temporal and SQL are.
        handler_modules: Extra modules to import (beside ``config.handler_modules``).
        ready: Set once the worker polls.
        stop: Set to shut down.
    """
    stop = stop or asyncio.Event()
    modules = import_handler_modules([*config.handler_modules, *handler_modules])
    engine = create_db_engine(config.database_url, key_ring=config.key_ring)
    migrate(engine)
    client = await connect(config, runtime=sdk_metrics_runtime(config.sdk_metrics_port))
    await ensure_search_attributes(client, config.namespace)
    if config.maintenance_enabled:
        await ensure_maintenance_schedule(client, config)
    await ensure_alerts_schedule(client, config)
    worker = build_worker(client, task_queue=config.task_queue, engine=engine, config=config)
    # Drain the outbox this worker is pointed at (entries stored while Temporal was away).
    relay_service = AsyncDLQService(config, SQLModelRepository(engine), client=client)
    relay_service.start_relay()
    metrics_server = serve_worker_metrics(config, engine, relay_service.outbox)
    log.info("DLQ worker on %s task queue %r; handlers from %s: %s", describe(config),
             config.task_queue, modules or "-", registry.keys() or "none")
    running = asyncio.create_task(worker.run(), name="dlq-worker")
    try:
        if ready is not None:
            ready.set()
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if running.done():  # the worker failed by itself: no graceful path
            running.result()
            return
        await _shut_down(config, worker, running, relay_service)
    finally:
        if not running.done():
            running.cancel()
        if metrics_server is not None:
            metrics_server.shutdown()
        await relay_service.close()
        engine.dispose()


async def _shut_down(config: DLQConfig, worker: Worker, running: asyncio.Task[None],
                     relay_service: AsyncDLQService) -> None:
    """Stop polling, let running activities finish, drain the relay; bounded by the grace."""
    grace = config.shutdown_grace
    deadline = time.monotonic() + grace
    log.info("shutdown: no new tasks from task queue %r; waiting up to %gs for running "
             "replays and other activities", config.task_queue, grace)
    started = time.monotonic()
    # The SDK cancels activities still running after graceful_shutdown_timeout
    # (= the grace); the margin covers reporting their results to the server.
    await asyncio.wait_for(worker.shutdown(), timeout=grace + 10)
    await running
    log.info("shutdown: running activities finished in %.1fs; their results are recorded "
             "in Temporal", time.monotonic() - started)
    await relay_service.close()  # the background relay; drained once more below
    depth = (await relay_service.get_capture_stats())["outbox_depth"]
    if depth:
        left = max(0.0, deadline - time.monotonic())
        delivered = await relay_service.drain_outbox(timeout=left)
        depth = (await relay_service.get_capture_stats())["outbox_depth"]
        log.info("shutdown: relay delivered %d outbox records in the remaining %.1fs; "
                 "%d left for the next worker", delivered, left, depth)
    else:
        log.info("shutdown: outbox %s is empty", config.outbox_path)
    log.info("shutdown: DLQ worker stopped")


# A polling worker renews its long poll at least this often (the server holds
# one for about a minute); an older last poll means a stuck or stopped worker.
POLL_FRESHNESS = 90.0


def _alive_here(identity: str) -> bool:
    """Whether ``<pid>@<hostname>`` (the SDK's worker identity) is a live process of this host."""
    pid, _, host = identity.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    return True


async def check_health(config: DLQConfig, *, timeout: float = 5.0) -> bool:
    """Whether a live worker of this host polls ``config.task_queue`` for workflows and activities.

    The SDK names a worker ``<pid>@<hostname>``; in a container the hostname
    is the container's, so this is the container's own worker (the image's
    ``HEALTHCHECK``). Its last poll must be recent: the server remembers
    pollers for minutes after they stopped.
    """
    client = await asyncio.wait_for(connect(config), timeout)
    now = time.time()
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(namespace=config.namespace,
                                     task_queue=TaskQueue(name=config.task_queue),
                                     task_queue_type=kind),
            timeout=timedelta(seconds=timeout))
        if not any(_alive_here(p.identity)
                   and now - p.last_access_time.ToSeconds() < POLL_FRESHNESS
                   for p in response.pollers):
            return False
    return True


def _stop_on_signals(grace: float) -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT; a second one cancels the current task."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    assert main_task is not None

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s again: exiting without waiting for running work", sig.name)
            main_task.cancel()
            return
        log.info("%s received: shutting down gracefully (up to %gs; send it again to exit "
                 "at once)", sig.name, grace)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    return stop


async def serve(config: DLQConfig, handler_modules: Sequence[str] = ()) -> None:
    """:func:`run_worker` until SIGTERM or SIGINT (a second signal cancels the grace)."""
    stop = _stop_on_signals(config.shutdown_grace)
    await run_worker(config, handler_modules=handler_modules, stop=stop)


async def run_relay(config: DLQConfig, *, stop: asyncio.Event | None = None,
                    once: bool = False) -> int:
    """Deliver the outbox at ``config.outbox_path`` until ``stop`` (a relay process).

    For hosts whose web processes store with ``mode="async"`` and exit
    before their own relay delivered everything. On ``stop`` it delivers
    for up to ``config.shutdown_grace`` more seconds.

    Args:
        config: Configuration.
        stop: Set to stop (never, if None and not ``once``).
        once: Deliver what is there and return.

    Returns:
        How many records it delivered.
    """
    service = AsyncDLQService(config)
    try:
        if once:
            return await service.drain_outbox()
        relay = service.start_relay()
        log.info("relay: delivering %s to %s", config.outbox_path, describe(config))
        await (stop or asyncio.Event()).wait()
        await service.close()  # the background relay; one bounded drain instead
        await service.drain_outbox(timeout=config.shutdown_grace)
        depth = (await service.get_capture_stats())["outbox_depth"]
        log.info("relay: stopped after delivering %d records; %d left in %s",
                 relay.delivered, depth, config.outbox_path)
        return relay.delivered
    finally:
        await service.close()


async def serve_relay(config: DLQConfig, *, once: bool = False) -> int:
    """:func:`run_relay` until SIGTERM or SIGINT (or once)."""
    stop = _stop_on_signals(config.shutdown_grace)
    return await run_relay(config, stop=stop, once=once)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the DLQ worker with the configuration from ``DLQ_*`` variables.

    ``--handlers a.b,c.d`` adds modules that register replay handlers (beside
    ``DLQ_HANDLER_MODULES``). ``--check`` exits 0 if a worker on this host
    polls the task queue, 1 otherwise (a container health check). SIGTERM
    and SIGINT shut the worker down gracefully and it exits 0.
    """
    parser = argparse.ArgumentParser(prog="dlq-worker", description=main.__doc__)
    parser.add_argument("--handlers", default="",
                        help="Comma-separated modules that register replay handlers "
                             "(added to DLQ_HANDLER_MODULES).")
    parser.add_argument("--check", action="store_true",
                        help="Health check: exit 0 if a worker on this host polls the task "
                             "queue, else 1.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = DLQConfig.from_settings()
    if args.check:
        try:
            healthy = asyncio.run(check_health(config))
        except Exception as err:  # noqa: BLE001 - unhealthy, whatever the reason
            print(f"unhealthy: {type(err).__name__}: {err}", file=sys.stderr)
            sys.exit(1)
        print("healthy" if healthy else f"unhealthy: no poller from this host on task queue "
                                        f"{config.task_queue!r}", file=sys.stderr)
        sys.exit(0 if healthy else 1)
    modules = [m.strip() for m in args.handlers.split(",") if m.strip()]
    try:
        asyncio.run(serve(config, modules))
    except asyncio.CancelledError:
        sys.exit(1)  # a second signal cut the graceful shutdown short


if __name__ == "__main__":
    main()
