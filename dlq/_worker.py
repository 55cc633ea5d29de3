"""Building and running the DLQ worker (``worker.py`` only calls this)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from dlq._config import DLQConfig
from dlq._db import create_db_engine, migrate
from dlq._handlers import import_handler_modules, registry
from dlq._temporal import connect, ensure_search_attributes

__all__ = ["build_worker", "run_worker"]

log = logging.getLogger("dlq.worker")


def build_worker(client: Client, *, task_queue: str, engine: Engine,
                 max_concurrent_activities: int = 64) -> Worker:
    """A worker running ``DLQEntryWorkflow`` and its activities on ``task_queue``."""
    from activities.entry import EntryActivities
    from workflows.entry import DLQEntryWorkflow

    acts = EntryActivities(engine)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[DLQEntryWorkflow],
        activities=[acts.persist_entry, acts.run_replay_handler],
        # persist_entry is a sync activity (SQLAlchemy); it runs in this pool.
        activity_executor=ThreadPoolExecutor(max_workers=max_concurrent_activities,
                                             thread_name_prefix="dlq-activity"),
        max_concurrent_activities=max_concurrent_activities,
    )


async def run_worker(config: DLQConfig, *, handler_modules: Sequence[str] = (),
                     ready: asyncio.Event | None = None) -> None:
    """Migrate the schema, register search attributes and run the worker until cancelled.

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
    worker = build_worker(client, task_queue=config.task_queue, engine=engine)
    log.info("DLQ worker on %s/%s task queue %r; handlers from %s: %s",
             config.temporal_address, config.namespace, config.task_queue,
             modules or "-", registry.keys() or "none")
    async with worker:
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
