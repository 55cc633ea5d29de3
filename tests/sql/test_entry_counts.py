"""Counter rows per (domain, status), kept by triggers; facets and the list hot path.

Every check compares ``dlq_entry_counts`` with a GROUP BY over ``dlq_entries``,
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dlq import _sql as repo
from dlq import _state as sm
from dlq._db import DLQEntry, create_db_engine, migrate
from dlq._filters import parse_filters
from dlq._messages import EntryInput
from dlq._models import DLQStatus
from tests.support.seed import seed_entry
from tests.support.sql import PG_MISSING, fresh_pg_database

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DOMAINS = ("payment", "webhook", "inventory")


def _url(backend: str, tmp_path: Path, pg_url: str | None, name: str = "c.db") -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/{name}"
    if pg_url is None:
        pytest.fail(PG_MISSING)
    return pg_url


@pytest.fixture
def engine(read_model: Engine) -> Engine:
    return read_model


def counters(engine: Engine) -> dict[tuple[str, str], int]:
    """Non-zero counter rows."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT domain, status, n FROM dlq_entry_counts")).all()
    return {(d, s): int(n) for d, s, n in rows if n != 0}


def grouped(engine: Engine) -> dict[tuple[str, str], int]:
    """The truth: a GROUP BY over every entry."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT domain, status, count(*) FROM dlq_entries GROUP BY domain, status")).all()
    return {(d, s): int(n) for d, s, n in rows}


def assert_exact(engine: Engine) -> None:
    assert counters(engine) == grouped(engine)
    with engine.connect() as conn:
        negative = conn.execute(sa.text("SELECT count(*) FROM dlq_entry_counts WHERE n < 0"))
        assert negative.scalar_one() == 0


def state_of(dlq_id: str, domain: str = "payment"):
    entry = EntryInput(dlq_id=dlq_id, domain=domain, failure_type="PG_TIMEOUT", created_at=T0)
    return sm.new_state(entry, workflow_id=f"dlq-{dlq_id}", now=T0, rand=0.5)


def persist(engine: Engine, state, include_data: bool) -> bool:
    with Session(engine) as session:
        changed = repo.upsert_entry(session=session, state=state, include_data=include_data)
        session.commit()
    return changed


def test_counters_follow_upserts_updates_and_deletes(engine: Engine) -> None:
    states = [state_of(f"e-{i}", DOMAINS[i % 3]) for i in range(9)]
    for state in states:
        assert persist(engine, state, include_data=True)
    assert counters(engine) == {("payment", "pending"): 3, ("webhook", "pending"): 3,
                                ("inventory", "pending"): 3}
    # A repeated first persist (activity retry) is a conflict, not a second insert.
    assert not persist(engine, states[0], include_data=True)
    assert_exact(engine)
    # Status changes through both upsert paths, and an update that keeps the status.
    for i, status in enumerate((DLQStatus.REPLAYING, DLQStatus.RESOLVED,
                                DLQStatus.REQUIRES_REVIEW)):
        states[i].version += 1
        states[i].status = status
        assert persist(engine, states[i], include_data=i % 2 == 0)
    states[3].version += 1
    states[3].retry_count = 1
    assert persist(engine, states[3], include_data=False)
    # A late, older version changes nothing, counters included.
    stale = states[0].model_copy(deep=True)
    stale.version -= 1
    stale.status = DLQStatus.DISCARDED
    assert not persist(engine, stale, include_data=True)
    assert_exact(engine)
    assert counters(engine)[("payment", "replaying")] == 1
    # Operators' own SQL: a status change, a domain change, a no-op and deletes.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE dlq_entries SET status = 'discarded' "
                             "WHERE domain = 'webhook'"))
        conn.execute(sa.text("UPDATE dlq_entries SET domain = 'email' WHERE id = 'e-2'"))
        conn.execute(sa.text("UPDATE dlq_entries SET status = status"))
    assert_exact(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM dlq_entries WHERE id IN ('e-0', 'e-4')"))
    assert_exact(engine)
    with engine.begin() as conn:  # a rolled-back change leaves the counters alone
        conn.execute(sa.text("UPDATE dlq_entries SET status = 'expired'"))
        conn.rollback()
    assert_exact(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(DLQEntry))
    assert counters(engine) == {} and grouped(engine) == {}


def test_counters_follow_archive_purge_and_orphan_expiry(engine: Engine) -> None:
    sql = repo.SQLModelRepository(engine)
    now = datetime.now(UTC)
    for domain in DOMAINS:
        for status in ("resolved", "discarded", "expired"):
            seed_entry(engine, domain=domain, status=status, age=timedelta(days=45))
        seed_entry(engine, domain=domain, status="resolved", age=timedelta(days=2))
    orphans = [seed_entry(engine, domain=d, status="pending", age=timedelta(days=400))
               for d in DOMAINS]
    assert_exact(engine)
    assert sql.archive_closed(now - timedelta(days=30), now, True) == 9  # dry run
    assert_exact(engine)
    assert sql.archive_closed(now - timedelta(days=30), now, False) == 9
    assert_exact(engine)
    assert counters(engine)[("payment", "archived")] == 3
    assert sql.mark_expired(orphans[0], now)
    assert not sql.mark_expired(orphans[0], now)  # already closed: no second move
    assert_exact(engine)
    ids = [e["id"] for e in sql.list_page(parse_filters({"status": "archived",
                                                         "domain": "webhook"}), 0, 10)[0]]
    assert sql.purge_archived(ids[:2], None, False) == 2
    assert_exact(engine)
    assert sql.purge_archived(None, now, False) == 7
    assert_exact(engine)
    assert ("payment", "archived") not in counters(engine)


def _old_schema_entry(eng: Engine, *, domain: str, status: str) -> None:
    """An entry row written into an older schema: only the columns that schema has."""
    table = sa.Table("dlq_entries", sa.MetaData(), autoload_with=eng)
    now = datetime.now(UTC)
    dlq_id = f"old-{uuid.uuid4()}"
    state = sm.new_state(EntryInput(dlq_id=dlq_id, domain=domain, failure_type="PG_TIMEOUT"),
                         workflow_id=f"dlq-{dlq_id}", now=now, rand=0.5)
    row = {**state.model_dump(), "status": status, "metadata": {}, "attempts": []}
    with eng.begin() as conn:
        conn.execute(table.insert().values({c.name: row.get(c.name) for c in table.columns
                                            if c.name in row}))


def test_the_migration_backfills_counters_from_existing_rows(tmp_path: Path) -> None:
    with fresh_pg_database("dlq_counts_mig") as pg_url:
        for backend in ("sqlite", "postgresql"):
            if backend == "postgresql" and pg_url is None:
                continue
            eng = create_db_engine(_url(backend, tmp_path, pg_url, "mig.db"))
            try:
                migrate(eng, "0004")
                assert "dlq_entry_counts" not in sa.inspect(eng).get_table_names()
                for i, status in enumerate(("pending", "resolved", "pending", "archived")):
                    _old_schema_entry(eng, domain=DOMAINS[i % 2], status=status)
                migrate(eng)
                assert counters(eng) == {("payment", "pending"): 2, ("webhook", "resolved"): 1,
                                         ("webhook", "archived"): 1}
                seed_entry(eng, domain="payment", status="pending")  # triggers live now
                assert_exact(eng)
            finally:
                eng.dispose()


def test_concurrent_opposite_transitions_keep_counts_exact(engine: Engine) -> None:
    """Entries moving pending -> replaying and replaying -> pending at once.

    On PostgreSQL both transactions touch the same two counter rows; the
    trigger locks them in key order, so neither deadlocks nor loses a count.
    """
    ids = {"up": [seed_entry(engine, status="pending") for _ in range(4)],
           "down": [seed_entry(engine, status="replaying") for _ in range(4)]}
    errors: list[BaseException] = []
    rounds = 25

    def flip(kind: str) -> None:
        states = (("pending", "replaying"), ("replaying", "pending"))
        if kind == "down":
            states = states[::-1]
        try:
            for i in range(rounds):
                old, new = states[i % 2]
                with engine.begin() as conn:
                    for dlq_id in ids[kind]:
                        conn.execute(sa.text("UPDATE dlq_entries SET status = :new "
                                             "WHERE id = :id AND status = :old"),
                                     {"new": new, "old": old, "id": dlq_id})
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=flip, args=(kind,)) for kind in ("up", "down")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert_exact(engine)
    assert counters(engine) == {("payment", "pending"): 4, ("payment", "replaying"): 4}


def test_facets_and_stats_match_group_bys_and_drop_zero_buckets(engine: Engine) -> None:
    sql = repo.SQLModelRepository(engine)
    for i in range(12):
        seed_entry(engine, domain=DOMAINS[i % 3], status=("pending", "resolved",
                                                          "requires_review", "archived")[i % 4])
    with engine.begin() as conn:  # leaves (inventory, requires_review) as a zero row
        conn.execute(sa.text("DELETE FROM dlq_entries WHERE domain = 'inventory' "
                             "AND status = 'requires_review'"))
    truth = grouped(engine)
    with engine.connect() as conn:
        zero = conn.execute(sa.text("SELECT count(*) FROM dlq_entry_counts WHERE n = 0"))
        assert zero.scalar_one() >= 1
    for status in (None, "pending", "requires_review", "expired"):
        for domain in (None, *DOMAINS, "nowhere"):
            facets = sql.facet_counts(status, domain)
            by_status: dict[str, int] = {}
            by_domain: dict[str, int] = {}
            for (d, s), n in truth.items():
                if domain is None or d == domain:
                    by_status[s] = by_status.get(s, 0) + n
                if status is None or s == status:
                    by_domain[d] = by_domain.get(d, 0) + n
            assert facets == {"by_status": by_status, "by_domain": by_domain}
            assert 0 not in facets["by_status"].values()
    stats = sql.stats(datetime.now(UTC))
    assert stats["total"] == sum(truth.values()) == 11
    assert stats["by_domain"] == {"payment": 4, "webhook": 4, "inventory": 3}
    assert stats["by_status"] == {"pending": 3, "resolved": 3, "requires_review": 2,
                                  "archived": 3}
    assert stats["open"] == 5


def _orm_ids(engine: Engine, filters, *, limit: int = 100) -> list[str]:
    """The same listing through the SQLAlchemy conditions the bulk paths use."""
    stmt = (sa.select(DLQEntry.id).where(*repo.conditions(filters))
            .order_by(*repo.NEWEST_FIRST).limit(limit))
    with Session(engine) as session:
        return list(session.execute(stmt).scalars())


@pytest.mark.parametrize("raw", [
    {}, {"status": "pending"}, {"status": ["pending", "resolved", "archived"]},
    {"domain": "webhook", "status": "resolved"}, {"user_id": 2}, {"error_code": "E1"},
    {"entity_type": "order", "entity_id": "o-3"}, {"failure_type": "HTTP_500"},
    {"error_message": "50%_off"}, {"error_message": "timeout"},
    {"error_message": "a/b"},
    {"created_after": "2026-02-27T00:00:00+00:00", "created_before": "2026-02-28T06:00:00"},
])
def test_the_list_hot_path_means_what_the_sql_conditions_mean(engine: Engine, raw: dict) -> None:
    hour = 0
    for domain in DOMAINS:
        for status in ("pending", "resolved", "archived"):
            hour += 1
            seed_entry(engine, domain=domain, status=status, age=timedelta(hours=hour),
                       failure_type="PG_TIMEOUT" if domain == "payment" else "HTTP_500",
                       entity_type="order", entity_id=f"o-{hour}", user_id=hour % 3,
                       error_code=f"E{hour % 2}",
                       error_message=("Price 50%_OFF failed" if hour % 4 == 0 else
                                      "price 50%xoff" if hour % 4 == 1 else
                                      f"Gateway TIMEOUT a/b #{hour}"))
    with engine.begin() as conn:  # fixed times, so the created_* filters bite
        for i, dlq_id in enumerate(_orm_ids(engine, parse_filters({}))):
            conn.execute(sa.update(DLQEntry).where(DLQEntry.id == dlq_id).values(
                created_at=T0 - timedelta(hours=6 * i, microseconds=0 if i % 2 else 123)))
    filters = parse_filters(raw)
    expected = _orm_ids(engine, filters)
    sql = repo.SQLModelRepository(engine)
    rows, total = sql.list_page(filters, 0, 100)
    assert [r["id"] for r in rows] == expected and total == len(expected)
    assert sql.list_after(filters, None, 100) == rows
    if len(rows) > 2:
        after = (datetime.fromisoformat(rows[1]["created_at"]), rows[1]["id"])
        assert sql.list_after(filters, after, 100) == rows[2:]
        assert sql.list_page(filters, 2, 1)[0] == rows[2:3]
    # Same row shape as before the hot path: ISO times that read back as the stored ones.
    with Session(engine) as session:
        for row in rows:
            stored = repo.get_entry_row(session=session, entry_id=row["id"])
            assert row["created_at"] == stored.created_at.isoformat()
            assert row["expires_at"] == stored.expires_at.isoformat()
            assert row["closed_at"] == (stored.closed_at.isoformat() if stored.closed_at
                                        else None)
            assert list(row) == list(repo.LIST_COLUMNS)
