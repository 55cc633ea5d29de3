"""``DLQAlertsWorkflow``: evaluate the alert rules and notify people, run by a schedule."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from dlq._alert_messages import (
        AlertsInput,
        AlertsResult,
        AlertToDeliver,
        DeliverAlertInput,
        DeliverAlertResult,
        EvaluateAlertsInput,
        EvaluateAlertsResult,
        FinishAlertInput,
        FinishAlertResult,
    )

SQL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=5)


@workflow.defn(name="DLQAlertsWorkflow")
class DLQAlertsWorkflow:
    """One evaluation: which rules fire, then one notification per alert and webhook.

    Evaluating records each new alert as pending (a (rule, subject) in its
    cooldown raises none). Each webhook gets its own activity, retried with
    backoff on a 5xx or no answer, so a webhook that is down delays only its
    own alert; the outcome is recorded on the alert.
    """

    @workflow.run
    async def run(self, input: AlertsInput) -> AlertsResult:
        """Evaluate, deliver every pending alert concurrently, and count the outcomes."""
        found = await workflow.execute_activity(
            "evaluate_alerts", EvaluateAlertsInput(), result_type=EvaluateAlertsResult,
            start_to_close_timeout=timedelta(minutes=2), retry_policy=SQL_RETRY,
            summary="evaluate the alert rules")
        outcomes = await asyncio.gather(*(self._deliver(alert, input) for alert in found.alerts))
        result = AlertsResult(raised=len(outcomes), delivered=sum(outcomes),
                              failed=len(outcomes) - sum(outcomes))
        if outcomes:
            workflow.logger.info("DLQ alerts: %s", result)
        return result

    async def _deliver(self, alert: AlertToDeliver, input: AlertsInput) -> bool:
        retry = RetryPolicy(initial_interval=timedelta(seconds=input.retry_initial_seconds),
                            backoff_coefficient=2.0, maximum_interval=timedelta(minutes=2),
                            maximum_attempts=input.delivery_attempts)
        attempts, errors = 0, []
        for index in range(alert.webhooks):
            try:
                sent = await workflow.execute_activity(
                    "deliver_alert", DeliverAlertInput(alert_id=alert.alert_id, rule=alert.rule,
                                                       webhook_index=index),
                    result_type=DeliverAlertResult, start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=retry, summary=f"notify: rule {alert.rule}, webhook {index}")
                attempts += sent.attempt
            except ActivityError as err:
                attempts += input.delivery_attempts
                errors.append(str(err.cause or err))
        await workflow.execute_activity(
            "finish_alert", FinishAlertInput(alert_id=alert.alert_id, delivered=not errors,
                                             attempts=attempts,
                                             error="; ".join(errors)[:1000] or None),
            result_type=FinishAlertResult, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=SQL_RETRY)
        return not errors
