"""Activities of ``DLQAlertsWorkflow``: evaluate the rules, post notifications, record them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from dlq._alert_messages import (
    AlertToDeliver,
    DeliverAlertInput,
    DeliverAlertResult,
    EvaluateAlertsInput,
    EvaluateAlertsResult,
    FinishAlertInput,
    FinishAlertResult,
)
from dlq._alerting import raise_alerts
from dlq._config import DLQConfig
from dlq._notify import DeliveryError, post_notification
from dlq._outbox import Outbox
from dlq._sql import alerts as sql_alerts


class AlertActivities:
    """The alerts' I/O: SQL, the worker's outbox, webhooks.

    The rules and their webhooks come from this worker's configuration, so
    webhook URLs (secrets, for Slack) never enter Temporal's history.

    Args:
        engine: Engine of the SQL read model.
        config: The worker's configuration (``alert_rules``, ``outbox_path``,
            ``sla_thresholds``, the link targets).
    """

    def __init__(self, engine: Engine, config: DLQConfig) -> None:
        self.engine = engine
        self.config = config
        self._rules = {rule.name: rule for rule in config.alert_rules}

    @activity.defn(name="evaluate_alerts")
    def evaluate_alerts(self, input: EvaluateAlertsInput) -> EvaluateAlertsResult:
        """Evaluate every rule now; record new alerts (cooldown permitting) as pending.

        The outbox is this worker's (``DLQ_OUTBOX_PATH`` on its host): outbox
        figures are per host, and each worker watches its own.
        """
        outbox = None
        if any(rule.kind == "outbox" for rule in self.config.alert_rules):
            # Its records and errors are sealed when encryption is on.
            box = Outbox(self.config.outbox_path, key_ring=self.config.key_ring)
            try:
                outbox = box.stats()
            finally:
                box.close()
        pending = raise_alerts(self.engine, self.config, datetime.now(UTC), outbox)
        return EvaluateAlertsResult(alerts=[
            AlertToDeliver(alert_id=alert_id, rule=rule, webhooks=len(self._rules[rule].webhooks))
            for alert_id, rule in pending])

    @activity.defn(name="deliver_alert")
    def deliver_alert(self, input: DeliverAlertInput) -> DeliverAlertResult:
        """POST the alert to one webhook of its rule.

        Raises:
            ApplicationError: Retryable on a 5xx, 408, 429 or no answer (the
                workflow's retry policy tries again); non-retryable on another
                4xx, or when the alert or its rule no longer exists.
        """
        rule = self._rules.get(input.rule)
        if rule is None or input.webhook_index >= len(rule.webhooks):
            raise ApplicationError(f"alert rule {input.rule!r} (webhook {input.webhook_index}) "
                                   "is not configured on this worker", type="AlertRuleMissing",
                                   non_retryable=True)
        with Session(self.engine) as session:
            alert = sql_alerts.get_alert(session=session, alert_id=input.alert_id)
        if alert is None:
            raise ApplicationError(f"alert {input.alert_id} does not exist",
                                   type="AlertMissing", non_retryable=True)
        try:
            status = post_notification(rule.webhooks[input.webhook_index], alert)
        except DeliveryError as err:
            # The message names the status, never the URL (it may hold a token).
            raise ApplicationError(f"{err} (rule {rule.name!r}, webhook {input.webhook_index})",
                                   type="AlertDeliveryFailed",
                                   non_retryable=not err.retryable) from None
        return DeliverAlertResult(status_code=status, attempt=activity.info().attempt)

    @activity.defn(name="finish_alert")
    def finish_alert(self, input: FinishAlertInput) -> FinishAlertResult:
        """Record whether the alert reached every webhook of its rule."""
        with Session(self.engine) as session:
            updated = sql_alerts.finish_alert(
                session=session, alert_id=input.alert_id,
                status="delivered" if input.delivered else "failed",
                attempts=input.attempts, error=input.error, now=datetime.now(UTC))
            session.commit()
        return FinishAlertResult(updated=updated)
