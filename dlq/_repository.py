"""SQL behind the DLQ: keyword-only functions over a SQLModel session.

The entry workflow's ``persist_entry`` activity writes through
:func:`upsert_entry` and :func:`append_audit_events`; the service reads
through :class:`SQLModelRepository`. Tests call both directly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dlq._db import (
    DLQAuditEventRow,
    DLQBulkItemRow,
    DLQEntry,
    DLQPayloadRow,
    JSONType,
    UTCDateTime,
)
from dlq._filters import EntryFilters
from dlq._reads import ThreadReads, fetch_all
from dlq._types import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    AuditEvent,
    DLQStatus,
    EntryState,
    FailedOperationData,
)

__all__ = [
    "FailedOperationRepository",
    "SQLModelRepository",
    "append_audit_events",
    "archive_closed",
    "bulk_breakdown",
    "bulk_page_ids",
    "cleanup_counts",
    "count_archived_older_than",
    "count_entries",
    "expired_entry_ids",
    "facet_counts",
    "find_entries",
    "find_entries_after",
    "find_expired",
    "find_open",
    "find_sla_breached",
    "freeze_bulk_set",
    "drop_bulk_set",
    "mark_expired",
    "purge_archived",
    "stats",
    "entry_to_data",
    "entry_to_dict",
    "get_entry_row",
    "list_audit_events",
    "load_payload",
    "save_payload",
    "upsert_entry",
]

OPEN = tuple(sorted(s.value for s in OPEN_STATUSES))
# Closed statuses an entry can be archived from (archived itself excluded).
ARCHIVABLE = tuple(sorted(s.value for s in CLOSED_STATUSES - {DLQStatus.ARCHIVED}))
# Columns of a list row: everything but the (possibly large) data blobs.
LIST_COLUMNS = (
    "id", "workflow_id", "domain", "failure_type", "entity_type", "entity_id", "user_id",
    "error_code", "error_message", "status", "retry_count", "max_retries", "occurrences",
    "last_error", "recommended_action", "next_action_hint", "resolution_type", "version",
    "dedup_key", "created_at", "updated_at", "expires_at", "resolved_at", "closed_at",
    "last_attempt_at", "last_seen_at",
)
PURGE_CHUNK = 1000

# Columns a transition may change; the rest are written once, at capture.
MUTABLE_COLUMNS = (
    "status", "retry_count", "max_retries", "occurrences", "last_error", "resolution_type",
    "resolution_notes", "attempts", "version", "updated_at", "expires_at", "resolved_at",
    "closed_at", "last_attempt_at", "last_seen_at",
)
DATA_COLUMNS = (
    "workflow_id", "domain", "failure_type", "entity_type", "entity_id", "user_id",
    "error_code", "error_message", "snapshot_data", "request_data", "response_data",
    "next_action_hint", "recommended_action", "created_at", "dedup_key",
)


_ENTRY_TABLE: sa.Table = DLQEntry.__table__  # type: ignore[assignment]


@functools.cache
def _entry_statements(dialect: str) -> tuple[Any, Any]:
    """The entry upsert and update, built once per dialect; values come as parameters.

    Persisting runs for every transition of every entry. Building a statement
    with its values each time (ORM-enabled or not) costs more CPU than the SQL
    itself; a fixed Core statement hits the compiled cache at once.
    """
    table = _ENTRY_TABLE
    insert = _DIALECTS[dialect].insert
    columns = (*MUTABLE_COLUMNS, "id", "metadata", *DATA_COLUMNS)
    ins = insert(table).values({name: sa.bindparam(name, type_=table.c[name].type)
                                for name in columns})
    upsert = ins.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={name: ins.excluded[name] for name in MUTABLE_COLUMNS},
        where=table.c.version < ins.excluded.version,
    ).returning(table.c.id)
    update = (sa.update(table)
              .where(table.c.id == sa.bindparam("w_id", type_=table.c.id.type),
                     table.c.version < sa.bindparam("w_version", type_=table.c.version.type))
              .values({name: sa.bindparam(name, type_=table.c[name].type)
                       for name in MUTABLE_COLUMNS})
              .returning(table.c.id))
    return upsert, update


def _insert(session: Session, model: Any) -> Any:
    return _dialect_of(session).insert(model)


def upsert_entry(*, session: Session, state: EntryState, include_data: bool) -> bool:
    """Write the entry row at ``state.version`` unless a newer version is stored.

    Args:
        session: Open session; the caller commits.
        state: The entry's state.
        include_data: Insert the row if missing (first persist). When False,
            only the mutable columns of an existing row are updated.

    Returns:
        True if the row changed, False if the stored version was not older.
    """
    values: dict[str, Any] = {name: getattr(state, name) for name in MUTABLE_COLUMNS}
    values["status"] = str(state.status)
    values["attempts"] = [a.model_dump(mode="json") for a in state.attempts]
    upsert, update = _entry_statements(_dialect_of(session).name)
    if not include_data:
        values.update(w_id=state.id, w_version=state.version)
        return session.execute(update, values).first() is not None
    values.update(id=state.id, metadata=state.metadata,
                  **{name: getattr(state, name) for name in DATA_COLUMNS})
    # RETURNING, because rowcount is not reliable for upserts on every driver.
    return session.execute(upsert, values).first() is not None


def append_audit_events(*, session: Session, entry_id: str, events: Sequence[AuditEvent]) -> int:
    """Append audit events; an event already stored (same ``seq``) is skipped.

    Returns:
        The number of events passed (stored now or before).
    """
    if not events:
        return 0
    rows = [
        dict(entry_id=entry_id, seq=e.seq, at=e.at, action=e.action, actor=e.actor,
             reason=e.reason, ticket_url=e.ticket_url,
             from_status=str(e.from_status) if e.from_status else None,
             to_status=str(e.to_status) if e.to_status else None, details=e.details)
        for e in events
    ]
    session.execute(_audit_statement(_dialect_of(session).name), rows)
    return len(rows)


@functools.cache
def _audit_statement(dialect: str) -> Any:
    """The audit append, built once per dialect (see :func:`_entry_statements`)."""
    table: sa.Table = DLQAuditEventRow.__table__  # type: ignore[assignment]
    return _DIALECTS[dialect].insert(table).on_conflict_do_nothing(
        index_elements=["entry_id", "seq"])


PAYLOAD_FIELDS = ("snapshot_data", "request_data", "response_data", "metadata")


def save_payload(*, session: Session, entry_id: str, data: dict[str, Any],
                 now: datetime) -> None:
    """Keep an entry's large data fields (idempotent: a second save changes nothing)."""
    stmt = _insert(session, DLQPayloadRow).values(entry_id=entry_id, data=data, created_at=now)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["entry_id"]))


