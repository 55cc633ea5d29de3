"""Alerts: what the rules look at (SLA breaches, review backlog) and the record of alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col

from dlq._db import DLQAlertRow, DLQEntry, UTCDateTime
from dlq._models import DLQStatus
from dlq._sql.queries import OPEN, _sla_condition

__all__ = ["ALERT_COLUMNS", "alert_to_dict", "finish_alert", "get_alert", "insert_alert",
           "last_alert_at", "list_alerts", "pending_alerts", "review_backlog",
           "sla_breaches"]

ALERT_COLUMNS = ("id", "rule", "kind", "subject", "status", "title", "count", "since", "link",
                 "details", "attempts", "error", "created_at", "delivered_at")
# Alerts that hold their (rule, subject) for the cooldown: a failed one does not,
# so the next evaluation tries to reach someone again.
_HOLDING = ("pending", "delivered")


def _time(session: Session, value: Any) -> datetime | None:
    """An aggregate's time: SQLite's min() returns text, without the column's type."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return UTCDateTime().process_result_value(value, session.get_bind().dialect)


def sla_breaches(*, session: Session, now: datetime, thresholds: dict[str, float],
                 domain: str | None) -> list[dict[str, Any]]:
    """Per domain: open entries older than the domain's SLA, and the oldest one's creation."""
    stmt = (sa.select(col(DLQEntry.domain), sa.func.count(), sa.func.min(col(DLQEntry.created_at)))
            .where(col(DLQEntry.status).in_(OPEN), _sla_condition(now, thresholds))
            .group_by(col(DLQEntry.domain)))
    if domain is not None:
        stmt = stmt.where(col(DLQEntry.domain) == domain)
    return [{"domain": d, "count": int(n), "since": _time(session, oldest)}
            for d, n, oldest in session.execute(stmt)]


def review_backlog(*, session: Session, domain: str | None) -> dict[str, Any]:
    """Entries in ``requires_review`` and since when the oldest of them waits (its last change)."""
    stmt = (sa.select(sa.func.count(), sa.func.min(col(DLQEntry.updated_at)))
            .where(col(DLQEntry.status) == DLQStatus.REQUIRES_REVIEW.value))
    if domain is not None:
        stmt = stmt.where(col(DLQEntry.domain) == domain)
    n, oldest = session.execute(stmt).one()
    return {"count": int(n), "since": _time(session, oldest)}


def last_alert_at(*, session: Session, rule: str, subject: str) -> datetime | None:
    """When (rule, subject) last raised an alert that was not a failed delivery."""
    stmt = (sa.select(sa.func.max(col(DLQAlertRow.created_at)))
            .where(col(DLQAlertRow.rule) == rule, col(DLQAlertRow.subject) == subject,
                   col(DLQAlertRow.status).in_(_HOLDING)))
    return _time(session, session.execute(stmt).scalar())


def insert_alert(*, session: Session, alert: dict[str, Any]) -> None:
    """Record a new alert (status ``pending``); the caller commits."""
    session.add(DLQAlertRow(**alert))


def pending_alerts(*, session: Session, since: datetime) -> list[tuple[str, str]]:
    """(id, rule) of alerts still to deliver, created since ``since``.

    A run that stopped before delivering leaves its alerts pending; the next picks them up.
    """
    stmt = (sa.select(col(DLQAlertRow.id), col(DLQAlertRow.rule))
            .where(col(DLQAlertRow.status) == "pending", col(DLQAlertRow.created_at) >= since)
            .order_by(col(DLQAlertRow.created_at)))
    return [(alert_id, rule) for alert_id, rule in session.execute(stmt)]


def alert_to_dict(row: DLQAlertRow) -> dict[str, Any]:
    """A JSON-safe dict of an alert row."""
    out = {name: getattr(row, name) for name in ALERT_COLUMNS}
    for key in ("since", "created_at", "delivered_at"):
        if out[key] is not None:
            out[key] = out[key].astimezone(UTC).isoformat()
    return out


def get_alert(*, session: Session, alert_id: str) -> dict[str, Any] | None:
    """One alert, or None."""
    row = session.get(DLQAlertRow, alert_id)
    return alert_to_dict(row) if row else None


def finish_alert(*, session: Session, alert_id: str, status: str, attempts: int,
                 error: str | None, now: datetime) -> bool:
    """Record a pending alert's delivery outcome; False if it was not pending any more."""
    result = session.execute(
        sa.update(DLQAlertRow)
        .where(col(DLQAlertRow.id) == alert_id, col(DLQAlertRow.status) == "pending")
        .values(status=status, attempts=attempts, error=error,
                delivered_at=now if status == "delivered" else None))
    return bool(cast("sa.CursorResult[Any]", result).rowcount)


def list_alerts(*, session: Session, limit: int, rule: str | None = None,
                since: datetime | None = None) -> list[dict[str, Any]]:
    """Alerts, newest first."""
    stmt = sa.select(DLQAlertRow)
    if rule is not None:
        stmt = stmt.where(col(DLQAlertRow.rule) == rule)
    if since is not None:
        stmt = stmt.where(col(DLQAlertRow.created_at) >= since)
    stmt = stmt.order_by(col(DLQAlertRow.created_at).desc(), col(DLQAlertRow.id)).limit(limit)
    return [alert_to_dict(r) for r in session.execute(stmt).scalars()]


def default_since(now: datetime) -> datetime:
    """How far back pending alerts are retried (older ones are left as they are)."""
    return now - timedelta(hours=1)
