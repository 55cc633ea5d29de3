"""dedup key and last-seen time of repeated failures

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dedup_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_dlq_entries_dedup", ["domain", "failure_type", "dedup_key"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_dlq_entries_dedup")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("dedup_key")
