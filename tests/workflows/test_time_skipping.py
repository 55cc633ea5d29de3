"""Workflow timing on the time-skipping test server: expiry, backoff, force-redrive convergence."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from dlq import DLQConfig
from dlq._db import create_db_engine, migrate
from dlq._entry import new_entry_input
from dlq._messages import (
    EntryResult,
    ForceRedriveInput,
    PersistInput,
    PersistResult,
    ReplayResult,
    ResolveInput,
    ResolveResult,
    RetryInput,
)
from dlq._models import EntryState
from dlq._procs import BIN
from dlq._sql import get_entry_row
from dlq._temporal import ENTRY_WORKFLOW, ensure_search_attributes, workflow_id_for
from dlq._worker import build_worker
from dlq.activities.entry import EntryActivities
from dlq.workflows.entry import DLQEntryWorkflow
from tests.support.helpers import eventually


@pytest.fixture(scope="module")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await ensure_search_attributes(env.client, "default")
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    eng = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('ts')}/ts.db")
    migrate(eng)
    return eng


@pytest.fixture
async def ts_worker(ts_env: WorkflowEnvironment, engine) -> AsyncIterator[str]:
    queue = f"ts-{uuid.uuid4().hex[:8]}"
    async with build_worker(ts_env.client, task_queue=queue, engine=engine):
        yield queue


def row(engine, dlq_id: str):
    with Session(engine) as session:
        return get_entry_row(session=session, entry_id=dlq_id)


async def start(env: WorkflowEnvironment, queue: str, domain: str, action: str,
                **config: object):
    # created_at=None: the workflow stamps workflow.now(), which is what the
    # skipped clock measures from.
    entry = new_entry_input(domain, "PG_TIMEOUT", recommended_action=action,
                            config=DLQConfig(**config)).model_copy(update={"created_at": None})
    handle = await env.client.start_workflow(
        ENTRY_WORKFLOW, entry, id=workflow_id_for(entry.dlq_id), task_queue=queue,
        result_type=EntryResult)
    return entry.dlq_id, handle


async def test_open_entry_expires_after_72_hours(ts_env: WorkflowEnvironment, ts_worker: str,
                                                 engine) -> None:
    dlq_id, handle = await start(ts_env, ts_worker, "payment", "manual_check")
    result = await handle.result()  # the test server skips the 72 h timer
    assert result.status == "expired"
    stored = row(engine, dlq_id)
    assert stored.status == "expired"
    assert timedelta(hours=72) <= stored.closed_at - stored.created_at < timedelta(hours=72,
                                                                                    minutes=1)


async def test_automatic_replay_backs_off_exponentially_until_cap(
        ts_env: WorkflowEnvironment, ts_worker: str, engine) -> None:
    dlq_id, handle = await start(ts_env, ts_worker, "t-fail", "replay", retry_delay=60,
                                 max_replay_attempts=5)
    assert (await handle.result()).status == "expired"
    stored = row(engine, dlq_id)
    starts = [datetime.fromisoformat(a["at"]) for a in stored.attempts]
    assert len(starts) == 5 and all(a["trigger"] == "auto" for a in stored.attempts)
    assert timedelta(seconds=60) <= starts[0] - stored.created_at < timedelta(seconds=65)
    for n in range(1, 5):
        gap = (starts[n] - starts[n - 1]).total_seconds()
        expected = 60 * 2 ** n
        # +-10 % jitter; a few seconds of slack for the attempt itself.
        assert 0.9 * expected <= gap <= 1.1 * expected + 5, (n, gap)
    assert stored.status == "expired" and stored.retry_count == 5


async def test_backoff_is_capped_at_one_hour(ts_env: WorkflowEnvironment, ts_worker: str,
                                             engine) -> None:
    dlq_id, handle = await start(ts_env, ts_worker, "t-fail", "replay", retry_delay=1200,
                                 max_replay_attempts=4)
    assert (await handle.result()).status == "expired"
    starts = [datetime.fromisoformat(a["at"]) for a in row(engine, dlq_id).attempts]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 4
    assert 0.9 * 2400 <= gaps[0] <= 1.1 * 2400 + 5
    assert all(3600 <= g <= 3605 for g in gaps[1:]), gaps


async def test_force_redrive_reconverges_to_requires_review(
        ts_env: WorkflowEnvironment, ts_worker: str, engine) -> None:
    dlq_id, handle = await start(ts_env, ts_worker, "t-fail", "replay", retry_delay=60,
                                 max_replay_attempts=2)
    await ts_env.sleep(timedelta(hours=1))
    state = await handle.query("get_state", result_type=EntryState)
    assert (state.status, state.retry_count) == ("requires_review", 2)
    out = await handle.execute_update(
        "force_redrive", ForceRedriveInput(actor_id="alice", reason="deployed fix"),
        result_type=ReplayResult)
    assert (out.success, out.retry_count, out.previous_retry_count, out.status) == (
        False, 1, 2, "pending")
    await ts_env.sleep(timedelta(hours=1))
    state = await handle.query("get_state", result_type=EntryState)
    assert (state.status, state.retry_count) == ("requires_review", 2)
    after_force = state.attempts[2:]
    assert [a.trigger for a in after_force] == ["force", "auto"]  # within max_replay_attempts
    stored = row(engine, dlq_id)
    assert stored.status == "requires_review" and stored.version == state.version


async def test_failed_local_persist_falls_back_to_an_activity_and_replays(
        ts_env: WorkflowEnvironment, engine) -> None:
    """SQL refuses the first writes: the local persist gives up, a regular activity
    takes over, the row catches up, and the history still replays deterministically."""
    entry = EntryActivities(engine)
    refusals = {"left": 3}  # the local activity's three attempts

    @activity.defn(name="persist_entry")
    def flaky_persist(input: PersistInput) -> PersistResult:
        if refusals["left"] > 0:
            refusals["left"] -= 1
            raise RuntimeError("database is locked")
        return entry.persist_entry(input)

    queue = f"ts-{uuid.uuid4().hex[:8]}"
    async with Worker(ts_env.client, task_queue=queue, workflows=[DLQEntryWorkflow],
                      activities=[flaky_persist, entry.run_replay_handler],
                      activity_executor=ThreadPoolExecutor(4)):
        dlq_id, handle = await start(ts_env, queue, "payment", "manual_check")
        # Let the fallback write the row first, so the resolve is a write of its
        # own (else it may coalesce into the fallback's) and shows the switch back.
        await eventually(lambda: asyncio.to_thread(row, engine, dlq_id),
                         lambda r: r is not None, timeout=10, interval=0.05)
        await handle.execute_update("resolve", ResolveInput(notes="fixed"),
                                    result_type=ResolveResult)
        result = await handle.result()
    assert result.status == "resolved"
    history = await handle.fetch_history()
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert "activity_task_scheduled_event_attributes" in kinds  # the fallback ran
    # The failed local persist, then the resolve's, local again once SQL answered.
    assert kinds.count("marker_recorded_event_attributes") >= 2
    stored = row(engine, dlq_id)
    assert (stored.status, stored.version) == ("resolved", result.version)
    await Replayer(workflows=[DLQEntryWorkflow],
                   data_converter=pydantic_data_converter).replay_workflow(history)


async def test_a_worker_on_a_changed_sdk_runs_entries_on_the_stock_runner(
        ts_env: WorkflowEnvironment, engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """An SDK whose sandbox internals moved costs the optimisation, never the worker."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

    from dlq import _sandbox

    def moved(self, source, **extra_globals):  # a changed private signature
        raise AssertionError("the cached runner must not be used")

    monkeypatch.setattr(sandbox_runner._Instance, "_run_code", moved, raising=True)
    _sandbox._cache_usable.cache_clear()
    try:
        assert _sandbox._cache_usable() is False  # decided once, as a worker start would
        # What the stock runner itself calls is the SDK's (here: restored) code.
        monkeypatch.undo()
        worker = build_worker(ts_env.client, task_queue=f"ts-{uuid.uuid4().hex[:8]}",
                              engine=engine)
        assert type(worker.config()["workflow_runner"]) is SandboxedWorkflowRunner
        async with worker:
            # An operator retry (no timer to skip): a replay, then the entry resolves.
            dlq_id, handle = await start(ts_env, worker.task_queue, "t-ok", "manual_check")
            out = await handle.execute_update("retry", RetryInput(dlq_id=dlq_id),
                                              result_type=ReplayResult)
            assert (out.success, out.status) == (True, "resolved")
            assert (await handle.result()).status == "resolved"
        assert row(engine, dlq_id).status == "resolved"
    finally:
        _sandbox._cache_usable.cache_clear()


