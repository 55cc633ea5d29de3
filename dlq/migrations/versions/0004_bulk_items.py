"""frozen id sets of bulk redrives

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dlq_bulk_items",
        sa.Column("bulk_id", sa.String(length=64), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("bulk_id", "entry_id"),
    )


def downgrade() -> None:
    op.drop_table("dlq_bulk_items")
