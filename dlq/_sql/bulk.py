"""Bulk redrives in SQL: the frozen id set, its pages, and a dry run's preview."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col

from dlq._db import DLQBulkItemRow, DLQEntry
from dlq._filters import EntryFilters
from dlq._sql.lists import NEWEST_FIRST, conditions, list_rows, list_select
from dlq._sql.queries import retryable_condition

__all__ = ["bulk_breakdown", "bulk_page_ids", "drop_bulk_set", "freeze_bulk_set"]


def _bulk_conditions(filters: EntryFilters) -> list[Any]:
    conds = conditions(filters)
    if not filters.status:
        # Without a status, a redrive means what a retry can take.
        conds.append(retryable_condition())
    return conds


def _set_size(session: Session, bulk_id: str) -> int:
    return session.execute(sa.select(sa.func.count()).select_from(DLQBulkItemRow)
                           .where(col(DLQBulkItemRow.bulk_id) == bulk_id)).scalar_one()


def freeze_bulk_set(*, session: Session, bulk_id: str, filters: EntryFilters) -> int:
    """Fix the entries a redrive will replay, in one statement; idempotent per ``bulk_id``.

    Entries that match later are not swept in. Returns the size of the set.
    """
    if not _set_size(session, bulk_id):
        source = sa.select(sa.literal(bulk_id), col(DLQEntry.id)).where(*_bulk_conditions(filters))
        session.execute(sa.insert(DLQBulkItemRow).from_select(["bulk_id", "entry_id"], source))
    return _set_size(session, bulk_id)


def drop_bulk_set(*, session: Session, bulk_id: str) -> int:
    """Forget a frozen set whose redrive never started; returns the rows removed."""
    result = session.execute(sa.delete(DLQBulkItemRow)
                             .where(col(DLQBulkItemRow.bulk_id) == bulk_id))
    return cast("sa.CursorResult[Any]", result).rowcount


def bulk_page_ids(*, session: Session, bulk_id: str, after: str, limit: int) -> list[str]:
    """The next ``limit`` ids of a frozen set after ``after`` (id order)."""
    stmt = (sa.select(col(DLQBulkItemRow.entry_id))
            .where(col(DLQBulkItemRow.bulk_id) == bulk_id, col(DLQBulkItemRow.entry_id) > after)
            .order_by(col(DLQBulkItemRow.entry_id)).limit(limit))
    return list(session.execute(stmt).scalars())


def bulk_breakdown(*, session: Session, filters: EntryFilters,
                   sample: int = 10) -> dict[str, Any]:
    """What a redrive with ``filters`` would take: count, by domain/failure type, a sample."""
    conds = _bulk_conditions(filters)
    groups = session.execute(
        sa.select(col(DLQEntry.domain), col(DLQEntry.failure_type), sa.func.count()).where(*conds)
        .group_by(col(DLQEntry.domain), col(DLQEntry.failure_type))).all()
    rows = list_rows(session, list_select().where(*conds).order_by(*NEWEST_FIRST)
                     .limit(sample))
    return {"count": sum(n for _, _, n in groups),
            "by_domain_failure_type": [{"domain": d, "failure_type": f, "count": n}
                                       for d, f, n in groups],
            "sample": rows}
