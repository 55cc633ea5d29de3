"""The per-thread read connections of the list, cursor and facet reads (SQLite, PostgreSQL)."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dlq import DLQConfig, DLQService, SQLModelRepository
from dlq._db import DLQEntry, create_db_engine, migrate
from dlq._filters import parse_filters
from dlq._reads import ThreadReads
from tests.support.seed import seed_entry
from tests.support.sql import PG_MISSING, empty_read_model

EVERYTHING = parse_filters({})


@pytest.fixture
def engine(read_model: Engine) -> Engine:
    return read_model


def _ids(reads: ThreadReads) -> list[str]:
    return [row[0] for row in reads.rows("SELECT id FROM dlq_entries ORDER BY id", ())]


def _in_thread(fn) -> object:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def test_a_thread_keeps_one_connection_and_sees_later_commits(engine: Engine) -> None:
    reads = ThreadReads(engine)
    assert _ids(reads) == []
    first = reads._local.held.conn
    # Written after the connection was opened: a read must not be stuck in an old snapshot.
    entry_id = seed_entry(engine)
    assert _ids(reads) == [entry_id]
    assert reads._local.held.conn is first and reads.held == 1


def test_reads_leave_no_transaction_open(engine: Engine) -> None:
    reads = ThreadReads(engine)
    _ids(reads)
    conn = reads._local.held.conn
    if engine.dialect.name == "sqlite":
        assert conn.in_transaction is False
    else:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_finished_thread_closes_its_connection(engine: Engine) -> None:
    reads = ThreadReads(engine)
    seed_entry(engine)
    assert len(_in_thread(lambda: _ids(reads))) == 1
    gc.collect()
    assert reads.held == 0


def test_threads_past_the_limit_read_through_the_pool(engine: Engine) -> None:
    reads = ThreadReads(engine, limit=2)
    entry_id = seed_entry(engine)
    gate, done = threading.Barrier(4), threading.Event()
    answers: list[list[str]] = []

    def reader() -> None:
        answers.append(_ids(reads))
        gate.wait()  # all four threads are alive (and holding what they took) at once
        done.wait()

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    gate.wait()
    assert reads.held == 2  # two of the three took a connection; the third used the pool
    done.set()
    for thread in threads:
        thread.join()
    assert answers == [[entry_id]] * 3


def test_dispose_closes_the_held_connections_and_reads_go_on(engine: Engine) -> None:
    reads = ThreadReads(engine)
    entry_id = seed_entry(engine)
    _ids(reads)
    old = reads._local.held.conn
    engine.dispose()
    assert reads.held == 0
    with pytest.raises(Exception):  # noqa: B017 - the driver's "closed" error
        old.cursor().execute("SELECT 1")
    assert _ids(reads) == [entry_id]
    assert reads._local.held.conn is not old


@pytest.fixture
def pg_engine(module_pg_url: str | None) -> Iterator[Engine]:
    if module_pg_url is None:
        pytest.fail(PG_MISSING)
    yield from empty_read_model(module_pg_url)


def test_a_dropped_postgresql_connection_is_replaced_and_the_read_retried(
        pg_engine: Engine) -> None:
    # (SQLite connections are files: no server can drop them.)
    engine = pg_engine
    reads = ThreadReads(engine)
    entry_id = seed_entry(engine)
    _ids(reads)
    old = reads._local.held.conn
    pid = old.info.backend_pid
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    assert _ids(reads) == [entry_id]  # retried through the pool, no error to the caller
    assert old.closed
    assert _ids(reads) == [entry_id]
    assert reads._local.held.conn.info.backend_pid != pid


def test_a_sql_error_is_raised_and_the_connection_kept(engine: Engine) -> None:
    reads = ThreadReads(engine)
    _ids(reads)
    conn = reads._local.held.conn
    with pytest.raises(engine.dialect.loaded_dbapi.Error):
        reads.rows("SELECT no_such_column FROM dlq_entries", ())
    assert _ids(reads) == [] and reads._local.held.conn is conn


def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents(
        engine: Engine) -> None:
    reads = ThreadReads(engine)
    entry_id = seed_entry(engine)
    _ids(reads)
    parent_conn = reads._local.held.conn
    pid = os.fork()
    if pid == 0:  # the child: read, then leave without running any cleanup
        ok = _ids(reads) == [entry_id] and reads._local.held.conn is not parent_conn
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _ids(reads) == [entry_id]  # the parent's connection still works
    assert reads._local.held.conn is parent_conn


def test_memory_sqlite_reads_through_its_pool() -> None:
    eng = create_db_engine("sqlite://")
    migrate(eng)
    reads = ThreadReads(eng)
    assert not reads.enabled
    seed_entry(eng)
    assert len(_ids(reads)) == 1 and reads.held == 0
    eng.dispose()


def test_list_times_are_isoformat_with_and_without_microseconds(engine: Engine) -> None:
    whole, fraction = seed_entry(engine), seed_entry(engine)
    with engine.begin() as conn:  # through the column type, as the worker writes
        for entry_id, when in ((whole, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
                               (fraction, datetime(2026, 1, 1, 3, 4, 5, 123, tzinfo=UTC))):
            conn.execute(sa.update(DLQEntry).where(DLQEntry.id == entry_id)
                         .values(created_at=when, closed_at=when))
    repository = SQLModelRepository(engine)
    rows = {r["id"]: r for r in repository.list_after(EVERYTHING, None, 10)}
    paged, _ = repository.list_page(EVERYTHING, 0, 10)
    assert {r["id"]: r for r in paged} == rows
    for entry_id in (whole, fraction):
        detail = repository.get_detail(entry_id)  # the ORM path: datetime.isoformat()
        for column in ("created_at", "updated_at", "expires_at", "closed_at"):
            assert rows[entry_id][column] == detail[column]
    assert rows[whole]["created_at"] == "2026-01-02T03:04:05+00:00"
    assert rows[fraction]["created_at"] == "2026-01-01T03:04:05.000123+00:00"
    assert rows[whole]["closed_at"] == rows[whole]["created_at"]


def test_service_reads_from_many_threads_agree(engine: Engine) -> None:
    for _ in range(3):
        seed_entry(engine)
    config = DLQConfig(database_url=engine.url.render_as_string(hide_password=False))
    with DLQService(config, repository=SQLModelRepository(engine)) as svc:
        expected = svc.list_entries()["results"]
        results: list[object] = []
        threads = [threading.Thread(target=lambda: results.append(
            (svc.list_entries()["results"], svc.get_facet_counts(),
             svc.iter_entries({}, limit=2)["results"])))
            for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 8
    for listed, facets, first in results:
        assert listed == expected and first == expected[:2]
        assert facets["by_status"] == {"pending": 3}
