"""``DLQMaintenanceWorkflow``: retention work over the SQL read model, run by a schedule."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from dlq._messages import MaintenanceInput, MaintenanceResult

RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_attempts=5)


@workflow.defn(name="DLQMaintenanceWorkflow")
class DLQMaintenanceWorkflow:
    """Expire what is overdue, archive old closed entries, purge old archived ones.

    Each step is its own activity, so the Web UI shows which one ran, how long
    it took and what it returned. With ``dry_run`` nothing changes.
    """

    @workflow.run
    async def run(self, input: MaintenanceInput) -> MaintenanceResult:
        """Run the two maintenance steps and add up their results."""
        cleaned = await workflow.execute_activity(
            "maintenance_cleanup", input, result_type=MaintenanceResult,
            start_to_close_timeout=timedelta(minutes=30), retry_policy=RETRY,
            summary="expire overdue entries, archive old closed ones",
        )
        purged = await workflow.execute_activity(
            "maintenance_purge", input, result_type=MaintenanceResult,
            start_to_close_timeout=timedelta(minutes=30), retry_policy=RETRY,
            summary=f"purge archived entries older than {input.purge_after_days} days",
        )
        result = MaintenanceResult(dry_run=input.dry_run, expired=cleaned.expired,
                                   archived=cleaned.archived, purged=purged.purged)
        workflow.logger.info("DLQ maintenance done: %s", result)
        return result
