"""The SQL read model: SQLModel tables, engines and migrations.

Temporal is the source of truth for live entries; these tables are the
queryable projection and the only record once an entry's workflow closed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Field, SQLModel

from dlq._keys import KeyRing
from dlq._sealed import EncryptedJSON, attach_key_ring

__all__ = ["DLQAlertRow", "DLQAuditEventRow", "DLQEntry", "DLQEntryBase", "DLQEntryCountRow",
           "DLQGroupMinuteRow", "DLQGroupRow", "DLQPayloadRow", "DLQPurgeRow",
           "DLQPurgedEntryRow", "create_db_engine", "migrate"]


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no time zone type; store naive UTC there and hand back aware
    values everywhere, so comparisons never mix naive and aware datetimes.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
# For a JSON column that may be absent: None is SQL NULL, not the JSON text 'null'.
NullableJSONType = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True),
                                                           "postgresql")


def _json_column() -> Any:
    return Field(default_factory=dict, sa_type=JSONType, sa_column_kwargs={"nullable": False})


def _data_column(**column: Any) -> Any:
    # Data a caller or operator handed over: sealed when the engine has a key ring.
    return Field(default_factory=dict, sa_type=EncryptedJSON,
                 sa_column_kwargs={"nullable": False, **column})


def _dt(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class DLQEntryBase(SQLModel):
    """Columns of an entry row shared by the table and its public view."""

    workflow_id: str = Field(max_length=200)
    domain: str = Field(max_length=100)
    failure_type: str = Field(max_length=100)
    entity_type: str | None = Field(default=None, max_length=255)
    entity_id: str | None = Field(default=None, max_length=255)
    user_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    error_code: str = Field(default="", max_length=255)
    error_message: str = Field(default="", sa_type=sa.Text)
    snapshot_data: dict[str, Any] = _data_column()
    request_data: dict[str, Any] = _data_column()
    response_data: dict[str, Any] = _data_column()
    # "metadata" is reserved by SQLAlchemy's declarative base.
    extra_metadata: dict[str, Any] = _data_column(name="metadata")
    next_action_hint: str = Field(default="", sa_type=sa.Text)
    recommended_action: str = Field(default="", max_length=100)
    status: str = Field(default="pending", max_length=32)
    retry_count: int = 0
    max_retries: int = 2
    occurrences: int = 1
    dedup_key: str | None = Field(default=None, max_length=255)
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    resolution_type: str | None = Field(default=None, max_length=100)
    resolution_notes: str = Field(default="", sa_type=sa.Text)
    attempts: list[dict[str, Any]] = Field(
        default_factory=list, sa_type=JSONType, sa_column_kwargs={"nullable": False}
    )
    version: int = 0
    # Edit before replay: how many edits, the last one's time, and the data as
    # captured ({"request_data": ..., "snapshot_data": ...}), kept at the first edit.
    data_edits: int = 0
    data_edited_at: datetime | None = _dt()
    original_data: dict[str, Any] | None = Field(default=None,
                                                 sa_type=EncryptedJSON(none_as_null=True))
    # Dotted paths replaced with "[Filtered]" at capture (see dlq/_redact.py).
    redacted_paths: list[str] = Field(default_factory=list, sa_type=JSONType,
                                      sa_column_kwargs={"nullable": False})
    created_at: datetime = _dt(nullable=False)
    updated_at: datetime = _dt(nullable=False)
    expires_at: datetime | None = _dt()
    resolved_at: datetime | None = _dt()
    closed_at: datetime | None = _dt()
    last_attempt_at: datetime | None = _dt()
    last_seen_at: datetime | None = _dt()


class DLQEntry(DLQEntryBase, table=True):
    """One DLQ entry (the projection of one ``DLQEntryWorkflow``)."""

    __tablename__ = "dlq_entries"
    # Each index serves a query of the list, facet, stats or maintenance API;
    # the trailing id makes keyset pagination and tie-breaks index-only.
    __table_args__ = (
        sa.Index("ix_dlq_entries_status_created", "status", "created_at", "id"),
        sa.Index("ix_dlq_entries_domain_status_created", "domain", "status", "created_at", "id"),
        sa.Index("ix_dlq_entries_status_domain", "status", "domain"),
        sa.Index("ix_dlq_entries_failure_type_created", "failure_type", "created_at"),
        sa.Index("ix_dlq_entries_created", "created_at", "id"),
        sa.Index("ix_dlq_entries_entity", "entity_type", "entity_id"),
        sa.Index("ix_dlq_entries_user", "user_id"),
        sa.Index("ix_dlq_entries_status_expires", "status", "expires_at"),
        sa.Index("ix_dlq_entries_status_closed", "status", "closed_at"),
        sa.Index("ix_dlq_entries_dedup", "domain", "failure_type", "dedup_key"),
        # Operators paste workflow ids (a dedup entry's is shared by its successive entries).
        sa.Index("ix_dlq_entries_workflow", "workflow_id", "created_at"),
        # The entries of one failure group, newest first (list filter ``group``).
        sa.Index("ix_dlq_entries_fingerprint", "fingerprint", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=64)
    # The failure group (dlq._fingerprint); NULL with grouping off or before migration 0009.
    fingerprint: str | None = Field(default=None, max_length=32)


class DLQAuditEventRow(SQLModel, table=True):
    """One audit event of an entry; (entry_id, seq) is unique so replays are idempotent."""

    __tablename__ = "dlq_audit_events"
    __table_args__ = (sa.UniqueConstraint("entry_id", "seq", name="uq_dlq_audit_entry_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    entry_id: str = Field(max_length=64, index=True)
    seq: int
    at: datetime = _dt(nullable=False)
    action: str = Field(max_length=64)
    actor: str | None = Field(default=None, max_length=255)
    reason: str = Field(default="", sa_type=sa.Text)
    ticket_url: str | None = Field(default=None, max_length=1000)
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str | None = Field(default=None, max_length=32)
    # An edit's details hold the changed data: sealed like the data itself.
    details: dict[str, Any] = _data_column()


class DLQPayloadRow(SQLModel, table=True):
    """Data fields too large to travel through Temporal (a claim check).

    Written by the client before the entry's workflow starts; the workflow
    carries only the reference.
    """

    __tablename__ = "dlq_payloads"

    entry_id: str = Field(primary_key=True, max_length=64)
    data: dict[str, Any] = _data_column()
    created_at: datetime = _dt(nullable=False)


class DLQBulkItemRow(SQLModel, table=True):
    """One entry of a bulk redrive's frozen set, fixed when the redrive starts."""

    __tablename__ = "dlq_bulk_items"

    bulk_id: str = Field(primary_key=True, max_length=64)
    entry_id: str = Field(primary_key=True, max_length=64)


