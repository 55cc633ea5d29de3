"""Inputs and results of the alerts workflow and its activities (no I/O: workflow-safe)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["AlertToDeliver", "AlertsInput", "AlertsResult", "DeliverAlertInput",
           "DeliverAlertResult", "EvaluateAlertsInput", "EvaluateAlertsResult",
           "FinishAlertInput", "FinishAlertResult"]


class AlertsInput(BaseModel):
    """One evaluation of the alert rules (what the schedule starts).

    The rules and their webhooks stay in the worker's configuration: webhook
    URLs can be secrets and must not reach Temporal's history.

    Attributes:
        delivery_attempts: Attempts per webhook (a 5xx or network error is retried).
        retry_initial_seconds: Wait before the first retry; doubles each time.
    """

    delivery_attempts: int = Field(default=5, ge=1, le=20)
    retry_initial_seconds: float = Field(default=2.0, gt=0)


class AlertsResult(BaseModel):
    """What one evaluation did."""

    raised: int = 0
    delivered: int = 0
    failed: int = 0


class EvaluateAlertsInput(BaseModel):
    """Evaluate every rule now (the activity reads the rules from its worker's configuration)."""


class AlertToDeliver(BaseModel):
    """A recorded, pending alert and how many webhooks its rule has."""

    alert_id: str
    rule: str
    webhooks: int


class EvaluateAlertsResult(BaseModel):
    """The pending alerts to deliver: those raised now and those a crashed run left."""

    alerts: list[AlertToDeliver] = Field(default_factory=list)


class DeliverAlertInput(BaseModel):
    """Post one alert to one webhook of its rule."""

    alert_id: str
    rule: str
    webhook_index: int = Field(ge=0)


class DeliverAlertResult(BaseModel):
    """The webhook's answer and the attempt that got it."""

    status_code: int
    attempt: int


class FinishAlertInput(BaseModel):
    """Record an alert's delivery outcome."""

    alert_id: str
    delivered: bool
    attempts: int
    error: str | None = None


class FinishAlertResult(BaseModel):
    """Whether the alert was still pending (False: another run finished it)."""

    updated: bool
