"""counter rows per (domain, status), kept by triggers, for facets and stats

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Facet counts and the status/domain counts of ``get_stats`` were GROUP BYs over
every entry (hundreds of ms at 1M rows). ``dlq_entry_counts`` holds one row per
(domain, status) with its entry count, so those reads touch a few dozen rows.

The counts are kept by triggers on ``dlq_entries`` rather than by application
code, so every path that writes entries keeps them exact: ``persist_entry``
upserts, archive, purge, orphan expiry, tests and operators' own SQL.

* A counter row is never deleted when it reaches zero: deleting a hot row
  races with a concurrent increment, and readers drop zero rows anyway.
* PostgreSQL: increments are ``INSERT ... ON CONFLICT DO UPDATE``, so the
  first entry of a new (domain, status) never races another into a unique
  violation. A status change touches two counter rows; it locks them in key
  order, so two entries moving in opposite directions (pending -> replaying
  and replaying -> pending) never deadlock on them.
* SQLite has one writer at a time, so no ordering is needed; the same upsert
  creates the row on first use. SQLite fires no delete trigger for rows that
  ``INSERT OR REPLACE`` removes (unless ``recursive_triggers`` is on); nothing
  in the DLQ writes entries that way.

The backfill runs after the triggers exist, in the same transaction; on
PostgreSQL the table is locked against writers first, so no entry written
during the migration is counted twice or missed.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BACKFILL = """
INSERT INTO dlq_entry_counts (domain, status, n)
SELECT domain, status, count(*) FROM dlq_entries GROUP BY domain, status
"""

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER dlq_entry_counts_insert AFTER INSERT ON dlq_entries
    BEGIN
        INSERT INTO dlq_entry_counts (domain, status, n) VALUES (NEW.domain, NEW.status, 1)
        ON CONFLICT (domain, status) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER dlq_entry_counts_update AFTER UPDATE OF status, domain ON dlq_entries
    WHEN OLD.status IS NOT NEW.status OR OLD.domain IS NOT NEW.domain
    BEGIN
        UPDATE dlq_entry_counts SET n = n - 1
        WHERE domain = OLD.domain AND status = OLD.status;
        INSERT INTO dlq_entry_counts (domain, status, n) VALUES (NEW.domain, NEW.status, 1)
        ON CONFLICT (domain, status) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER dlq_entry_counts_delete AFTER DELETE ON dlq_entries
    BEGIN
        UPDATE dlq_entry_counts SET n = n - 1
        WHERE domain = OLD.domain AND status = OLD.status;
    END
    """,
)

# One function for the three row triggers: TG_OP says which one fired.
PG_FUNCTION = """
CREATE FUNCTION dlq_entry_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO dlq_entry_counts AS c (domain, status, n)
        VALUES (NEW.domain, NEW.status, 1)
        ON CONFLICT (domain, status) DO UPDATE SET n = c.n + 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE dlq_entry_counts SET n = n - 1
        WHERE domain = OLD.domain AND status = OLD.status;
    ELSE
        -- Lock the two counter rows in key order (see the module docstring).
        INSERT INTO dlq_entry_counts AS c (domain, status, n)
        SELECT d.domain, d.status, d.delta
        FROM (VALUES (OLD.domain, OLD.status, -1), (NEW.domain, NEW.status, 1))
             AS d (domain, status, delta)
        ORDER BY d.domain, d.status
        ON CONFLICT (domain, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END
$$
"""

PG_TRIGGERS = (
    """
    CREATE TRIGGER dlq_entry_counts_insert AFTER INSERT ON dlq_entries
    FOR EACH ROW EXECUTE FUNCTION dlq_entry_counts_apply()
    """,
    # The WHEN clause is checked without calling the function, so the many
    # updates that keep status and domain cost next to nothing.
    """
    CREATE TRIGGER dlq_entry_counts_update AFTER UPDATE OF status, domain ON dlq_entries
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.domain IS DISTINCT FROM NEW.domain)
    EXECUTE FUNCTION dlq_entry_counts_apply()
    """,
    """
    CREATE TRIGGER dlq_entry_counts_delete AFTER DELETE ON dlq_entries
    FOR EACH ROW EXECUTE FUNCTION dlq_entry_counts_apply()
    """,
)


def upgrade() -> None:
    op.create_table(
        "dlq_entry_counts",
        sa.Column("domain", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("domain", "status"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # Keep writers out until commit (CREATE TRIGGER would also take this lock).
        op.execute("LOCK TABLE dlq_entries IN SHARE ROW EXCLUSIVE MODE")
        op.execute(PG_FUNCTION)
        statements = PG_TRIGGERS
    elif dialect == "sqlite":
        statements = SQLITE_TRIGGERS
    else:
        raise NotImplementedError(f"unsupported SQL dialect {dialect!r}")
    for statement in statements:
        op.execute(statement)
    op.execute(BACKFILL)


def downgrade() -> None:
    for name in ("dlq_entry_counts_insert", "dlq_entry_counts_update",
                 "dlq_entry_counts_delete"):
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON dlq_entries")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS dlq_entry_counts_apply()")
    op.drop_table("dlq_entry_counts")