class DLQEntryCountRow(SQLModel, table=True):
    """How many entries have one (domain, status): the source of facets and stats counts.

    Kept exact by database triggers on ``dlq_entries`` (migration 0005), so
    every writer, SQL run by hand included, keeps it right. A row whose count
    fell to zero stays; readers skip it.
    """

    __tablename__ = "dlq_entry_counts"

    domain: str = Field(primary_key=True, max_length=100)
    status: str = Field(primary_key=True, max_length=32)
    n: int = Field(sa_type=sa.BigInteger, nullable=False)


class DLQPurgeRow(SQLModel, table=True):
    """One purge that deleted entries: who, when, why and by which criteria."""

    __tablename__ = "dlq_purges"

    purge_id: str = Field(primary_key=True, max_length=32)
    at: datetime = _dt(nullable=False, index=True)
    actor: str = Field(max_length=255)
    reason: str = Field(default="", sa_type=sa.Text)
    criteria: dict[str, Any] = _json_column()
    count: int = Field(default=0, sa_type=sa.BigInteger)


class DLQPurgedEntryRow(SQLModel, table=True):
    """A tombstone of one purged entry: what it was, and the purge that deleted it."""

    __tablename__ = "dlq_purged_entries"

    purge_id: str = Field(primary_key=True, max_length=32)
    entry_id: str = Field(primary_key=True, max_length=64, index=True)
    domain: str = Field(max_length=100)
    failure_type: str = Field(max_length=100)
    created_at: datetime = _dt(nullable=False)
    closed_at: datetime | None = _dt()


