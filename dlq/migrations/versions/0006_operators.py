"""edit before replay, purge tombstones, entries by workflow id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

* ``dlq_entries`` gets ``data_edits``, ``data_edited_at`` and ``original_data``
  (the data as captured, kept at an entry's first edit), and an index on
  ``workflow_id`` (operators paste workflow ids; a deduplicated entry's is
  shared by its successive entries).
* ``dlq_purges`` records every purge that deleted entries (who, when, why,
  criteria, count) and ``dlq_purged_entries`` one tombstone per purged entry,
  so a purge leaves an audit record although it deletes the audit events.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_edits", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("data_edited_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("original_data", JSON, nullable=True))
        batch_op.create_index("ix_dlq_entries_workflow", ["workflow_id", "created_at"],
                              unique=False)
    op.create_table(
        "dlq_purges",
        sa.Column("purge_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("criteria", JSON, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("purge_id"),
    )
    op.create_index("ix_dlq_purges_at", "dlq_purges", ["at"], unique=False)
    op.create_table(
        "dlq_purged_entries",
        sa.Column("purge_id", sa.String(length=32), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("domain", sa.String(length=100), nullable=False),
        sa.Column("failure_type", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("purge_id", "entry_id"),
    )
    op.create_index("ix_dlq_purged_entries_entry_id", "dlq_purged_entries", ["entry_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_dlq_purged_entries_entry_id", table_name="dlq_purged_entries")
    op.drop_table("dlq_purged_entries")
    op.drop_index("ix_dlq_purges_at", table_name="dlq_purges")
    op.drop_table("dlq_purges")
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_dlq_entries_workflow")
        batch_op.drop_column("original_data")
        batch_op.drop_column("data_edited_at")
        batch_op.drop_column("data_edits")