def load_payload(*, session: Session, entry_id: str) -> dict[str, Any] | None:
    """The data fields kept by :func:`save_payload`, or None."""
    row = session.get(DLQPayloadRow, entry_id)
    return dict(row.data) if row else None


def get_entry_row(*, session: Session, entry_id: str) -> DLQEntry | None:
    """The entry row, or None."""
    return session.get(DLQEntry, entry_id)


def list_audit_events(*, session: Session, entry_id: str) -> list[DLQAuditEventRow]:
    """The entry's audit events, oldest first."""
    stmt = (select(DLQAuditEventRow).where(DLQAuditEventRow.entry_id == entry_id)
            .order_by(DLQAuditEventRow.seq))
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
    data["can_retry"] = row.status == "pending" and row.retry_count < row.max_retries
    data["audit_events"] = [
        {"seq": e.seq, "at": _iso(e.at), "action": e.action, "actor": e.actor,
         "reason": e.reason, "ticket_url": e.ticket_url, "from_status": e.from_status,
         "to_status": e.to_status, "details": e.details}
        for e in events
    ]
    return data


# --- queries -----------------------------------------------------------------------


def _conditions(f: EntryFilters) -> list[Any]:
    conds: list[Any] = []
    if f.status:
        conds.append(DLQEntry.status == f.status[0] if len(f.status) == 1
                     else DLQEntry.status.in_(f.status))
    for name in ("domain", "failure_type", "entity_type", "entity_id", "error_code"):
        value = getattr(f, name)
        if value is not None:
            conds.append(getattr(DLQEntry, name) == value)
    if f.user_id is not None:
        conds.append(DLQEntry.user_id == f.user_id)
    if f.created_after is not None:
        conds.append(DLQEntry.created_at >= f.created_after)
    if f.created_before is not None:
        conds.append(DLQEntry.created_at < f.created_before)
    if f.error_message:
        conds.append(sa.func.lower(DLQEntry.error_message).contains(
            f.error_message.lower(), autoescape=True))
    return conds


def _list_rows(session: Session, stmt: Any) -> list[dict[str, Any]]:
    rows = session.execute(stmt).mappings().all()
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
            for row in rows]


def _list_select() -> Any:
    return sa.select(*(getattr(DLQEntry, c) for c in LIST_COLUMNS))


NEWEST_FIRST = (DLQEntry.created_at.desc(), DLQEntry.id.desc())

