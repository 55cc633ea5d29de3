"""Workflows changed the wrong way, for the test that the history replay catches it.

``DLQMaintenanceWorkflow`` here runs its two activities in the other order: a
change to the command sequence without ``workflow.patched``, which would break
every maintenance run in flight when the new worker picks it up.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from dlq._messages import MaintenanceInput, MaintenanceResult


@workflow.defn(name="DLQMaintenanceWorkflow")
class PurgeFirstMaintenanceWorkflow:
    """Purges before it cleans up (the 0.1.0 histories clean up first)."""

    @workflow.run
    async def run(self, input: MaintenanceInput) -> MaintenanceResult:
        """Both steps, in the other order."""
        purged = await workflow.execute_activity(
            "maintenance_purge", input, result_type=MaintenanceResult,
            start_to_close_timeout=timedelta(minutes=30))
        cleaned = await workflow.execute_activity(
            "maintenance_cleanup", input, result_type=MaintenanceResult,
            start_to_close_timeout=timedelta(minutes=30))
        return MaintenanceResult(dry_run=input.dry_run, expired=cleaned.expired,
                                 archived=cleaned.archived, purged=purged.purged)
