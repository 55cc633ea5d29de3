"""Failure groups: the group row ``persist_entry`` creates, and the reads of groups.

The counts of ``dlq_groups`` and ``dlq_group_minutes`` are kept by triggers
on ``dlq_entries`` (migration 0009); nothing here increments them.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col

from dlq._db import DLQGroupMinuteRow, DLQGroupRow
from dlq._groups import GroupFilters
from dlq._sql.dialect import DIALECTS, dialect_of

__all__ = ["ensure_group", "epoch_minute", "get_group", "group_rates",
           "list_groups", "new_groups", "prune_group_minutes"]

_GROUPS: sa.Table = DLQGroupRow.__table__  # type: ignore[attr-defined]
_MINUTES: sa.Table = DLQGroupMinuteRow.__table__  # type: ignore[attr-defined]
HOUR, DAY = 60, 1440


def epoch_minute(when: datetime) -> int:
    """Minutes since the epoch: the bucket key of ``dlq_group_minutes``."""
    return int(when.timestamp()) // 60


@functools.cache
def _ensure_statement(dialect: str) -> Any:
    # Built once per dialect: it runs with the first write of every entry.
    names = ("fingerprint", "domain", "failure_type", "error_code", "message")
    ins = DIALECTS[dialect].insert(_GROUPS).values(
        {**{name: sa.bindparam(name, type_=_GROUPS.c[name].type) for name in names},
         "entries": 0, "occurrences": 0, "open_count": 0})
    return ins.on_conflict_do_nothing(index_elements=["fingerprint"])


def ensure_group(*, session: Session, fingerprint: str, domain: str, failure_type: str,
                 error_code: str, message: str) -> None:
    """Create the group row (zero counts) unless it exists; the caller commits.

    Runs before the entry's first write in the same transaction, so the
    insert trigger finds the row to count the entry in.
    """
    session.execute(_ensure_statement(dialect_of(session).name),
                    dict(fingerprint=fingerprint, domain=domain[:100],
                         failure_type=failure_type[:100], error_code=(error_code or "")[:255],
                         message=message))


def _recent(now: datetime, minutes: int) -> Any:
    """Occurrences of the outer group row in the last ``minutes`` (a correlated subquery)."""
    return (sa.select(sa.func.coalesce(sa.func.sum(_MINUTES.c.n), 0))
            .where(_MINUTES.c.fingerprint == _GROUPS.c.fingerprint,
                   _MINUTES.c.minute > epoch_minute(now) - minutes)
            .scalar_subquery())


def _select(now: datetime) -> Any:
    return sa.select(_GROUPS, _recent(now, HOUR).label("last_hour"),
                     _recent(now, DAY).label("last_day"))


def _conditions(filters: GroupFilters) -> list[Any]:
    conds = [_GROUPS.c[name] == getattr(filters, name)
             for name in ("domain", "failure_type", "error_code")
             if getattr(filters, name) is not None]
    if filters.open_only:
        conds.append(_GROUPS.c.open_count > 0)
    return conds


def _as_dict(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in ("first_seen_at", "last_seen_at"):
        value = out.get(key)
        if value is not None:
            out[key] = _aware(value).isoformat()
    out["count"] = out["occurrences"]
    out["last_hour"], out["last_day"] = int(out["last_hour"]), int(out["last_day"])
    return out


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def list_groups(*, session: Session, filters: GroupFilters, offset: int, limit: int,
                now: datetime) -> tuple[list[dict[str, Any]], int]:
    """One page of groups, most recently seen first, and the total count."""
    conds = _conditions(filters)
    stmt = (_select(now).where(*conds)
            .order_by(_GROUPS.c.last_seen_at.desc().nulls_last(), _GROUPS.c.fingerprint)
            .offset(offset).limit(limit))
    rows = [_as_dict(r) for r in session.execute(stmt)]
    total = session.execute(sa.select(sa.func.count()).select_from(_GROUPS)
                            .where(*conds)).scalar_one()
    return rows, int(total)


def get_group(*, session: Session, fingerprint: str, now: datetime) -> dict[str, Any] | None:
    """One group with its last hour and last day counts, or None."""
    row = session.execute(_select(now).where(_GROUPS.c.fingerprint == fingerprint)).first()
    return _as_dict(row) if row else None


def new_groups(*, session: Session, now: datetime, since: datetime, domain: str | None,
               limit: int) -> list[dict[str, Any]]:
    """Groups first seen at or after ``since``, oldest first (hour and day counts at ``now``)."""
    stmt = _select(now).where(col(DLQGroupRow.first_seen_at) >= since)
    if domain is not None:
        stmt = stmt.where(_GROUPS.c.domain == domain)
    rows = session.execute(stmt.order_by(_GROUPS.c.first_seen_at).limit(limit))
    return [_as_dict(r) for r in rows]


def group_rates(*, session: Session, now: datetime, window_minutes: int, min_count: int,
                domain: str | None, limit: int) -> list[dict[str, Any]]:
    """Groups with at least ``min_count`` occurrences in the last ``window_minutes``.

    Each row is a group with ``window_count``, busiest first.
    """
    start = epoch_minute(now) - window_minutes
    counts = (sa.select(_MINUTES.c.fingerprint, sa.func.sum(_MINUTES.c.n).label("window_count"))
              .where(_MINUTES.c.minute > start).group_by(_MINUTES.c.fingerprint)
              .having(sa.func.sum(_MINUTES.c.n) >= min_count).subquery())
    stmt = (_select(now).add_columns(counts.c.window_count)
            .join(counts, counts.c.fingerprint == _GROUPS.c.fingerprint))
    if domain is not None:
        stmt = stmt.where(_GROUPS.c.domain == domain)
    rows = session.execute(stmt.order_by(counts.c.window_count.desc()).limit(limit))
    return [{**_as_dict(r), "window_count": int(r.window_count)} for r in rows]


def prune_group_minutes(*, session: Session, now: datetime) -> int:
    """Drop minute counts older than a day (nothing reads them); the caller commits."""
    result = session.execute(sa.delete(_MINUTES).where(
        _MINUTES.c.minute <= epoch_minute(now) - DAY - 1))
    return int(cast("sa.CursorResult[Any]", result).rowcount or 0)
