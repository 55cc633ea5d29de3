"""The alerts schedule: the worker creates, updates or removes it at start."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from dlq._alert_messages import AlertsInput
from dlq._config import DLQConfig

__all__ = ["ALERTS_SCHEDULE_ID", "ALERTS_WORKFLOW", "alerts_schedule", "ensure_alerts_schedule"]

log = logging.getLogger("dlq.worker")

ALERTS_WORKFLOW = "DLQAlertsWorkflow"
ALERTS_SCHEDULE_ID = "dlq-alerts"


def alerts_schedule(config: DLQConfig, *, schedule_id: str = ALERTS_SCHEDULE_ID) -> Schedule:
    """The schedule that starts ``DLQAlertsWorkflow`` every ``alerts_interval_seconds``.

    Overlapping runs are skipped: one evaluation at a time, so cooldowns hold.
    """
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ALERTS_WORKFLOW, AlertsInput(), id=schedule_id, task_queue=config.task_queue,
            execution_timeout=timedelta(minutes=30)),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(
            every=timedelta(seconds=config.alerts_interval_seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_alerts_schedule(client: Client, config: DLQConfig, *,
                                 schedule_id: str = ALERTS_SCHEDULE_ID) -> str:
    """Make the alerts schedule match ``config`` (safe from many workers at once).

    With alert rules it is created, or updated to this configuration's
    interval and task queue; without any it is deleted, so removing the
    rules stops the evaluations.

    Returns:
        ``created``, ``updated``, ``deleted`` or ``absent``.
    """
    handle = client.get_schedule_handle(schedule_id)
    if not config.alert_rules:
        try:
            await handle.delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return "absent"
        log.info("deleted schedule %s (no DLQ_ALERT_RULES)", schedule_id)
        return "deleted"
    schedule = alerts_schedule(config, schedule_id=schedule_id)
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
        return "updated"
    log.info("created schedule %s (every %gs, %d rules)", schedule_id,
             config.alerts_interval_seconds, len(config.alert_rules))
    return "created"
