"""List pages: the filter conditions, and the hand-written SQL of the list hot path.

A list page or a keyset page takes a fraction of a millisecond in the
database. Building the SQLAlchemy statement, its cache key, the ORM result
and ``mappings()`` rows cost several times that, so the page, count and
keyset queries are plain SQL strings (one per filter shape, cached, bounded)
run on the DBAPI cursor of the caller's connection. The filters mean exactly
what :func:`conditions` (the ORM form, used by bulk redrives) means;
tests compare the two for every filter.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from dlq._db import DLQEntry, UTCDateTime
from dlq._fields import DATA_FIELDS, FAILURE_FIELDS
from dlq._filters import EntryFilters
from dlq._sql.dialect import Dialect, Reader, dbapi_rows, dialect_of

__all__ = [
    "DATETIME_COLUMNS",
    "LIST_COLUMNS",
    "NEWEST_FIRST",
    "conditions",
    "count_entries",
    "find_entries",
    "find_entries_after",
    "list_page",
    "list_rows",
    "list_select",
]

# Columns of a list row: everything but the (possibly large) data blobs.
LIST_COLUMNS = (
    "id", "workflow_id",
    *(f for f in FAILURE_FIELDS if f not in DATA_FIELDS and f != "dedup_key"),
    "status", "retry_count", "max_retries", "occurrences", "last_error", "resolution_type",
    "version", "dedup_key", "created_at", "updated_at", "expires_at", "resolved_at",
    "closed_at", "last_attempt_at", "last_seen_at", "fingerprint",
)
NEWEST_FIRST = (col(DLQEntry.created_at).desc(), col(DLQEntry.id).desc())
DATETIME_COLUMNS = tuple(c for c in LIST_COLUMNS
                         if isinstance(sa.inspect(DLQEntry).columns[c].type, UTCDateTime))
_DATETIME_POSITIONS = tuple((LIST_COLUMNS.index(c), c) for c in DATETIME_COLUMNS)
_EQUAL_FILTERS = ("domain", "failure_type", "entity_type", "entity_id", "error_code", "user_id",
                  "group")
# Filters named otherwise than their column.
_FILTER_COLUMNS = {"group": "fingerprint"}
# Distinct SQL texts kept: filter shapes x page sizes x kinds x dialects. Shapes
# come from a fixed set of filter keys, so real use stays far below this.
SQL_CACHE_SIZE = 512


# --- the ORM form ----------------------------------------------------------------------


def conditions(f: EntryFilters) -> list[Any]:
    """The filters as SQLAlchemy conditions on :class:`DLQEntry`."""
    conds: list[Any] = []
    if f.status:
        conds.append(col(DLQEntry.status) == f.status[0] if len(f.status) == 1
                     else col(DLQEntry.status).in_(f.status))
    for name in _EQUAL_FILTERS:
        value = getattr(f, name)
        if value is not None:
            conds.append(getattr(DLQEntry, _FILTER_COLUMNS.get(name, name)) == value)
    if f.created_after is not None:
        conds.append(col(DLQEntry.created_at) >= f.created_after)
    if f.created_before is not None:
        conds.append(col(DLQEntry.created_at) < f.created_before)
    if f.error_message:
        conds.append(sa.func.lower(col(DLQEntry.error_message)).contains(
            f.error_message.lower(), autoescape=True))
    return conds


def list_select() -> Any:
    """``SELECT`` of the list columns (for ORM-built lists such as a redrive's sample)."""
    return sa.select(*(getattr(DLQEntry, c) for c in LIST_COLUMNS))


def list_rows(session: Any, stmt: Any) -> list[dict[str, Any]]:
    """Rows of an ORM-built list statement as dicts, times as ISO strings."""
    rows = session.execute(stmt).mappings().all()
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
            for row in rows]


# --- the hand-written form -------------------------------------------------------------


def _pg_iso(column: str) -> str:
    # ``datetime.isoformat()`` of a UTC timestamptz, written by PostgreSQL: its
    # to_char costs next to nothing, and psycopg then decodes a string instead
    # of building a datetime that Python would format again (1 us per value, 140
    # values a page). isoformat() leaves out zero microseconds; so does this.
    utc = f"{column} AT TIME ZONE 'UTC'"
    return (f"to_char({utc}, CASE to_char({utc}, 'US') WHEN '000000' "
            """THEN 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"' """
            """ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"' END)""")


# The select list of the list queries, per dialect. SQLite keeps its stored text
# (turned into ISO strings in _as_dicts); PostgreSQL returns ISO strings itself.
LIST_SQL_COLUMNS = {
    "sqlite": ", ".join(LIST_COLUMNS),
    "postgresql": ", ".join(_pg_iso(c) if c in DATETIME_COLUMNS else c for c in LIST_COLUMNS),
}


def _sqlite_iso(value: str) -> str:
    """A stored SQLite time (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) as ``datetime.isoformat()``."""
    if len(value) == 26 and value[10] == " " and value[19] == ".":
        if value.endswith("000000"):  # isoformat() drops zero microseconds
            return f"{value[:10]}T{value[11:19]}+00:00"
        return f"{value[:10]}T{value[11:]}+00:00"
    parsed = datetime.fromisoformat(value)  # written by hand in another format
    return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None
            else parsed.astimezone(UTC)).isoformat()


