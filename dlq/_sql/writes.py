"""What ``persist_entry`` and the claim check write: the entry row, audit events, large data."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from dlq._db import DLQAuditEventRow, DLQEntry, DLQPayloadRow
from dlq._fields import DATA_FIELDS, FAILURE_FIELDS
from dlq._models import AuditEvent, EntryState
from dlq._sql.dialect import DIALECTS, dialect_of

__all__ = [
    "DATA_COLUMNS",
    "MUTABLE_COLUMNS",
    "PAYLOAD_FIELDS",
    "append_audit_events",
    "load_payload",
    "save_payload",
    "upsert_entry",
]

# Columns a transition may change; the rest are written once, at capture.
MUTABLE_COLUMNS = (
    "status", "retry_count", "max_retries", "occurrences", "last_error", "resolution_type",
    "resolution_notes", "attempts", "version", "updated_at", "expires_at", "resolved_at",
    "closed_at", "last_attempt_at", "last_seen_at", "data_edits", "data_edited_at",
)
# Written again only when an operator edited the data (edit before replay).
EDITED_COLUMNS = ("request_data", "snapshot_data", "original_data")
# Written once, at capture: the failure's fields ("metadata" is a column name the
# ORM model cannot use, so it is bound apart), where the entry lives and when.
DATA_COLUMNS = ("workflow_id", *(f for f in FAILURE_FIELDS if f != "metadata"), "created_at",
                "redacted_paths")
# The data fields a claim check moves to SQL when they are too large for Temporal.
PAYLOAD_FIELDS = DATA_FIELDS

_ENTRY_TABLE: sa.Table = DLQEntry.__table__  # type: ignore[attr-defined]


@functools.cache
def _entry_statements(dialect: str, data_changed: bool = False) -> tuple[Any, Any]:
    """The entry upsert and update, built once per dialect; values come as parameters.

    With ``data_changed`` they also write the edited data columns.

    Persisting runs for every transition of every entry. Building a statement
    with its values each time (ORM-enabled or not) costs more CPU than the SQL
    itself; a fixed Core statement hits the compiled cache at once.
    """
    table = _ENTRY_TABLE
    insert = DIALECTS[dialect].insert
    columns = (*MUTABLE_COLUMNS, "id", "metadata", "original_data", "fingerprint",
               *DATA_COLUMNS)
    changing = (*MUTABLE_COLUMNS, *(EDITED_COLUMNS if data_changed else ()))
    ins = insert(table).values({name: sa.bindparam(name, type_=table.c[name].type)
                                for name in columns})
    upsert = ins.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={name: ins.excluded[name] for name in changing},
        where=table.c.version < ins.excluded.version,
    ).returning(table.c.id)
    update = (sa.update(table)
              .where(table.c.id == sa.bindparam("w_id", type_=table.c.id.type),
                     table.c.version < sa.bindparam("w_version", type_=table.c.version.type))
              .values({name: sa.bindparam(name, type_=table.c[name].type)
                       for name in changing})
              .returning(table.c.id))
    return upsert, update


def upsert_entry(*, session: Session, state: EntryState, include_data: bool,
                 data_changed: bool = False, fingerprint: str | None = None) -> bool:
    """Write the entry row at ``state.version`` unless a newer version is stored.

    Args:
        session: Open session; the caller commits.
        state: The entry's state.
        include_data: Insert the row if missing (first persist). When False,
            only the mutable columns of an existing row are updated.
        data_changed: The editable data was edited: write ``request_data``,
            ``snapshot_data`` and ``original_data`` too.
        fingerprint: The entry's failure group, written with a new row only
            (None: no group).

    Returns:
        True if the row changed, False if the stored version was not older.
    """
    values: dict[str, Any] = {name: getattr(state, name) for name in MUTABLE_COLUMNS}
    values["status"] = str(state.status)
    values["attempts"] = [a.model_dump(mode="json") for a in state.attempts]
    upsert, update = _entry_statements(dialect_of(session).name, data_changed)
    if data_changed or include_data:
        values.update({name: getattr(state, name) for name in EDITED_COLUMNS})
    if not include_data:
        values.update(w_id=state.id, w_version=state.version)
        return session.execute(update, values).first() is not None
    values.update(id=state.id, metadata=state.metadata, fingerprint=fingerprint,
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
    session.execute(_audit_statement(dialect_of(session).name), rows)
    return len(rows)


@functools.cache
def _audit_statement(dialect: str) -> Any:
    """The audit append, built once per dialect (see :func:`_entry_statements`)."""
    table: sa.Table = DLQAuditEventRow.__table__  # type: ignore[attr-defined]
    return DIALECTS[dialect].insert(table).on_conflict_do_nothing(
        index_elements=["entry_id", "seq"])


def save_payload(*, session: Session, entry_id: str, data: dict[str, Any],
                 now: datetime | None = None) -> None:
    """Keep an entry's large data fields (idempotent: a second save changes nothing)."""
    stmt = dialect_of(session).insert(DLQPayloadRow).values(
        entry_id=entry_id, data=data, created_at=now or datetime.now(UTC))
    session.execute(stmt.on_conflict_do_nothing(index_elements=["entry_id"]))


def load_payload(*, session: Session, entry_id: str) -> dict[str, Any] | None:
    """The data fields kept by :func:`save_payload`, or None."""
    row = session.get(DLQPayloadRow, entry_id)
    return dict(row.data) if row else None