# --- the list hot path: hand-written SQL on the DBAPI cursor -----------------------------
#
# A list page or a keyset page takes a fraction of a millisecond in the
# database. Building the SQLAlchemy statement, its cache key, the ORM result
# and ``mappings()`` rows cost several times that, so these three queries are
# plain SQL strings (one per filter shape, cached) run on the DBAPI cursor of
# the caller's connection. The filters mean exactly what ``_conditions``
# means (the bulk paths still use it); tests/test_entry_counts.py compares the
# two for every filter, and tests/test_queries.py checks the listings.

DATETIME_COLUMNS = tuple(c for c in LIST_COLUMNS
                         if isinstance(DLQEntry.__table__.c[c].type, UTCDateTime))


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
_DATETIME_POSITIONS = tuple((LIST_COLUMNS.index(c), c) for c in DATETIME_COLUMNS)
_EQUAL_FILTERS = ("domain", "failure_type", "entity_type", "entity_id", "error_code", "user_id")
_SQL_CACHE: dict[tuple[Any, ...], str] = {}
# What the hand-written reads run on: an ORM session, a Core connection, or the
# repository's per-thread read connections.
Reader = Session | sa.Connection | ThreadReads


def _sqlite_bind_time(value: datetime) -> str:
    # What UTCDateTime + SQLAlchemy's SQLite DATETIME store: naive UTC, microseconds.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _sqlite_iso(value: str) -> str:
    """A stored SQLite time (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) as ``datetime.isoformat()``."""
    if len(value) == 26 and value[10] == " " and value[19] == ".":
        if value.endswith("000000"):  # isoformat() drops zero microseconds
            return f"{value[:10]}T{value[11:19]}+00:00"
        return f"{value[:10]}T{value[11:]}+00:00"
    parsed = datetime.fromisoformat(value)  # written by hand in another format
    return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None
            else parsed.astimezone(UTC)).isoformat()


class _Dialect:
    """How SQL here speaks to one backend: placeholder, time binding, upsert-capable insert."""

    def __init__(self, name: str) -> None:
        if name not in ("sqlite", "postgresql"):
            raise NotImplementedError(
                f"unsupported SQL dialect {name!r} (use SQLite or PostgreSQL)")
        self.name = name
        self.mark = "?" if name == "sqlite" else "%s"
        self.bind_time: Any = _sqlite_bind_time if name == "sqlite" else (lambda v: v)
        self.insert: Any = sqlite.insert if name == "sqlite" else postgresql.insert


def _where_sql(f: EntryFilters, d: _Dialect) -> tuple[tuple[Any, ...], list[Any]]:
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
            parts.append(f"{item} = {mark}")
    return parts


def _sql(kind: str, shape: tuple[Any, ...], d: _Dialect, limit: int = 0) -> str:
    # The page size is written into the text (an int the service clamped), not bound:
    # PostgreSQL's cached generic plan for "LIMIT $1" ran a page ~25% slower than a
    # literal limit, once psycopg prepared the statement on a held connection.
    key = (kind, d.name, shape, limit)
    sql = _SQL_CACHE.get(key)
    if sql is None:
        where = _where_text(shape, d.mark)
        if kind == "after":
            where.append(f"(created_at, id) < ({d.mark}, {d.mark})")
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        if kind == "count":
            sql = f"SELECT count(*) FROM dlq_entries{cond}"
        else:  # "page" (offset), "first" and "after" (keyset)
            tail = " OFFSET " + d.mark if kind == "page" else ""
            sql = (f"SELECT {LIST_SQL_COLUMNS[d.name]} FROM dlq_entries{cond} "
                   f"ORDER BY created_at DESC, id DESC LIMIT {int(limit)}{tail}")
        _SQL_CACHE[key] = sql
    return sql


def _dbapi_rows(session: Any, sql: str, params: Sequence[Any]) -> list[Any]:
    """Rows of ``sql`` as the driver returns them, on the session's or connection's DBAPI cursor."""
    if isinstance(session, ThreadReads):
        return session.rows(sql, params)
    conn = session.connection() if isinstance(session, Session) else session
    return fetch_all(conn.connection, sql, params)


def _as_dicts(rows: list[Any], d: _Dialect) -> list[dict[str, Any]]:
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


def _dialect_of(session: Any) -> _Dialect:
    name = (session.get_bind().dialect.name if isinstance(session, Session)
            else session.dialect.name)
    return _DIALECTS.get(name) or _Dialect(name)  # the latter raises NotImplementedError


_DIALECTS = {name: _Dialect(name) for name in ("sqlite", "postgresql")}


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
    d = _dialect_of(session)
    shape, params = _where_sql(filters, d)
    return _as_dicts(_dbapi_rows(session, _sql("page", shape, d, limit), [*params, offset]), d)


