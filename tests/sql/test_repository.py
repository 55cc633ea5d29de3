"""The SQL read model: migrations, version-gated upserts, idempotent audit appends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from dlq import _sql as repo
from dlq import _state as sm
from dlq._db import create_db_engine, migrate
from dlq._filters import parse_filters
from dlq._messages import EntryInput
from dlq._models import EntryState
from tests.support.sql import PG_MISSING

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path, pg_url: str | None) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/repo.db"
    elif pg_url is None:
        pytest.fail(PG_MISSING)
    else:
        url = pg_url
    eng = create_db_engine(url)
    migrate(eng)
    yield eng
    eng.dispose()


def new_state(dlq_id: str) -> EntryState:
    entry = EntryInput(dlq_id=dlq_id, domain="payment", failure_type="PG_TIMEOUT",
                       snapshot_data={"amount": 5}, metadata={"k": 1}, created_at=T0)
    return sm.new_state(entry, workflow_id=f"dlq-{dlq_id}", now=T0, rand=0.5)


def persist(engine: Engine, state: EntryState, include_data: bool) -> bool:
    with Session(engine) as session:
        applied = repo.upsert_entry(session=session, state=state, include_data=include_data)
        repo.append_audit_events(session=session, entry_id=state.id, events=state.audit)
        session.commit()
    return applied


def test_migrations_match_the_models_and_are_idempotent(engine: Engine) -> None:
    migrate(engine)  # second run is a no-op
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    names = set(sa.inspect(engine).get_table_names())
    assert {"dlq_entries", "dlq_audit_events", "alembic_version"} <= names
    indexed = {tuple(ix["column_names"]) for ix in sa.inspect(engine).get_indexes("dlq_entries")}
    assert {("status", "created_at", "id"), ("domain", "status", "created_at", "id"),
            ("status", "domain"), ("failure_type", "created_at"), ("entity_type", "entity_id"),
            ("created_at", "id"), ("user_id",), ("status", "expires_at"),
            ("status", "closed_at")} <= indexed


def test_upsert_applies_only_newer_versions(engine: Engine) -> None:
    state = new_state("v-1")
    assert persist(engine, state, include_data=True)
    old = state.model_copy(deep=True)
    sm.begin_attempt(state, T0 + timedelta(minutes=1), trigger="manual")
    sm.finish_attempt(state, T0 + timedelta(minutes=1), trigger="manual", outcome="failure",
                      error="boom", duration_ms=3, previous_status=old.status,
                      previous_retry_count=0)
    assert persist(engine, state, include_data=False)
    assert not persist(engine, old, include_data=True)  # a late, older execution
    assert not persist(engine, state, include_data=False)  # a repeated one
    with Session(engine) as session:
        row = repo.get_entry_row(session=session, entry_id="v-1")
        events = repo.list_audit_events(session=session, entry_id="v-1")
    assert (row.version, row.status, row.retry_count, row.last_error) == (3, "pending", 1, "boom")
    assert row.snapshot_data == {"amount": 5} and row.extra_metadata == {"k": 1}
    assert row.created_at == T0 and row.created_at.tzinfo is not None
    assert [e.seq for e in events] == [1, 2, 3]  # appended once despite repeats


def test_update_without_data_never_invents_a_row(engine: Engine) -> None:
    assert not persist(engine, new_state("ghost"), include_data=False)
    with Session(engine) as session:
        assert repo.get_entry_row(session=session, entry_id="ghost") is None


def test_entry_dict_is_json_safe(engine: Engine) -> None:
    import json

    state = new_state("j-1")
    persist(engine, state, include_data=True)
    detail = repo.SQLModelRepository(engine).get_detail("j-1")
    assert json.loads(json.dumps(detail)) == detail
    assert detail["audit_events"][0]["action"] == "created"
    assert repo.SQLModelRepository(engine).get("j-1").snapshot_data == {"amount": 5}
    assert isinstance(repo.SQLModelRepository(engine), repo.FailedOperationRepository)


def test_a_frozen_bulk_set_ignores_later_entries_and_can_be_dropped(engine: Engine) -> None:
    sql = repo.SQLModelRepository(engine)
    tag = uuid.uuid4().hex[:8]  # the PostgreSQL database is shared across tests
    ids = [f"f-{tag}-{i}" for i in range(3)]

    def put(dlq_id: str) -> None:
        persist(engine, new_state(dlq_id).model_copy(update={"failure_type": f"F{tag}"}),
                include_data=True)

    put(ids[0])
    put(ids[1])
    filters = parse_filters({"failure_type": f"F{tag}"})
    bulk = f"b-{tag}"
    assert sql.freeze_bulk_set(bulk, filters) == 2
    put(ids[2])  # stored after the freeze
    assert sql.freeze_bulk_set(bulk, filters) == 2  # idempotent: the set stays as frozen
    assert sql.bulk_page_ids(bulk, "", 10) == ids[:2]
    assert sql.drop_bulk_set(bulk) == 2
    assert sql.bulk_page_ids(bulk, "", 10) == []
