"""failure groups (fingerprint, dlq_groups kept by triggers, per-minute counts) and alerts

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

* ``dlq_entries.fingerprint``: the entry's failure group, written once with the
  row (``persist_entry``), indexed with ``created_at, id`` for the ``group``
  list filter.
* ``dlq_groups``: one row per fingerprint. ``persist_entry`` creates it (with
  zero counts) before the entry's first write; triggers on ``dlq_entries``
  keep ``entries``, ``occurrences``, ``open_count``, ``first_seen_at`` and
  ``last_seen_at``. Triggers fire only for row changes that happened, and the
  entry upsert applies only a newer ``version``, so a repeated or late
  ``persist_entry`` never counts twice. They run in the writer's transaction.
* ``dlq_group_minutes``: occurrences per group and epoch minute (an insert
  adds the entry's occurrences, a dedup occurrence adds the increase), the
  source of the last hour/day counts and of the rate alert.
* ``dlq_alerts``: every alert the alert rules raised, with its delivery outcome.

Entries written before this migration keep a NULL fingerprint and no group.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
OPEN = "('pending', 'replaying', 'requires_review')"

SQLITE_MINUTE = "CAST(strftime('%s', {t}) AS INTEGER) / 60"
SQLITE_SEEN = "coalesce(NEW.last_seen_at, NEW.created_at)"

SQLITE_TRIGGERS = (
    f"""
    CREATE TRIGGER dlq_groups_insert AFTER INSERT ON dlq_entries
    WHEN NEW.fingerprint IS NOT NULL
    BEGIN
        UPDATE dlq_groups SET
            entries = entries + 1,
            occurrences = occurrences + NEW.occurrences,
            open_count = open_count + (NEW.status IN {OPEN}),
            first_seen_at = CASE WHEN first_seen_at IS NULL OR NEW.created_at < first_seen_at
                                 THEN NEW.created_at ELSE first_seen_at END,
            last_seen_at = CASE WHEN last_seen_at IS NULL OR {SQLITE_SEEN} > last_seen_at
                                THEN {SQLITE_SEEN} ELSE last_seen_at END
        WHERE fingerprint = NEW.fingerprint;
        INSERT INTO dlq_group_minutes (fingerprint, minute, n)
        VALUES (NEW.fingerprint, {SQLITE_MINUTE.format(t=SQLITE_SEEN)}, NEW.occurrences)
        ON CONFLICT (fingerprint, minute) DO UPDATE SET n = n + excluded.n;
    END
    """,
    f"""
    CREATE TRIGGER dlq_groups_update AFTER UPDATE OF status, occurrences ON dlq_entries
    WHEN NEW.fingerprint IS NOT NULL
         AND ((OLD.status IN {OPEN}) IS NOT (NEW.status IN {OPEN})
              OR NEW.occurrences > OLD.occurrences)
    BEGIN
        UPDATE dlq_groups SET
            open_count = open_count + (NEW.status IN {OPEN}) - (OLD.status IN {OPEN}),
            occurrences = occurrences + max(NEW.occurrences - OLD.occurrences, 0),
            last_seen_at = CASE WHEN NEW.occurrences > OLD.occurrences
                                     AND (last_seen_at IS NULL OR {SQLITE_SEEN} > last_seen_at)
                                THEN {SQLITE_SEEN} ELSE last_seen_at END
        WHERE fingerprint = NEW.fingerprint;
        INSERT INTO dlq_group_minutes (fingerprint, minute, n)
        SELECT NEW.fingerprint, {SQLITE_MINUTE.format(t=SQLITE_SEEN)},
               NEW.occurrences - OLD.occurrences
        WHERE NEW.occurrences > OLD.occurrences
        ON CONFLICT (fingerprint, minute) DO UPDATE SET n = n + excluded.n;
    END
    """,
    f"""
    CREATE TRIGGER dlq_groups_delete AFTER DELETE ON dlq_entries
    WHEN OLD.fingerprint IS NOT NULL AND OLD.status IN {OPEN}
    BEGIN
        UPDATE dlq_groups SET open_count = open_count - 1 WHERE fingerprint = OLD.fingerprint;
    END
    """,
)

PG_SEEN = "coalesce(NEW.last_seen_at, NEW.created_at)"
PG_MINUTE = f"floor(extract(epoch FROM {PG_SEEN}) / 60)::bigint"

PG_FUNCTION = f"""
CREATE FUNCTION dlq_groups_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE dlq_groups SET
            entries = entries + 1,
            occurrences = occurrences + NEW.occurrences,
            open_count = open_count + (NEW.status IN {OPEN})::int,
            first_seen_at = least(first_seen_at, NEW.created_at),
            last_seen_at = greatest(last_seen_at, {PG_SEEN})
        WHERE fingerprint = NEW.fingerprint;
        INSERT INTO dlq_group_minutes AS m (fingerprint, minute, n)
        VALUES (NEW.fingerprint, {PG_MINUTE}, NEW.occurrences)
        ON CONFLICT (fingerprint, minute) DO UPDATE SET n = m.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE dlq_groups SET open_count = open_count - 1 WHERE fingerprint = OLD.fingerprint;
    ELSE
        UPDATE dlq_groups SET
            open_count = open_count + (NEW.status IN {OPEN})::int - (OLD.status IN {OPEN})::int,
            occurrences = occurrences + greatest(NEW.occurrences - OLD.occurrences, 0),
            last_seen_at = CASE WHEN NEW.occurrences > OLD.occurrences
                                THEN greatest(last_seen_at, {PG_SEEN}) ELSE last_seen_at END
        WHERE fingerprint = NEW.fingerprint;
        IF NEW.occurrences > OLD.occurrences THEN
            INSERT INTO dlq_group_minutes AS m (fingerprint, minute, n)
            VALUES (NEW.fingerprint, {PG_MINUTE}, NEW.occurrences - OLD.occurrences)
            ON CONFLICT (fingerprint, minute) DO UPDATE SET n = m.n + EXCLUDED.n;
        END IF;
    END IF;
    RETURN NULL;
