"""What the ``dlq_*`` gauges read at scrape time, cheap at millions of rows.

Open counts come from ``dlq_entry_counts`` (a few dozen rows kept by
triggers); the oldest open entry of a (domain, status) is one seek on the
``(domain, status, created_at)`` index per counter row; SLA breaches are one
index range count per domain that has a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import col

from dlq._db import DLQEntry, UTCDateTime
from dlq._sql.queries import OPEN

__all__ = ["OpenEntryGauges", "open_entry_gauges"]


@dataclass
class OpenEntryGauges:
    """Open entries by (domain, status), the oldest age and SLA breaches by domain."""

    open: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_age_seconds: dict[str, float] = field(default_factory=dict)
    sla_breached: dict[str, int] = field(default_factory=dict)


_COUNTS = sa.text("SELECT domain, status, n FROM dlq_entry_counts WHERE n > 0")
_OLDEST = (sa.select(sa.func.min(col(DLQEntry.created_at)))
           .where(col(DLQEntry.domain) == sa.bindparam("domain"),
                  col(DLQEntry.status) == sa.bindparam("status")))
_BREACHED = (sa.select(sa.func.count())
             .where(col(DLQEntry.domain) == sa.bindparam("domain"),
                    col(DLQEntry.status).in_(OPEN),
                    col(DLQEntry.created_at) < sa.bindparam("before", type_=UTCDateTime())))


def _as_utc(value: object, conn: Connection) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's min() loses the column's type
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return UTCDateTime().process_result_value(value, conn.dialect)


def open_entry_gauges(*, conn: Connection, thresholds: dict[str, float],
                      now: datetime | None = None) -> OpenEntryGauges:
    """Read the open-entry gauges.

    Args:
        conn: A connection to the read model.
        thresholds: SLA seconds by domain (``*`` for the others), as configured.
        now: The time ages are measured at (default: now).
    """
    now = now or datetime.now(UTC)
    gauges = OpenEntryGauges()
    for domain, status, n in conn.execute(_COUNTS):
        if status in OPEN:
            gauges.open[(domain, status)] = int(n)
    for domain, status in gauges.open:
        created = _as_utc(conn.execute(_OLDEST, {"domain": domain, "status": status})
                          .scalar_one(), conn)
        if created is not None:
            age = max(0.0, (now - created).total_seconds())
            gauges.oldest_age_seconds[domain] = max(gauges.oldest_age_seconds.get(domain, 0.0),
                                                    age)
    for domain in sorted({d for d, _ in gauges.open}):
        threshold = thresholds.get(domain, thresholds.get("*"))
        if threshold is None:
            continue
        before = now - timedelta(seconds=threshold)
        gauges.sla_breached[domain] = int(conn.execute(
            _BREACHED, {"domain": domain, "before": before}).scalar_one())
    return gauges
