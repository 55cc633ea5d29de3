"""Reads of single entries, the reference's finders, stats and facet counts."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from dlq._db import DLQAuditEventRow, DLQEntry, UTCDateTime
from dlq._models import OPEN_STATUSES, DLQStatus, FailedOperationData
from dlq._sql.dialect import Dialect, Reader, dbapi_rows, dialect_of
from dlq._state import is_retryable

__all__ = [
    "OPEN",
    "current_entry_id",
    "entry_to_data",
    "entry_to_dict",
    "expired_entry_ids",
    "facet_counts",
    "find_expired",
    "find_open",
    "find_sla_breached",
    "get_entry",
    "get_entry_detail",
    "get_entry_row",
    "list_audit_events",
    "retryable_condition",
    "stats",
]

OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))


def retryable_condition() -> Any:
    """:func:`dlq._state.is_retryable` as a SQL condition on :class:`DLQEntry`."""
    return sa.and_(col(DLQEntry.status) == DLQStatus.PENDING.value,
                   col(DLQEntry.retry_count) < col(DLQEntry.max_retries))


def get_entry_row(*, session: Session, entry_id: str) -> DLQEntry | None:
    """The entry row, or None."""
    return session.get(DLQEntry, entry_id)


def current_entry_id(*, session: Session, workflow_id: str) -> str | None:
    """The newest entry stored under ``workflow_id`` (a dedup key's current one), or None."""
    stmt = (sa.select(col(DLQEntry.id)).where(col(DLQEntry.workflow_id) == workflow_id)
            .order_by(col(DLQEntry.created_at).desc(), col(DLQEntry.id).desc()).limit(1))
    return session.execute(stmt).scalar()


def list_audit_events(*, session: Session, entry_id: str) -> list[DLQAuditEventRow]:
    """The entry's audit events, oldest first."""
    stmt = (select(DLQAuditEventRow).where(col(DLQAuditEventRow.entry_id) == entry_id)
            .order_by(col(DLQAuditEventRow.seq)))
    return list(session.exec(stmt))


def entry_to_data(row: DLQEntry) -> FailedOperationData:
    """Convert a row to the public :class:`FailedOperationData`."""
    return FailedOperationData(
        id=row.id, metadata=row.extra_metadata,
        **{name: getattr(row, name) for name in FailedOperationData.model_fields
           if name not in ("id", "metadata")},
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def entry_to_dict(row: DLQEntry, events: Sequence[DLQAuditEventRow] = ()) -> dict[str, Any]:
    """A JSON-safe dict of the row, its attempts and its audit events."""
    data = row.model_dump(exclude={"extra_metadata"})
    data["metadata"] = row.extra_metadata
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    data["can_retry"] = is_retryable(row.status, row.retry_count, row.max_retries)
    data["audit_events"] = [
        {"seq": e.seq, "at": _iso(e.at), "action": e.action, "actor": e.actor,
         "reason": e.reason, "ticket_url": e.ticket_url, "from_status": e.from_status,
         "to_status": e.to_status, "details": e.details}
        for e in events
    ]
    return data


def get_entry(*, session: Session, entry_id: str) -> FailedOperationData | None:
    """The entry as :class:`FailedOperationData`, or None."""
    row = get_entry_row(session=session, entry_id=entry_id)
    return entry_to_data(row) if row else None


def get_entry_detail(*, session: Session, entry_id: str) -> dict[str, Any] | None:
    """The entry as a JSON-safe dict with attempts and audit events, or None."""
    row = get_entry_row(session=session, entry_id=entry_id)
    if row is None:
        return None
    return entry_to_dict(row, list_audit_events(session=session, entry_id=entry_id))


def find_open(*, session: Session, statuses: Sequence[str], domain: str | None,
              failure_type: str | None, replayable: bool,
              limit: int) -> list[FailedOperationData]:
    """Entries in ``statuses``, oldest first; ``replayable`` keeps only the retryable ones."""
    stmt = select(DLQEntry).where(col(DLQEntry.status).in_(list(statuses)))
    if domain is not None:
        stmt = stmt.where(col(DLQEntry.domain) == domain)
    if failure_type is not None:
        stmt = stmt.where(col(DLQEntry.failure_type) == failure_type)
    if replayable:
        stmt = stmt.where(retryable_condition())
    stmt = stmt.order_by(col(DLQEntry.created_at), col(DLQEntry.id)).limit(limit)
    return [entry_to_data(r) for r in session.exec(stmt)]


def find_expired(*, session: Session, now: datetime, limit: int) -> list[FailedOperationData]:
    """Open entries whose ``expires_at`` has passed, oldest expiry first."""
    stmt = (select(DLQEntry).where(col(DLQEntry.status).in_(OPEN), col(DLQEntry.expires_at) < now)
            .order_by(col(DLQEntry.expires_at)).limit(limit))
    return [entry_to_data(r) for r in session.exec(stmt)]


def expired_entry_ids(*, session: Session, now: datetime, after_id: str,
                      limit: int) -> list[str]:
    """Ids of open entries past ``expires_at``, in id order after ``after_id`` (for draining)."""
    stmt = (sa.select(col(DLQEntry.id))
            .where(col(DLQEntry.status).in_(OPEN), col(DLQEntry.expires_at) < now,
                   col(DLQEntry.id) > after_id)
            .order_by(col(DLQEntry.id)).limit(limit))
    return list(session.execute(stmt).scalars())


def _sla_condition(now: datetime, thresholds: dict[str, float]) -> Any:
    named = {d: t for d, t in thresholds.items() if d != "*"}
    created = col(DLQEntry.created_at)
    parts = [sa.and_(col(DLQEntry.domain) == d, created < now - timedelta(seconds=t))
             for d, t in named.items()]
    if "*" in thresholds:
        default = created < now - timedelta(seconds=thresholds["*"])
        parts.append(sa.and_(col(DLQEntry.domain).not_in(list(named)), default) if named
                     else default)
    return sa.or_(*parts) if parts else sa.false()


def find_sla_breached(*, session: Session, now: datetime, thresholds: dict[str, float],
                      limit: int) -> list[FailedOperationData]:
    """Open entries older than their domain's SLA (``*`` covers unlisted domains)."""
    stmt = (select(DLQEntry).where(col(DLQEntry.status).in_(OPEN), _sla_condition(now, thresholds))
            .order_by(col(DLQEntry.created_at)).limit(limit))
    return [entry_to_data(r) for r in session.exec(stmt)]


@functools.lru_cache(maxsize=32)
def _counter_sql(d: Dialect, column: str, where: str | None) -> str:
    cond = f" WHERE {where} = {d.mark}" if where is not None else ""
    return (f"SELECT {column}, sum(n) FROM dlq_entry_counts{cond} "
            f"GROUP BY {column} HAVING sum(n) > 0")


def _counter_sums(session: Reader, column: str, where: str | None,
                  value: str | None) -> dict[str, int]:
    """Entry counts grouped by ``column`` from ``dlq_entry_counts``; zero buckets dropped."""
    d = dialect_of(session)
    rows = dbapi_rows(session, _counter_sql(d, column, where), () if where is None else (value,))
    if d.name == "sqlite":
        return dict(rows)
    return {k: int(n) for k, n in rows}  # PostgreSQL's sum(bigint) is numeric


def stats(*, session: Session, now: datetime | None = None) -> dict[str, Any]:
    """Counts by status and domain, oldest open entry, replay success rate, recent stores.

    The status and domain counts come from the trigger-kept ``dlq_entry_counts``
    (a few dozen rows), not from a GROUP BY over every entry.
    """
    now = now or datetime.now(UTC)
    by_status = _counter_sums(session, "status", None, None)
    by_domain = _counter_sums(session, "domain", None, None)
    oldest = session.execute(sa.select(sa.func.min(col(DLQEntry.created_at)))
                             .where(col(DLQEntry.status).in_(OPEN))).scalar_one()
    if isinstance(oldest, str):  # SQLite min() over the column loses its type
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None:
        oldest = UTCDateTime().process_result_value(oldest, session.get_bind().dialect)
    recent = sa.select(
        sa.func.count().filter(col(DLQEntry.created_at) >= now - timedelta(hours=1)),
        sa.func.count().filter(col(DLQEntry.created_at) >= now - timedelta(days=1)),
    ).where(col(DLQEntry.created_at) >= now - timedelta(days=1))
    last_hour, last_day = session.execute(recent).one()
    attempted, by_replay = session.execute(sa.select(
        sa.func.count().filter(col(DLQEntry.last_attempt_at).is_not(None)),
        sa.func.count().filter(col(DLQEntry.resolution_type) == "replay"),
    )).one()
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_domain": by_domain,
        "open": sum(by_status.get(s, 0) for s in OPEN),
        "oldest_open_created_at": oldest.isoformat() if oldest else None,
        "oldest_open_age_seconds": (now - oldest).total_seconds() if oldest else None,
        "replay_attempted": attempted,
        "replay_succeeded": by_replay,
        "replay_success_rate": (by_replay / attempted) if attempted else None,
        "stored_last_hour": last_hour,
        "stored_last_day": last_day,
    }


def facet_counts(*, session: Reader, status: str | None,
                 domain: str | None) -> dict[str, dict[str, int]]:
    """Faceted counts: ``by_status`` scoped by ``domain``, ``by_domain`` scoped by ``status``.

    Read from ``dlq_entry_counts`` (one row per domain and status, kept exact by
    triggers), so the cost does not grow with the number of entries. Zero
    buckets never appear.
    """
    return {"by_status": _counter_sums(session, "status", "domain" if domain is not None
                                       else None, domain),
            "by_domain": _counter_sums(session, "domain", "status" if status is not None
                                       else None, status)}
