"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# JSON on SQLite, JSONB on PostgreSQL
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

ENTRY_INDEXES = {
    "ix_dlq_entries_status_created": ["status", "created_at", "id"],
    "ix_dlq_entries_domain_status_created": ["domain", "status", "created_at", "id"],
    "ix_dlq_entries_status_domain": ["status", "domain"],
    "ix_dlq_entries_failure_type_created": ["failure_type", "created_at"],
    "ix_dlq_entries_created": ["created_at", "id"],
    "ix_dlq_entries_entity": ["entity_type", "entity_id"],
    "ix_dlq_entries_user": ["user_id"],
    "ix_dlq_entries_status_expires": ["status", "expires_at"],
    "ix_dlq_entries_status_closed": ["status", "closed_at"],
}

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dlq_audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ticket_url", sa.String(length=1000), nullable=True),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entry_id", "seq", name="uq_dlq_audit_entry_seq"),
    )
    with op.batch_alter_table("dlq_audit_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dlq_audit_events_entry_id"), ["entry_id"], unique=False
        )

    op.create_table(
        "dlq_entries",
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("domain", sa.String(length=100), nullable=False),
        sa.Column("failure_type", sa.String(length=100), nullable=False),
        sa.Column("entity_type", sa.String(length=255), nullable=True),
        sa.Column("entity_id", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("error_code", sa.String(length=255), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("snapshot_data", JSON, nullable=False),
        sa.Column("request_data", JSON, nullable=False),
        sa.Column("response_data", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("next_action_hint", sa.Text(), nullable=False),
        sa.Column("recommended_action", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("resolution_type", sa.String(length=100), nullable=True),
        sa.Column("resolution_notes", sa.Text(), nullable=False),
        sa.Column("attempts", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        for name, columns in ENTRY_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        for name in ENTRY_INDEXES:
            batch_op.drop_index(name)

    op.drop_table("dlq_entries")
    with op.batch_alter_table("dlq_audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dlq_audit_events_entry_id"))

    op.drop_table("dlq_audit_events")
