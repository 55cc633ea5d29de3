"""which paths of an entry were redacted at capture

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-29

* ``dlq_entries`` gets ``redacted_paths``: the dotted paths whose values were
  replaced with ``[Filtered]`` before the entry was written anywhere, so an
  operator knows why a field reads ``[Filtered]``. Existing rows get ``[]``.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redacted_paths", JSON, nullable=False,
                                      server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        batch_op.drop_column("redacted_paths")