class DLQGroupRow(SQLModel, table=True):
    """One failure group: entries with the same fingerprint (see :mod:`dlq._fingerprint`).

    Created by ``persist_entry`` when it first writes an entry of the group;
    its counts are kept by database triggers on ``dlq_entries`` (migration
    0009), so they move only with real row changes (the versioned upsert).
    """

    __tablename__ = "dlq_groups"

    fingerprint: str = Field(primary_key=True, max_length=32)
    domain: str = Field(max_length=100)
    failure_type: str = Field(max_length=100)
    error_code: str = Field(default="", max_length=255)
    message: str = Field(default="", sa_type=sa.Text)
    entries: int = Field(default=0, sa_type=sa.BigInteger)
    occurrences: int = Field(default=0, sa_type=sa.BigInteger)
    open_count: int = Field(default=0, sa_type=sa.BigInteger)
    first_seen_at: datetime | None = _dt(index=True)
    last_seen_at: datetime | None = _dt(index=True)


class DLQGroupMinuteRow(SQLModel, table=True):
    """Occurrences of one group in one minute (epoch minutes): the last hour/day and rates."""

    __tablename__ = "dlq_group_minutes"

    fingerprint: str = Field(primary_key=True, max_length=32)
    minute: int = Field(primary_key=True, sa_type=sa.BigInteger)
    n: int = Field(default=0, sa_type=sa.BigInteger)


class DLQAlertRow(SQLModel, table=True):
    """One alert the alert rules raised, and whether its notifications reached their webhooks."""

    __tablename__ = "dlq_alerts"
    __table_args__ = (sa.Index("ix_dlq_alerts_rule_subject", "rule", "subject", "created_at"),)

    id: str = Field(primary_key=True, max_length=32)
    rule: str = Field(max_length=100)
    kind: str = Field(max_length=32)
    subject: str = Field(max_length=255)
    status: str = Field(default="pending", max_length=16)  # pending | delivered | failed
    title: str = Field(default="", sa_type=sa.Text)
    count: int = Field(default=0, sa_type=sa.BigInteger)
    since: datetime | None = _dt()
    link: str = Field(default="", sa_type=sa.Text)
    details: dict[str, Any] = _json_column()
    attempts: int = 0
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _dt(nullable=False, index=True)
    delivered_at: datetime | None = _dt()


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def create_db_engine(url: str, *, key_ring: KeyRing | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url``, tuned for several processes on SQLite.

    SQLite files get WAL, ``synchronous=NORMAL`` and a busy timeout, because the
    worker writes while clients read from other processes; the parent
    folder is created. With ``key_ring``, the data columns are encrypted
    (see :mod:`dlq._sealed`).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        # Errors must not carry row values into logs and Temporal histories.
        kwargs.setdefault("hide_parameters", True)
        return attach_key_ring(sa.create_engine(url, **kwargs), key_ring)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    kwargs.setdefault("hide_parameters", True)
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        # SQLite's own lower() folds ASCII only, so the case-insensitive
        # error_message search missed "échec" for "ÉCHEC" where PostgreSQL finds
        # it. Python's str.lower folds as PostgreSQL's lower() does in a UTF-8
        # database; it costs ~0.3 µs more per row scanned by that search.
        dbapi_conn.create_function("lower", 1, _unicode_lower, deterministic=True)

    return attach_key_ring(engine, key_ring)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (idempotent).

    On PostgreSQL an advisory lock serialises concurrent workers starting
    at once.
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(724315)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