def count_entries(*, session: Reader, filters: EntryFilters) -> int:
    """How many entries match ``filters``."""
    d = _dialect_of(session)
    shape, params = _where_sql(filters, d)
    return _dbapi_rows(session, _sql("count", shape, d), params)[0][0]


def find_entries_after(*, session: Reader, filters: EntryFilters,
                       after: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
    """Keyset page: the ``limit`` newest entries strictly after ``after`` (created_at, id)."""
    d = _dialect_of(session)
    shape, params = _where_sql(filters, d)
    if after is None:
        sql = _sql("first", shape, d, limit)
    else:
        sql = _sql("after", shape, d, limit)
        params += [d.bind_time(after[0]), after[1]]
    return _as_dicts(_dbapi_rows(session, sql, params), d)


def find_open(*, session: Session, statuses: Sequence[str], domain: str | None,
              failure_type: str | None, replayable: bool, limit: int) -> list[DLQEntry]:
    """Entries in ``statuses``, oldest first; ``replayable`` adds retry_count < max_retries."""
    stmt = select(DLQEntry).where(DLQEntry.status.in_(list(statuses)))
    if domain is not None:
        stmt = stmt.where(DLQEntry.domain == domain)
    if failure_type is not None:
        stmt = stmt.where(DLQEntry.failure_type == failure_type)
    if replayable:
        stmt = stmt.where(DLQEntry.retry_count < DLQEntry.max_retries)
    return list(session.exec(stmt.order_by(DLQEntry.created_at, DLQEntry.id).limit(limit)))


def find_expired(*, session: Session, now: datetime, limit: int) -> list[DLQEntry]:
    """Open entries whose ``expires_at`` has passed, oldest expiry first."""
    stmt = (select(DLQEntry).where(DLQEntry.status.in_(OPEN), DLQEntry.expires_at < now)
            .order_by(DLQEntry.expires_at).limit(limit))
    return list(session.exec(stmt))


def expired_entry_ids(*, session: Session, now: datetime, after_id: str,
                      limit: int) -> list[str]:
    """Ids of open entries past ``expires_at``, in id order after ``after_id`` (for draining)."""
    stmt = (sa.select(DLQEntry.id)
            .where(DLQEntry.status.in_(OPEN), DLQEntry.expires_at < now, DLQEntry.id > after_id)
            .order_by(DLQEntry.id).limit(limit))
    return list(session.execute(stmt).scalars())


def _sla_condition(now: datetime, thresholds: dict[str, float]) -> Any:
    named = {d: t for d, t in thresholds.items() if d != "*"}
    parts = [sa.and_(DLQEntry.domain == d, DLQEntry.created_at < now - timedelta(seconds=t))
             for d, t in named.items()]
    if "*" in thresholds:
        default = DLQEntry.created_at < now - timedelta(seconds=thresholds["*"])
        parts.append(sa.and_(DLQEntry.domain.not_in(list(named)), default) if named else default)
    return sa.or_(*parts) if parts else sa.false()


def find_sla_breached(*, session: Session, now: datetime, thresholds: dict[str, float],
                      limit: int) -> list[DLQEntry]:
    """Open entries older than their domain's SLA (``*`` covers unlisted domains)."""
    stmt = (select(DLQEntry).where(DLQEntry.status.in_(OPEN), _sla_condition(now, thresholds))
            .order_by(DLQEntry.created_at).limit(limit))
    return list(session.exec(stmt))


def _counter_sums(session: Reader, column: str, where: str | None,
                  value: str | None) -> dict[str, int]:
    """Entry counts grouped by ``column`` from ``dlq_entry_counts``; zero buckets dropped."""
    d = _dialect_of(session)
    key = ("counts", d.name, column, where)
    sql = _SQL_CACHE.get(key)
    if sql is None:
        cond = f" WHERE {where} = {d.mark}" if where is not None else ""
        sql = _SQL_CACHE[key] = (f"SELECT {column}, sum(n) FROM dlq_entry_counts{cond} "
                                 f"GROUP BY {column} HAVING sum(n) > 0")
    rows = _dbapi_rows(session, sql, () if where is None else (value,))
    if d.name == "sqlite":
        return dict(rows)
    return {k: int(n) for k, n in rows}  # PostgreSQL's sum(bigint) is numeric


def stats(*, session: Session, now: datetime) -> dict[str, Any]:
    """Counts by status and domain, oldest open entry, replay success rate, recent stores.

    The status and domain counts come from the trigger-kept ``dlq_entry_counts``
    (a few dozen rows), not from a GROUP BY over every entry.
    """
    by_status = _counter_sums(session, "status", None, None)
    by_domain = _counter_sums(session, "domain", None, None)
    oldest = session.execute(sa.select(sa.func.min(DLQEntry.created_at))
                             .where(DLQEntry.status.in_(OPEN))).scalar_one()
    if isinstance(oldest, str):  # SQLite min() over the column loses its type
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None:
        oldest = UTCDateTime().process_result_value(oldest, session.get_bind().dialect)
    recent = sa.select(
        sa.func.count().filter(DLQEntry.created_at >= now - timedelta(hours=1)),
        sa.func.count().filter(DLQEntry.created_at >= now - timedelta(days=1)),
    ).where(DLQEntry.created_at >= now - timedelta(days=1))
    last_hour, last_day = session.execute(recent).one()
    attempted, by_replay = session.execute(sa.select(
        sa.func.count().filter(DLQEntry.last_attempt_at.is_not(None)),
        sa.func.count().filter(DLQEntry.resolution_type == "replay"),
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


# --- maintenance -----------------------------------------------------------------------


def _sql_audit(session: Session, where: Any, *, action: str, to_status: str,
               now: datetime, actor: str = "maintenance", reason: str = "") -> None:
    """Append one audit event to every entry matching ``where``, in one statement."""
    audit = DLQAuditEventRow.__table__
    next_seq = (sa.select(sa.func.coalesce(sa.func.max(audit.c.seq), 0) + 1)
                .where(audit.c.entry_id == DLQEntry.id).scalar_subquery())
    source = sa.select(
        DLQEntry.id, next_seq, sa.literal(now, UTCDateTime), sa.literal(action),
        sa.literal(actor), sa.literal(reason), DLQEntry.status, sa.literal(to_status),
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
    where = sa.and_(DLQEntry.id == entry_id, DLQEntry.status.in_(OPEN))
    _sql_audit(session, where, action="expire", to_status="expired", now=now,
               reason="orphan row: entry workflow not running")
    result = session.execute(
        sa.update(DLQEntry).where(where).values(
            status="expired", closed_at=now, updated_at=now, version=DLQEntry.version + 1)
        .returning(DLQEntry.id))
    return result.first() is not None


def archive_closed(*, session: Session, cutoff: datetime, now: datetime,
                   dry_run: bool = False) -> int:
    """Move closed entries that closed before ``cutoff`` to ``archived`` (SQL only); audited."""
    where = sa.and_(DLQEntry.status.in_(ARCHIVABLE), DLQEntry.closed_at < cutoff)
    if dry_run:
        return session.execute(sa.select(sa.func.count()).select_from(DLQEntry)
                               .where(where)).scalar_one()
    _sql_audit(session, where, action="archive", to_status="archived", now=now)
    result = session.execute(sa.update(DLQEntry).where(where).values(
        status="archived", updated_at=now, version=DLQEntry.version + 1)
        .returning(DLQEntry.id))
    return len(result.all())


def _archived_where(ids: Sequence[str] | None, cutoff: datetime | None) -> Any:
    conds = [DLQEntry.status == DLQStatus.ARCHIVED.value]
    if ids is not None:
        conds.append(DLQEntry.id.in_(list(ids)))
    if cutoff is not None:
        conds.append(DLQEntry.closed_at < cutoff)
    return sa.and_(*conds)


def purge_archived(*, session: Session, ids: Sequence[str] | None, cutoff: datetime | None,
                   dry_run: bool = False) -> int:
    """Delete archived entries (and their audit events) by id and/or closed before ``cutoff``.

    Only ``archived`` rows are ever deleted. Works in chunks so a large purge
    holds no huge transaction; the caller commits.

    Raises:
        ValueError: If neither ``ids`` nor ``cutoff`` is given.
    """
    if ids is None and cutoff is None:
        raise ValueError("purge_archived needs ids or older_than_days; refusing to purge all")
    where = _archived_where(ids, cutoff)
    if dry_run:
        return session.execute(sa.select(sa.func.count()).select_from(DLQEntry)
                               .where(where)).scalar_one()
    purged = 0
    while True:
        chunk = list(session.execute(sa.select(DLQEntry.id).where(where)
                                     .limit(PURGE_CHUNK)).scalars())
        if not chunk:
            return purged
        session.execute(sa.delete(DLQAuditEventRow).where(DLQAuditEventRow.entry_id.in_(chunk)))
        session.execute(sa.delete(DLQPayloadRow).where(DLQPayloadRow.entry_id.in_(chunk)))
        session.execute(sa.delete(DLQEntry).where(DLQEntry.id.in_(chunk)))
        purged += len(chunk)


def count_archived_older_than(*, session: Session, cutoff: datetime) -> int:
    """How many archived entries closed before ``cutoff``."""
    return session.execute(sa.select(sa.func.count()).select_from(DLQEntry)
                           .where(_archived_where(None, cutoff))).scalar_one()


AGE_BUCKETS = (("lt_1d", 0, 1), ("1d_7d", 1, 7), ("7d_30d", 7, 30), ("30d_90d", 30, 90),
               ("gte_90d", 90, None))


def cleanup_counts(*, session: Session, now: datetime, retention_days: int,
                   purge_after_days: int) -> dict[str, Any]:
    """Age-bucketed counts of closed and archived entries, for :class:`CleanupStats`."""
    cols = []
    for name, low, high in AGE_BUCKETS:
        cond = DLQEntry.closed_at <= now - timedelta(days=low)
        if high is not None:
            cond = sa.and_(cond, DLQEntry.closed_at > now - timedelta(days=high))
        cols.append(sa.func.count().filter(DLQEntry.status.in_(ARCHIVABLE), cond).label(name))
    cols += [
        sa.func.count().filter(DLQEntry.status.in_(ARCHIVABLE)).label("closed"),
        sa.func.count().filter(DLQEntry.status.in_(ARCHIVABLE),
                               DLQEntry.closed_at < now - timedelta(days=retention_days)
                               ).label("archivable"),
        sa.func.count().filter(DLQEntry.status == "archived").label("archived"),
        sa.func.count().filter(DLQEntry.status == "archived",
                               DLQEntry.closed_at < now - timedelta(days=purge_after_days)
                               ).label("purgeable"),
        sa.func.count().filter(DLQEntry.status.in_(OPEN), DLQEntry.expires_at < now
                               ).label("expirable"),
    ]
    return dict(session.execute(sa.select(*cols)).one()._mapping)


# --- bulk redrive ----------------------------------------------------------------------


def _bulk_conditions(filters: EntryFilters) -> list[Any]:
    conds = _conditions(filters)
    if not filters.status:
        # Without a status, a redrive means what a retry can take.
        conds += [DLQEntry.status == DLQStatus.PENDING.value,
                  DLQEntry.retry_count < DLQEntry.max_retries]
    return conds


def freeze_bulk_set(*, session: Session, bulk_id: str, filters: EntryFilters) -> int:
    """Fix the entries a redrive will replay, in one statement; idempotent per ``bulk_id``.

    Entries that match later are not swept in. Returns the size of the set.
    """
    exists = session.execute(sa.select(sa.func.count()).select_from(DLQBulkItemRow)
                             .where(DLQBulkItemRow.bulk_id == bulk_id)).scalar_one()
    if not exists:
        source = sa.select(sa.literal(bulk_id), DLQEntry.id).where(*_bulk_conditions(filters))
        session.execute(sa.insert(DLQBulkItemRow).from_select(["bulk_id", "entry_id"], source))
    return session.execute(sa.select(sa.func.count()).select_from(DLQBulkItemRow)
                           .where(DLQBulkItemRow.bulk_id == bulk_id)).scalar_one()


def drop_bulk_set(*, session: Session, bulk_id: str) -> int:
    """Forget a frozen set whose redrive never started; returns the rows removed."""
    return session.execute(sa.delete(DLQBulkItemRow)
                           .where(DLQBulkItemRow.bulk_id == bulk_id)).rowcount


def bulk_page_ids(*, session: Session, bulk_id: str, after: str, limit: int) -> list[str]:
    """The next ``limit`` ids of a frozen set after ``after`` (id order)."""
    stmt = (sa.select(DLQBulkItemRow.entry_id)
            .where(DLQBulkItemRow.bulk_id == bulk_id, DLQBulkItemRow.entry_id > after)
            .order_by(DLQBulkItemRow.entry_id).limit(limit))
    return list(session.execute(stmt).scalars())


def bulk_breakdown(*, session: Session, filters: EntryFilters,
                   sample: int = 10) -> dict[str, Any]:
    """What a redrive with ``filters`` would take: count, by domain/failure type, a sample."""
    conds = _bulk_conditions(filters)
    groups = session.execute(
        sa.select(DLQEntry.domain, DLQEntry.failure_type, sa.func.count()).where(*conds)
        .group_by(DLQEntry.domain, DLQEntry.failure_type)).all()
    rows = _list_rows(session, _list_select().where(*conds).order_by(*NEWEST_FIRST)
                      .limit(sample))
    return {"count": sum(n for _, _, n in groups),
            "by_domain_failure_type": [{"domain": d, "failure_type": f, "count": n}
                                       for d, f, n in groups],
            "sample": rows}


@runtime_checkable
class FailedOperationRepository(Protocol):
    """The SQL side of the DLQ, replaceable through ``DLQService(repository=...)``.

    Methods are blocking; the async service runs them in a thread. Datetimes
    are timezone-aware UTC.
    """

    def get(self, entry_id: str) -> FailedOperationData | None:
        """The entry as :class:`FailedOperationData`, or None."""
        ...

    def get_detail(self, entry_id: str) -> dict[str, Any] | None:
        """The entry as a JSON-safe dict with attempts and audit events, or None."""
        ...

    def save_payload(self, entry_id: str, data: dict[str, Any]) -> None:
        """Keep an entry's large data fields before its workflow starts (claim check)."""
        ...

    def list_page(self, filters: EntryFilters, offset: int,
                  limit: int) -> tuple[list[dict[str, Any]], int]:
        """One page of list rows (newest first) and the total count."""
        ...

    def freeze_bulk_set(self, bulk_id: str, filters: EntryFilters) -> int:
        """Fix a redrive's entry set; returns its size."""
        ...

    def drop_bulk_set(self, bulk_id: str) -> int:
        """Forget a frozen set whose redrive never started."""
        ...

    def bulk_page_ids(self, bulk_id: str, after: str, limit: int) -> list[str]:
        """The next page of a frozen set."""
        ...

    def bulk_breakdown(self, filters: EntryFilters) -> dict[str, Any]:
        """What a redrive would take (for ``dry_run``)."""
        ...

    def list_after(self, filters: EntryFilters, after: tuple[datetime, str] | None,
                   limit: int) -> list[dict[str, Any]]:
        """A keyset page after (created_at, id)."""
        ...

    def find_open(self, statuses: Sequence[str], domain: str | None, failure_type: str | None,
                  replayable: bool, limit: int) -> list[FailedOperationData]:
        """Entries in ``statuses``, oldest first."""
        ...

    def find_expired(self, now: datetime, limit: int) -> list[FailedOperationData]:
        """Open entries past ``expires_at``."""
        ...

    def find_sla_breached(self, now: datetime, thresholds: dict[str, float],
                          limit: int) -> list[FailedOperationData]:
        """Open entries older than their domain's SLA."""
        ...

    def expired_entry_ids(self, now: datetime, after_id: str, limit: int) -> list[str]:
        """Ids of open entries past ``expires_at`` after ``after_id``, in id order."""
        ...

    def mark_expired(self, entry_id: str, now: datetime) -> bool:
        """Expire an orphan open row; True if it changed."""
        ...

    def stats(self, now: datetime) -> dict[str, Any]:
        """Counts by status and domain and the other statistics of ``get_stats``."""
        ...

    def facet_counts(self, status: str | None, domain: str | None) -> dict[str, dict[str, int]]:
        """Faceted status x domain counts."""
        ...

    def archive_closed(self, cutoff: datetime, now: datetime, dry_run: bool) -> int:
        """Archive entries closed before ``cutoff``."""
        ...

    def purge_archived(self, ids: Sequence[str] | None, cutoff: datetime | None,
                       dry_run: bool) -> int:
        """Delete archived entries by id and/or age."""
        ...

    def count_archived_older_than(self, cutoff: datetime) -> int:
        """Archived entries closed before ``cutoff``."""
        ...

    def cleanup_counts(self, now: datetime, retention_days: int,
                       purge_after_days: int) -> dict[str, Any]:
        """Age-bucketed counts for ``get_cleanup_stats``."""
        ...


class SQLModelRepository:
    """The default :class:`FailedOperationRepository`, on SQLite or PostgreSQL.

    Args:
        engine: SQLAlchemy engine of the read model.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The list, cursor and facet reads: a connection per reading thread (no pool
        # checkout, no pre-ping round trip; see dlq._reads).
        self._hot = ThreadReads(engine)

    def _read(self) -> Session:
        return Session(self.engine)

    def get(self, entry_id: str) -> FailedOperationData | None:
        """The entry as :class:`FailedOperationData`, or None."""
        with self._read() as session:
            row = get_entry_row(session=session, entry_id=entry_id)
            return entry_to_data(row) if row else None

    def get_detail(self, entry_id: str) -> dict[str, Any] | None:
        """The entry as a JSON-safe dict with attempts and audit events, or None."""
        with self._read() as session:
            row = get_entry_row(session=session, entry_id=entry_id)
            if row is None:
                return None
            return entry_to_dict(row, list_audit_events(session=session, entry_id=entry_id))

    def save_payload(self, entry_id: str, data: dict[str, Any]) -> None:
        """Keep an entry's large data fields before its workflow starts (claim check)."""
        with Session(self.engine) as session:
            save_payload(session=session, entry_id=entry_id, data=data,
                         now=datetime.now(UTC))
            session.commit()

    def list_page(self, filters: EntryFilters, offset: int,
                  limit: int) -> tuple[list[dict[str, Any]], int]:
        """One page of list rows (newest first) and the total count."""
        return (find_entries(session=self._hot, filters=filters, offset=offset, limit=limit),
                count_entries(session=self._hot, filters=filters))

    def freeze_bulk_set(self, bulk_id: str, filters: EntryFilters) -> int:
        """Fix a redrive's entry set; returns its size."""
        with Session(self.engine) as session:
            total = freeze_bulk_set(session=session, bulk_id=bulk_id, filters=filters)
            session.commit()
            return total

    def drop_bulk_set(self, bulk_id: str) -> int:
        """Forget a frozen set whose redrive never started."""
        with Session(self.engine) as session:
            removed = drop_bulk_set(session=session, bulk_id=bulk_id)
            session.commit()
            return removed

    def bulk_page_ids(self, bulk_id: str, after: str, limit: int) -> list[str]:
        """The next page of a frozen set."""
        with self._read() as session:
            return bulk_page_ids(session=session, bulk_id=bulk_id, after=after, limit=limit)

    def bulk_breakdown(self, filters: EntryFilters) -> dict[str, Any]:
        """What a redrive would take (for ``dry_run``)."""
        with self._read() as session:
            return bulk_breakdown(session=session, filters=filters)

    def list_after(self, filters: EntryFilters, after: tuple[datetime, str] | None,
                   limit: int) -> list[dict[str, Any]]:
        """A keyset page after (created_at, id)."""
        return find_entries_after(session=self._hot, filters=filters, after=after, limit=limit)

    def find_open(self, statuses: Sequence[str], domain: str | None, failure_type: str | None,
                  replayable: bool, limit: int) -> list[FailedOperationData]:
        """Entries in ``statuses``, oldest first."""
        with self._read() as session:
            return [entry_to_data(r) for r in find_open(
                session=session, statuses=statuses, domain=domain, failure_type=failure_type,
                replayable=replayable, limit=limit)]

    def find_expired(self, now: datetime, limit: int) -> list[FailedOperationData]:
        """Open entries past ``expires_at``."""
        with self._read() as session:
            return [entry_to_data(r) for r in find_expired(session=session, now=now,
                                                           limit=limit)]

    def find_sla_breached(self, now: datetime, thresholds: dict[str, float],
                          limit: int) -> list[FailedOperationData]:
        """Open entries older than their domain's SLA."""
        with self._read() as session:
            return [entry_to_data(r) for r in find_sla_breached(
                session=session, now=now, thresholds=thresholds, limit=limit)]

    def expired_entry_ids(self, now: datetime, after_id: str, limit: int) -> list[str]:
        """Ids of open entries past ``expires_at`` after ``after_id``, in id order."""
        with self._read() as session:
            return expired_entry_ids(session=session, now=now, after_id=after_id, limit=limit)

    def mark_expired(self, entry_id: str, now: datetime) -> bool:
        """Expire an orphan open row; True if it changed."""
        with Session(self.engine) as session:
            changed = mark_expired(session=session, entry_id=entry_id, now=now)
            session.commit()
            return changed

    def stats(self, now: datetime) -> dict[str, Any]:
        """Counts by status and domain and the other statistics of ``get_stats``."""
        with self._read() as session:
            return stats(session=session, now=now)

    def facet_counts(self, status: str | None, domain: str | None) -> dict[str, dict[str, int]]:
        """Faceted status x domain counts."""
        return facet_counts(session=self._hot, status=status, domain=domain)

    def archive_closed(self, cutoff: datetime, now: datetime, dry_run: bool) -> int:
        """Archive entries closed before ``cutoff``."""
        with Session(self.engine) as session:
            count = archive_closed(session=session, cutoff=cutoff, now=now, dry_run=dry_run)
            session.commit()
            return count

    def purge_archived(self, ids: Sequence[str] | None, cutoff: datetime | None,
                       dry_run: bool) -> int:
        """Delete archived entries by id and/or age."""
        with Session(self.engine) as session:
            count = purge_archived(session=session, ids=ids, cutoff=cutoff, dry_run=dry_run)
            session.commit()
            return count

    def count_archived_older_than(self, cutoff: datetime) -> int:
        """Archived entries closed before ``cutoff``."""
        with self._read() as session:
            return count_archived_older_than(session=session, cutoff=cutoff)

    def cleanup_counts(self, now: datetime, retention_days: int,
                       purge_after_days: int) -> dict[str, Any]:
        """Age-bucketed counts for ``get_cleanup_stats``."""
        with self._read() as session:
            return cleanup_counts(session=session, now=now, retention_days=retention_days,
                                  purge_after_days=purge_after_days)