def _where_sql(f: EntryFilters, d: Dialect) -> tuple[tuple[Any, ...], list[Any]]:
    """The filter shape (a cache key for the SQL text) and its bound values, in order."""
    shape: list[Any] = []
    params: list[Any] = []
    if f.status:
        shape.append(("status", len(f.status)))
        params.extend(f.status)
    for name in _EQUAL_FILTERS:
        value = getattr(f, name)
        if value is not None:
            shape.append(name)
            params.append(value)
    if f.created_after is not None:
        shape.append("created_after")
        params.append(d.bind_time(f.created_after))
    if f.created_before is not None:
        shape.append("created_before")
        params.append(d.bind_time(f.created_before))
    if f.error_message:
        shape.append("error_message")
        needle = f.error_message.lower()
        for char in "/%_":  # what contains(..., autoescape=True) escapes, with "/"
            needle = needle.replace(char, "/" + char)
        params.append(f"%{needle}%")
    return tuple(shape), params


def _where_text(shape: tuple[Any, ...], mark: str) -> list[str]:
    parts = []
    for item in shape:
        if isinstance(item, tuple):
            n = item[1]
            parts.append(f"status = {mark}" if n == 1
                         else f"status IN ({', '.join([mark] * n)})")
        elif item == "created_after":
            parts.append(f"created_at >= {mark}")
        elif item == "created_before":
            parts.append(f"created_at < {mark}")
        elif item == "error_message":
            parts.append(f"lower(error_message) LIKE {mark} ESCAPE '/'")
        else:
            parts.append(f"{_FILTER_COLUMNS.get(item, item)} = {mark}")
    return parts


@functools.lru_cache(maxsize=SQL_CACHE_SIZE)
def _sql(kind: str, shape: tuple[Any, ...], d: Dialect, limit: int = 0) -> str:
    # The page size is written into the text (an int the service clamped), not bound:
    # PostgreSQL's cached generic plan for "LIMIT $1" ran a page ~25% slower than a
    # literal limit, once psycopg prepared the statement on a held connection.
    where = _where_text(shape, d.mark)
    if kind == "after":
        where.append(f"(created_at, id) < ({d.mark}, {d.mark})")
    cond = f" WHERE {' AND '.join(where)}" if where else ""
    if kind == "count":
        return f"SELECT count(*) FROM dlq_entries{cond}"
    tail = " OFFSET " + d.mark if kind == "page" else ""  # "page" (offset), "first", "after"
    return (f"SELECT {LIST_SQL_COLUMNS[d.name]} FROM dlq_entries{cond} "
            f"ORDER BY created_at DESC, id DESC LIMIT {int(limit)}{tail}")


def _as_dicts(rows: list[Any], d: Dialect) -> list[dict[str, Any]]:
    """List rows as dicts keyed by :data:`LIST_COLUMNS`, times as ISO 8601 UTC strings.

    The same strings ``datetime.isoformat()`` gave through the ORM. On SQLite
    they are made here with string operations on the stored text, which costs a
    third of parsing to datetimes and formatting them again; PostgreSQL's rows
    carry them already (see :func:`_pg_iso`).
    """
    # zip() without strict=True: the select list is LIST_COLUMNS by construction,
    # and the check costs a tenth of the shaping.
    out = []
    if d.name == "sqlite":
        for row in rows:
            item = dict(zip(LIST_COLUMNS, row))  # noqa: B905
            for i, name in _DATETIME_POSITIONS:
                value = row[i]
                if value is not None:
                    # The usual case inline (a call per value shows at 20 rows x 7 times).
                    item[name] = (value.replace(" ", "T") + "+00:00"
                                  if len(value) == 26 and not value.endswith("000000")
                                  else _sqlite_iso(value))
            out.append(item)
        return out
    return [dict(zip(LIST_COLUMNS, row)) for row in rows]  # noqa: B905 - times are text


def find_entries(*, session: Reader, filters: EntryFilters, offset: int,
                 limit: int) -> list[dict[str, Any]]:
    """One page of list rows, newest first, with offset/limit done in SQL.

    Args:
        session: A session, a Core connection, or the repository's per-thread
            read connections (the hot path).
        filters: Validated filters.
        offset: Rows to skip.
        limit: Rows to return.
    """
    d = dialect_of(session)
    shape, params = _where_sql(filters, d)
    return _as_dicts(dbapi_rows(session, _sql("page", shape, d, limit), [*params, offset]), d)


def count_entries(*, session: Reader, filters: EntryFilters) -> int:
    """How many entries match ``filters``."""
    d = dialect_of(session)
    shape, params = _where_sql(filters, d)
    return dbapi_rows(session, _sql("count", shape, d), params)[0][0]


def list_page(*, session: Reader, filters: EntryFilters, offset: int,
              limit: int) -> tuple[list[dict[str, Any]], int]:
    """One page of list rows (newest first) and the total count."""
    return (find_entries(session=session, filters=filters, offset=offset, limit=limit),
            count_entries(session=session, filters=filters))


def find_entries_after(*, session: Reader, filters: EntryFilters,
                       after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
    """Keyset page: the ``limit`` newest entries strictly after ``after`` (created_at, id)."""
    d = dialect_of(session)
    shape, params = _where_sql(filters, d)
    if after is None:
        sql = _sql("first", shape, d, limit)
    else:
        sql = _sql("after", shape, d, limit)
        params += [d.bind_time(after[0]), after[1]]
    return _as_dicts(dbapi_rows(session, sql, params), d)