END
$$
"""

PG_TRIGGERS = (
    """
    CREATE TRIGGER dlq_groups_insert AFTER INSERT ON dlq_entries
    FOR EACH ROW WHEN (NEW.fingerprint IS NOT NULL) EXECUTE FUNCTION dlq_groups_apply()
    """,
    # The WHEN clause is checked without calling the function: most updates
    # (retry counts, attempts) neither open/close an entry nor add occurrences.
    f"""
    CREATE TRIGGER dlq_groups_update AFTER UPDATE OF status, occurrences ON dlq_entries
    FOR EACH ROW
    WHEN (NEW.fingerprint IS NOT NULL
          AND ((OLD.status IN {OPEN}) IS DISTINCT FROM (NEW.status IN {OPEN})
               OR NEW.occurrences > OLD.occurrences))
    EXECUTE FUNCTION dlq_groups_apply()
    """,
    f"""
    CREATE TRIGGER dlq_groups_delete AFTER DELETE ON dlq_entries
    FOR EACH ROW WHEN (OLD.fingerprint IS NOT NULL AND OLD.status IN {OPEN})
    EXECUTE FUNCTION dlq_groups_apply()
    """,
)

TRIGGERS = ("dlq_groups_insert", "dlq_groups_update", "dlq_groups_delete")


def upgrade() -> None:
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_dlq_entries_fingerprint",
                              ["fingerprint", "created_at", "id"], unique=False)
    op.create_table(
        "dlq_groups",
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("domain", sa.String(length=100), nullable=False),
        sa.Column("failure_type", sa.String(length=100), nullable=False),
        sa.Column("error_code", sa.String(length=255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("occurrences", sa.BigInteger(), nullable=False),
        sa.Column("open_count", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("fingerprint"),
    )
    op.create_index("ix_dlq_groups_first_seen_at", "dlq_groups", ["first_seen_at"])
    op.create_index("ix_dlq_groups_last_seen_at", "dlq_groups", ["last_seen_at"])
    op.create_table(
        "dlq_group_minutes",
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", "minute"),
    )
    op.create_table(
        "dlq_alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("link", sa.Text(), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dlq_alerts_created_at", "dlq_alerts", ["created_at"])
    op.create_index("ix_dlq_alerts_rule_subject", "dlq_alerts",
                    ["rule", "subject", "created_at"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(PG_FUNCTION)
        statements = PG_TRIGGERS
    elif dialect == "sqlite":
        statements = SQLITE_TRIGGERS
    else:
        raise NotImplementedError(f"unsupported SQL dialect {dialect!r}")
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON dlq_entries" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS dlq_groups_apply()")
    op.drop_index("ix_dlq_alerts_rule_subject", table_name="dlq_alerts")
    op.drop_index("ix_dlq_alerts_created_at", table_name="dlq_alerts")
    op.drop_table("dlq_alerts")
    op.drop_table("dlq_group_minutes")
    op.drop_index("ix_dlq_groups_last_seen_at", table_name="dlq_groups")
    op.drop_index("ix_dlq_groups_first_seen_at", table_name="dlq_groups")
    op.drop_table("dlq_groups")
    with op.batch_alter_table("dlq_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_dlq_entries_fingerprint")
        batch_op.drop_column("fingerprint")
