"""The purge record: purges that deleted entries, and the tombstones of what they deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from dlq._db import DLQPurgedEntryRow, DLQPurgeRow

__all__ = ["find_purged_entry", "get_purge", "list_purges"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _purge(row: DLQPurgeRow) -> dict[str, Any]:
    return {"purge_id": row.purge_id, "at": _iso(row.at), "actor": row.actor,
            "reason": row.reason, "criteria": row.criteria, "count": row.count}


def list_purges(*, session: Session, limit: int) -> list[dict[str, Any]]:
    """The newest purges first: id, time, actor, reason, criteria and count of each."""
    rows = session.execute(sa.select(DLQPurgeRow).order_by(col(DLQPurgeRow.at).desc(),
                                                           DLQPurgeRow.purge_id)
                           .limit(limit)).scalars()
    return [_purge(r) for r in rows]


def get_purge(*, session: Session, purge_id: str, limit: int) -> dict[str, Any] | None:
    """One purge with (up to ``limit``) tombstones of the entries it deleted, or None."""
    row = session.get(DLQPurgeRow, purge_id)
    if row is None:
        return None
    entries = session.execute(
        sa.select(DLQPurgedEntryRow).where(col(DLQPurgedEntryRow.purge_id) == purge_id)
        .order_by(DLQPurgedEntryRow.entry_id).limit(limit)).scalars()
    return {**_purge(row), "entries": [
        {"id": e.entry_id, "domain": e.domain, "failure_type": e.failure_type,
         "created_at": _iso(e.created_at), "closed_at": _iso(e.closed_at)} for e in entries]}


def find_purged_entry(*, session: Session, entry_id: str) -> dict[str, Any] | None:
    """The tombstone of a purged entry with its purge (who, when, why), or None."""
    found = session.execute(
        sa.select(DLQPurgedEntryRow, DLQPurgeRow)
        .join(DLQPurgeRow, col(DLQPurgeRow.purge_id) == col(DLQPurgedEntryRow.purge_id))
        .where(col(DLQPurgedEntryRow.entry_id) == entry_id)
        .order_by(col(DLQPurgeRow.at).desc()).limit(1)).first()
    if found is None:
        return None
    entry, purge = found
    return {"id": entry.entry_id, "domain": entry.domain, "failure_type": entry.failure_type,
            "created_at": _iso(entry.created_at), "closed_at": _iso(entry.closed_at),
            "purge": _purge(purge)}