async def test_a_refused_regular_persist_is_recorded_then_the_next_write_catches_up(
        ts_env: WorkflowEnvironment, engine) -> None:
    """SQL is locked (the local persist gives up), then the regular activity's write is
    refused for good: the entry records it as unprojected without retrying; the next
    transition's write succeeds and carries the ``persist_rejected`` event to SQL."""
    from temporalio.exceptions import ApplicationError

    from dlq._sql import list_audit_events

    entry = EntryActivities(engine)
    calls = {"n": 0}

    @activity.defn(name="persist_entry")
    def refusing_persist(input: PersistInput) -> PersistResult:
        calls["n"] += 1
        if calls["n"] <= 3:  # the local activity's three attempts
            raise RuntimeError("database is locked")
        if calls["n"] == 4:  # the regular activity: refused for good
            raise ApplicationError("SQL refused the row: OverflowError: too large",
                                   type="PersistRejected", non_retryable=True)
        return entry.persist_entry(input)

    queue = f"ts-{uuid.uuid4().hex[:8]}"
    async with Worker(ts_env.client, task_queue=queue, workflows=[DLQEntryWorkflow],
                      activities=[refusing_persist, entry.run_replay_handler],
                      activity_executor=ThreadPoolExecutor(4)):
        dlq_id, handle = await start(ts_env, queue, "payment", "manual_check")
        state = await eventually(lambda: handle.query("get_state", result_type=EntryState),
                                 lambda s: s.unprojected is not None, timeout=30)
        assert state.unprojected == "v1: SQL refused the row: OverflowError: too large"
        assert row(engine, dlq_id) is None and calls["n"] == 4  # not retried
        await handle.execute_update("resolve", ResolveInput(notes="fixed"),
                                    result_type=ResolveResult)
        result = await handle.result()
        final = await handle.query("get_state", result_type=EntryState)
    assert result.status == "resolved" and final.unprojected is None
    stored = row(engine, dlq_id)
    assert (stored.status, stored.version) == ("resolved", result.version)
    with Session(engine) as session:
        actions = [e.action for e in list_audit_events(session=session, entry_id=dlq_id)]
    assert "persist_rejected" in actions
    await Replayer(workflows=[DLQEntryWorkflow],
                   data_converter=pydantic_data_converter).replay_workflow(
        await handle.fetch_history())
