"""Retention in SQL: expiring orphan rows, archiving, purging, and what would be done."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from dlq._db import (
    DLQAuditEventRow,
    DLQEntry,
    DLQPayloadRow,
    DLQPurgedEntryRow,
    DLQPurgeRow,
    JSONType,
    UTCDateTime,
)
from dlq._models import CLOSED_STATUSES, DLQStatus
from dlq._sql.queries import OPEN

__all__ = [
    "AGE_BUCKETS",
    "ARCHIVABLE",
    "archive_closed",
    "cleanup_counts",
    "count_archived_older_than",
    "mark_expired",
    "purge_archived",
]

# Closed statuses an entry can be archived from (archived itself excluded).
ARCHIVABLE = tuple(sorted(s.value for s in CLOSED_STATUSES - {DLQStatus.ARCHIVED}))
PURGE_CHUNK = 1000
AGE_BUCKETS = (("lt_1d", 0, 1), ("1d_7d", 1, 7), ("7d_30d", 7, 30), ("30d_90d", 30, 90),
               ("gte_90d", 90, None))


def _sql_audit(session: Session, where: Any, *, action: str, to_status: str,
               now: datetime, actor: str = "maintenance", reason: str = "") -> None:
    """Append one audit event to every entry matching ``where``, in one statement."""
    audit: sa.Table = DLQAuditEventRow.__table__  # type: ignore[attr-defined]
    next_seq = (sa.select(sa.func.coalesce(sa.func.max(audit.c.seq), 0) + 1)
                .where(audit.c.entry_id == col(DLQEntry.id)).scalar_subquery())
    source = sa.select(
        col(DLQEntry.id), next_seq, sa.literal(now, UTCDateTime), sa.literal(action),
        sa.literal(actor), sa.literal(reason), col(DLQEntry.status), sa.literal(to_status),
        sa.literal({}, JSONType),
    ).where(where)
    session.execute(audit.insert().from_select(
        ["entry_id", "seq", "at", "action", "actor", "reason", "from_status", "to_status",
         "details"], source))


def mark_expired(*, session: Session, entry_id: str, now: datetime) -> bool:
    """Expire an open row whose workflow no longer exists (an orphan); audited.

    Returns:
        True if the row was open and is now expired.
    """
    where = sa.and_(col(DLQEntry.id) == entry_id, col(DLQEntry.status).in_(OPEN))
    _sql_audit(session, where, action="expire", to_status="expired", now=now,
               reason="orphan row: entry workflow not running")
    result = session.execute(
        sa.update(DLQEntry).where(where).values(
            status="expired", closed_at=now, updated_at=now, version=col(DLQEntry.version) + 1)
        .returning(col(DLQEntry.id)))
    return result.first() is not None


def _count(session: Session, where: Any) -> int:
    return session.execute(sa.select(sa.func.count()).select_from(DLQEntry)
                           .where(where)).scalar_one()


def archive_closed(*, session: Session, cutoff: datetime, now: datetime,
                   dry_run: bool = False, actor: str | None = None) -> int:
    """Move closed entries that closed before ``cutoff`` to ``archived`` (SQL only); audited.

    ``actor`` (who archived; ``maintenance`` if None) is recorded on each entry.
    """
    where = sa.and_(col(DLQEntry.status).in_(ARCHIVABLE), col(DLQEntry.closed_at) < cutoff)
    if dry_run:
        return _count(session, where)
    _sql_audit(session, where, action="archive", to_status="archived", now=now,
               actor=actor or "maintenance")
    result = session.execute(sa.update(DLQEntry).where(where).values(
        status="archived", updated_at=now, version=col(DLQEntry.version) + 1)
        .returning(col(DLQEntry.id)))
    return len(result.all())


def _archived_where(ids: Sequence[str] | None, cutoff: datetime | None) -> Any:
    conds = [col(DLQEntry.status) == DLQStatus.ARCHIVED.value]
    if ids is not None:
        conds.append(col(DLQEntry.id).in_(list(ids)))
    if cutoff is not None:
        conds.append(col(DLQEntry.closed_at) < cutoff)
    return sa.and_(*conds)


def purge_archived(*, session: Session, ids: Sequence[str] | None, cutoff: datetime | None,
                   dry_run: bool = False, actor: str | None = None, reason: str = "",
                   criteria: dict[str, Any] | None = None, now: datetime | None = None) -> int:
    """Delete archived entries (and their audit events) by id and/or closed before ``cutoff``.

    Only ``archived`` rows are ever deleted. A purge that deletes something
    leaves a record: one ``dlq_purges`` row (``actor``, or ``maintenance``,
    ``reason``, ``criteria``, count) and a tombstone per entry in
    ``dlq_purged_entries``, written in the same transaction as the deletes.
    The caller commits.

    Raises:
        ValueError: If neither ``ids`` nor ``cutoff`` is given.
    """
    if ids is None and cutoff is None:
        raise ValueError("purge_archived needs ids or older_than_days; refusing to purge all")
    where = _archived_where(ids, cutoff)
    if dry_run:
        return _count(session, where)
    purge_id = uuid.uuid4().hex
    purged = 0
    while True:
        chunk = list(session.execute(sa.select(col(DLQEntry.id)).where(where)
                                     .limit(PURGE_CHUNK)).scalars())
        if not chunk:
            break
        if not purged:
            session.add(DLQPurgeRow(purge_id=purge_id, at=now or datetime.now(UTC),
                                    actor=actor or "maintenance", reason=reason or "",
                                    criteria=criteria or {}, count=0))
            session.flush()
        tombstones = sa.select(sa.literal(purge_id), col(DLQEntry.id), col(DLQEntry.domain),
                               col(DLQEntry.failure_type), col(DLQEntry.created_at),
                               col(DLQEntry.closed_at)).where(col(DLQEntry.id).in_(chunk))
        session.execute(sa.insert(DLQPurgedEntryRow).from_select(
            ["purge_id", "entry_id", "domain", "failure_type", "created_at", "closed_at"],
            tombstones))
        session.execute(sa.delete(DLQAuditEventRow)
                        .where(col(DLQAuditEventRow.entry_id).in_(chunk)))
        session.execute(sa.delete(DLQPayloadRow).where(col(DLQPayloadRow.entry_id).in_(chunk)))
        session.execute(sa.delete(DLQEntry).where(col(DLQEntry.id).in_(chunk)))
        purged += len(chunk)
    if purged:
        session.execute(sa.update(DLQPurgeRow).where(col(DLQPurgeRow.purge_id) == purge_id)
                        .values(count=purged))
    return purged


def count_archived_older_than(*, session: Session, cutoff: datetime) -> int:
    """How many archived entries closed before ``cutoff``."""
    return _count(session, _archived_where(None, cutoff))


def cleanup_counts(*, session: Session, now: datetime, retention_days: int,
                   purge_after_days: int) -> dict[str, Any]:
    """Age-bucketed counts of closed and archived entries, for ``CleanupStats``."""
    cols = []
    for name, low, high in AGE_BUCKETS:
        cond = col(DLQEntry.closed_at) <= now - timedelta(days=low)
        if high is not None:
            cond = sa.and_(cond, col(DLQEntry.closed_at) > now - timedelta(days=high))
        cols.append(sa.func.count().filter(col(DLQEntry.status).in_(ARCHIVABLE), cond).label(name))
    cols += [
        sa.func.count().filter(col(DLQEntry.status).in_(ARCHIVABLE)).label("closed"),
        sa.func.count().filter(col(DLQEntry.status).in_(ARCHIVABLE),
                               col(DLQEntry.closed_at) < now - timedelta(days=retention_days)
                               ).label("archivable"),
        sa.func.count().filter(col(DLQEntry.status) == "archived").label("archived"),
        sa.func.count().filter(col(DLQEntry.status) == "archived",
                               col(DLQEntry.closed_at) < now - timedelta(days=purge_after_days)
                               ).label("purgeable"),
        sa.func.count().filter(col(DLQEntry.status).in_(OPEN), col(DLQEntry.expires_at) < now
                               ).label("expirable"),
    ]
    return dict(session.execute(sa.select(*cols)).one()._mapping)
