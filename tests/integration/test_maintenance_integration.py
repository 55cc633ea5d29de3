"""Maintenance through Temporal: the expiry safety net, the maintenance workflow, its schedule."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig, SQLModelRepository, workflow_id_for
from dlq._db import DLQEntry, create_db_engine
from dlq._models import EntryState
from dlq._sql import get_entry_row, list_audit_events
from dlq._worker import ensure_maintenance_schedule
from tests.support.helpers import eventually, store
from tests.support.seed import seed_entry

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(config: DLQConfig):
    eng = create_db_engine(config.database_url)
    yield eng
    eng.dispose()


def row(engine, dlq_id: str) -> DLQEntry | None:
    with Session(engine) as session:
        return get_entry_row(session=session, entry_id=dlq_id)


async def test_expire_entries_fixes_orphans_in_batches(service: AsyncDLQService,
                                                       engine) -> None:
    orphans = [seed_entry(engine, domain="orphan", expires_in=timedelta(hours=-1),
                          age=timedelta(hours=80)) for _ in range(25)]
    assert service.config.batch_size == 10
    assert await service.expire_entries(dry_run=True) >= 25
    assert row(engine, orphans[0]).status == "pending"
    assert await service.expire_entries() >= 25
    for dlq_id in orphans:
        stored = row(engine, dlq_id)
        assert (stored.status, stored.version) == ("expired", 2)
        assert stored.closed_at is not None
    with Session(engine) as session:
        events = list_audit_events(session=session, entry_id=orphans[0])
    assert (events[-1].action, events[-1].actor) == ("expire", "maintenance")
    assert orphans[0] not in {e.id for e in await service.get_expired_entries()}


async def test_expire_signal_defers_to_the_workflow_clock(service: AsyncDLQService,
                                                          client: Client, engine,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    """A live entry is expired by its workflow, never by a stale or tampered SQL row."""
    dlq_id = await store(service, "payment")
    with Session(engine) as session:
        entry = session.get(DLQEntry, dlq_id)
        entry.expires_at = datetime.now(UTC) - timedelta(hours=1)
        session.add(entry)
        session.commit()
    async def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "ignored expire signal" in
                r.getMessage()]

    with caplog.at_level(logging.WARNING):
        assert await service.expire_entries() >= 1
        await eventually(warnings, bool, timeout=10)
    state = await client.get_workflow_handle(workflow_id_for(dlq_id)).query(
        "get_state", result_type=EntryState)
    assert state.status == "pending"


async def test_maintenance_workflow_dry_run_then_real(service: AsyncDLQService,
                                                     engine) -> None:
    old_closed = seed_entry(engine, domain="retention", status="resolved",
                            age=timedelta(days=45))
    old_archived = seed_entry(engine, domain="retention", status="archived",
                              age=timedelta(days=120))
    recent = seed_entry(engine, domain="retention", status="resolved", age=timedelta(days=2))
    dry = await service.run_maintenance(dry_run=True)
    assert dry.dry_run and dry.archived >= 1 and dry.purged >= 1
    assert row(engine, old_closed).status == "resolved" and row(engine, old_archived)
    done = await service.run_maintenance()
    assert not done.dry_run and done.archived >= 1 and done.purged >= 1
    assert row(engine, old_closed).status == "archived"
    assert row(engine, old_archived) is None
    assert row(engine, recent).status == "resolved"


async def test_schedule_is_created_once_by_concurrent_workers(client: Client,
                                                              config: DLQConfig) -> None:
    schedule_id = f"dlq-maintenance-test-{uuid.uuid4().hex[:8]}"
    created = await asyncio.gather(*(ensure_maintenance_schedule(
        client, config, schedule_id=schedule_id) for _ in range(2)))
    try:
        assert sorted(created) == [False, True]
        assert await ensure_maintenance_schedule(client, config, schedule_id=schedule_id) is False
        desc = await client.get_schedule_handle(schedule_id).describe()
        assert desc.schedule.action.workflow == "DLQMaintenanceWorkflow"
        assert desc.schedule.spec.intervals[0].every == timedelta(hours=24)
        matching = [s async for s in await client.list_schedules() if s.id == schedule_id]
        assert len(matching) <= 1  # visibility may lag; never two
    finally:
        await client.get_schedule_handle(schedule_id).delete()


async def test_service_accepts_another_repository(config: DLQConfig, client: Client,
                                                  engine) -> None:
    class CountingRepository(SQLModelRepository):
        calls: list[str] = []

        def get_detail(self, entry_id: str):
            self.calls.append(entry_id)
            return super().get_detail(entry_id)

    repository = CountingRepository(engine)
    svc = AsyncDLQService(config, repository, client=client)
    dlq_id = await store(svc, "payment")
    assert (await svc.get_entry(dlq_id))["id"] == dlq_id
    assert repository.calls == [dlq_id]
