"""Retention: expiring what is overdue, archiving and purging, and what would be done.

These functions are :class:`~dlq.AsyncDLQService` methods (the façade binds
them); ``service`` is the instance.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio.service import RPCError, RPCStatusCode

from dlq._checks import check_days, check_entry_id, check_limit, check_operator_text, now
from dlq._messages import MaintenanceInput, MaintenanceResult
from dlq._results import CleanupStats
from dlq._temporal import MAINTENANCE_WORKFLOW, workflow_id_for

if TYPE_CHECKING:
    from dlq._service import AsyncDLQService

__all__ = ["archive_old_entries", "cleanup_old_entries", "count_archived_older_than",
           "expire_entries", "find_purged_entry", "get_cleanup_stats", "get_purge",
           "list_purges", "purge_archived", "run_maintenance"]


async def expire_entries(service: AsyncDLQService, *, dry_run: bool = False) -> int:
    """Safety net: expire open entries past ``expires_at`` that their workflow missed.

    Signals each entry's workflow to expire; a row whose workflow no longer
    runs (an orphan) is expired in SQL directly. Drains in batches of
    ``config.batch_size``.

    Args:
        service: The service.
        dry_run: Only count what would be expired.

    Returns:
        How many entries were signalled or fixed (or would be).
    """
    at, after, handled = now(), "", 0
    while True:
        ids = await asyncio.to_thread(service.repository.expired_entry_ids, at, after,
                                      service.config.batch_size)
        if not ids:
            return handled
        if dry_run:
            handled += len(ids)
        else:
            handled += sum(await asyncio.gather(*(_expire_one(service, pk, at) for pk in ids)))
        after = ids[-1]


async def _expire_one(service: AsyncDLQService, pk: str, at: datetime) -> bool:
    client = await service.get_client()
    try:
        await client.get_workflow_handle(workflow_id_for(pk)).signal("expire")
        return True
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND and "completed" not in err.message:
            raise
    return await asyncio.to_thread(service.repository.mark_expired, pk, at)


async def archive_old_entries(service: AsyncDLQService, older_than_days: int = 30, *,
                              dry_run: bool = False, actor: str | None = None) -> int:
    """Archive closed entries (resolved, discarded, expired) closed over N days ago.

    Archived entries live only in SQL (their workflows are closed). Each one's
    audit trail records ``actor`` (``maintenance`` if None).

    Returns:
        How many entries were archived (or would be, with ``dry_run``).
    """
    days = check_days("older_than_days", older_than_days)
    check_operator_text(actor=actor)
    at = now()
    return await asyncio.to_thread(service.repository.archive_closed,
                                   at - timedelta(days=days), at, dry_run, actor)


async def purge_archived(service: AsyncDLQService, ids: list[str] | None = None,
                         older_than_days: int | None = None, *, dry_run: bool = False,
                         actor: str | None = None, reason: str = "") -> int:
    """Permanently delete archived entries and their audit events.

    Only ``archived`` entries are ever deleted. With both arguments, an
    entry must match both. A purge that deletes something keeps a record:
    who (``actor``, ``maintenance`` if None), when, why (``reason``), by
    which criteria, and a tombstone of each entry (:meth:`list_purges`,
    :meth:`get_purge`, :meth:`find_purged_entry`).

    Raises:
        ValueError: If neither ``ids`` nor ``older_than_days`` is given, ``ids``
            is not a list of ids (a string is not), or ``actor``/``reason``
            are over their limits.
    """
    if ids is None and older_than_days is None:
        raise ValueError("purge_archived needs ids or older_than_days; refusing to purge all")
    if ids is not None:
        if not isinstance(ids, list | tuple):
            raise ValueError(f"ids must be a list of entry ids, got {type(ids).__name__}")
        for index, pk in enumerate(ids):
            check_entry_id(pk, f"ids[{index}]")
    check_operator_text(actor=actor, reason=reason)
    cutoff = (None if older_than_days is None
              else now() - timedelta(days=check_days("older_than_days", older_than_days)))
    criteria: dict[str, Any] = {"older_than_days": older_than_days}
    if ids is not None:
        criteria["ids"] = len(ids)
    return await asyncio.to_thread(service.repository.purge_archived, ids, cutoff, dry_run,
                                   actor, reason, criteria)


async def list_purges(service: AsyncDLQService, limit: int = 20) -> list[dict[str, Any]]:
    """The newest purges first: id, time, actor, reason, criteria and count of each."""
    return await asyncio.to_thread(service.repository.list_purges, check_limit(limit))


async def get_purge(service: AsyncDLQService, purge_id: str,
                    limit: int = 1000) -> dict[str, Any] | None:
    """One purge with the tombstones (id, domain, failure type, times) of what it deleted."""
    return await asyncio.to_thread(service.repository.get_purge,
                                   check_entry_id(purge_id, "purge_id"), check_limit(limit))


async def find_purged_entry(service: AsyncDLQService, entry_id: str) -> dict[str, Any] | None:
    """The tombstone of a purged entry with its purge (who, when, why), or None."""
    return await asyncio.to_thread(service.repository.find_purged_entry,
                                   check_entry_id(entry_id, "entry_id"))


async def count_archived_older_than(service: AsyncDLQService, older_than_days: int) -> int:
    """How many archived entries are older than N days (a purge dry run)."""
    days = check_days("older_than_days", older_than_days)
    return await asyncio.to_thread(service.repository.count_archived_older_than,
                                   now() - timedelta(days=days))


async def cleanup_old_entries(service: AsyncDLQService, days_old: int = 30, *,
                              dry_run: bool = False) -> dict[str, int]:
    """Expire what is overdue, then archive closed entries older than ``days_old``.

    Returns:
        ``{"expired": n, "archived": m}`` (what would change, with ``dry_run``).
    """
    expired = await expire_entries(service, dry_run=dry_run)
    archived = await archive_old_entries(service, days_old, dry_run=dry_run)
    return {"expired": expired, "archived": archived}


async def get_cleanup_stats(service: AsyncDLQService) -> CleanupStats:
    """Age-bucketed counts of what retention maintenance would do now."""
    config = service.config
    counts: dict[str, Any] = await asyncio.to_thread(
        service.repository.cleanup_counts, now(), config.retention_days,
        config.purge_after_days)
    from dlq._sql.maintenance import AGE_BUCKETS

    buckets = {name: counts.pop(name) for name, _, _ in AGE_BUCKETS}
    return CleanupStats(retention_days=config.retention_days,
                        purge_after_days=config.purge_after_days,
                        closed_by_age=buckets, **counts)


async def run_maintenance(service: AsyncDLQService, *,
                          dry_run: bool = False) -> MaintenanceResult:
    """Run ``DLQMaintenanceWorkflow`` now (as the schedule does) and wait for its result."""
    client = await service.get_client()
    config = service.config
    return await client.execute_workflow(
        MAINTENANCE_WORKFLOW,
        MaintenanceInput(retention_days=config.retention_days,
                         purge_after_days=config.purge_after_days, dry_run=dry_run),
        id=f"dlq-maintenance-manual-{uuid.uuid4().hex[:12]}",
        task_queue=config.task_queue, result_type=MaintenanceResult,
    )
