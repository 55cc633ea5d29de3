"""How the hand-written SQL speaks to each backend, and where it runs.

SQLite and PostgreSQL differ in three ways that matter here: the DBAPI
placeholder, how a time is bound (SQLite stores naive UTC text) and which
``INSERT`` supports upserts. Everything else is shared SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from dlq._reads import ThreadReads, fetch_all

__all__ = ["Dialect", "Reader", "dbapi_rows", "dialect_of"]

# What the hand-written reads run on: an ORM session, a Core connection, or the
# repository's per-thread read connections.
Reader = Session | sa.Connection | ThreadReads


def _sqlite_bind_time(value: datetime) -> str:
    # What UTCDateTime + SQLAlchemy's SQLite DATETIME store: naive UTC, microseconds.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class Dialect:
    """How SQL here speaks to one backend: placeholder, time binding, upsert-capable insert."""

    def __init__(self, name: str) -> None:
        if name not in ("sqlite", "postgresql"):
            raise NotImplementedError(
                f"unsupported SQL dialect {name!r} (use SQLite or PostgreSQL)")
        self.name = name
        self.mark = "?" if name == "sqlite" else "%s"
        self.bind_time: Any = _sqlite_bind_time if name == "sqlite" else (lambda v: v)
        self.insert: Any = sqlite.insert if name == "sqlite" else postgresql.insert


DIALECTS = {name: Dialect(name) for name in ("sqlite", "postgresql")}


def dialect_of(session: Any) -> Dialect:
    """The :class:`Dialect` of a session, connection or :class:`ThreadReads`."""
    name = (session.get_bind().dialect.name if isinstance(session, Session)
            else session.dialect.name)
    return DIALECTS.get(name) or Dialect(name)  # the latter raises NotImplementedError


def dbapi_rows(session: Any, sql: str, params: Sequence[Any]) -> list[Any]:
    """Rows of ``sql`` as the driver returns them, on the session's or connection's DBAPI cursor."""
    if isinstance(session, ThreadReads):
        return session.rows(sql, params)
    conn = session.connection() if isinstance(session, Session) else session
    return fetch_all(conn.connection, sql, params)
