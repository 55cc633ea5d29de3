"""SQL behind the DLQ: keyword-only functions over a SQLModel session.

The entry workflow's ``persist_entry`` activity writes through
:func:`upsert_entry` and :func:`append_audit_events`; the service reads
through :class:`SQLModelRepository`. Tests call both directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dlq._db import DLQAuditEventRow, DLQEntry
from dlq._types import AuditEvent, EntryState, FailedOperationData

__all__ = [
    "FailedOperationRepository",
    "SQLModelRepository",
    "append_audit_events",
    "entry_to_data",
    "entry_to_dict",
    "get_entry_row",
    "list_audit_events",
    "upsert_entry",
]

# Columns a transition may change; the rest are written once, at capture.
MUTABLE_COLUMNS = (
    "status", "retry_count", "max_retries", "occurrences", "last_error", "resolution_type",
    "resolution_notes", "attempts", "version", "updated_at", "expires_at", "resolved_at",
    "closed_at", "last_attempt_at",
)
DATA_COLUMNS = (
    "workflow_id", "domain", "failure_type", "entity_type", "entity_id", "user_id",
    "error_code", "error_message", "snapshot_data", "request_data", "response_data",
    "next_action_hint", "recommended_action", "created_at",
)


def _insert(session: Session, model: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"unsupported SQL dialect {dialect!r} (use SQLite or PostgreSQL)")


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
    if not include_data:
        result = session.execute(
            sa.update(DLQEntry)
            .where(DLQEntry.id == state.id, DLQEntry.version < state.version)
            .values(**values)
            .returning(DLQEntry.id)
        )
        return result.first() is not None
    insert_values = dict(values, id=state.id, extra_metadata=state.metadata,
                         **{name: getattr(state, name) for name in DATA_COLUMNS})
    stmt = _insert(session, DLQEntry).values(**insert_values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[DLQEntry.id],
        set_={name: getattr(stmt.excluded, name) for name in MUTABLE_COLUMNS},
        where=DLQEntry.version < stmt.excluded.version,
    )
    # RETURNING, because rowcount is not reliable for upserts on every driver.
    return session.execute(stmt.returning(DLQEntry.id)).first() is not None


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
    stmt = _insert(session, DLQAuditEventRow).values(rows)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["entry_id", "seq"]))
    return len(rows)


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


@runtime_checkable
class FailedOperationRepository(Protocol):
    """Read side of the DLQ's SQL store, replaceable through ``DLQService(repository=...)``."""

    def get(self, entry_id: str) -> FailedOperationData | None:
        """The entry as :class:`FailedOperationData`, or None."""
        ...

    def get_detail(self, entry_id: str) -> dict[str, Any] | None:
        """The entry as a JSON-safe dict with attempts and audit events, or None."""
        ...


class SQLModelRepository:
    """The default :class:`FailedOperationRepository`, on SQLite or PostgreSQL.

    Args:
        engine: SQLAlchemy engine of the read model.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, entry_id: str) -> FailedOperationData | None:
        """The entry as :class:`FailedOperationData`, or None."""
        with Session(self.engine) as session:
            row = get_entry_row(session=session, entry_id=entry_id)
            return entry_to_data(row) if row else None

    def get_detail(self, entry_id: str) -> dict[str, Any] | None:
        """The entry as a JSON-safe dict with attempts and audit events, or None."""
        with Session(self.engine) as session:
            row = get_entry_row(session=session, entry_id=entry_id)
            if row is None:
                return None
            return entry_to_dict(row, list_audit_events(session=session, entry_id=entry_id))
