"""Activities of ``DLQMaintenanceWorkflow``: the service's own maintenance operations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio import activity

from dlq._messages import MaintenanceInput, MaintenanceResult
from dlq._service import AsyncDLQService


class MaintenanceActivities:
    """Retention steps, done through the same service code operators call.

    Args:
        service: A service on the worker's client and SQL engine.
    """

    def __init__(self, service: AsyncDLQService) -> None:
        self.service = service

    @activity.defn(name="maintenance_cleanup")
    async def maintenance_cleanup(self, input: MaintenanceInput) -> MaintenanceResult:
        """``cleanup_old_entries`` with the configured retention."""
        cleaned = await self.service.cleanup_old_entries(input.retention_days,
                                                         dry_run=input.dry_run)
        return MaintenanceResult(dry_run=input.dry_run, purged=0, **cleaned)

    @activity.defn(name="maintenance_purge")
    async def maintenance_purge(self, input: MaintenanceInput) -> MaintenanceResult:
        """``purge_archived`` of entries archived longer than ``purge_after_days``.

        Also drops failure groups' per-minute counts older than a day (the
        alerts evaluation does it too, but runs only when there are alert rules).
        """
        purged = await self.service.purge_archived(older_than_days=input.purge_after_days,
                                                   dry_run=input.dry_run)
        if not input.dry_run:
            await asyncio.to_thread(self.service.repository.prune_group_minutes,
                                    datetime.now(UTC))
        return MaintenanceResult(dry_run=input.dry_run, expired=0, archived=0, purged=purged)
