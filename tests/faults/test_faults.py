"""Fault tests with real processes: each test runs its own Temporal dev server and DLQ worker.

The server is ``temporal server start-dev`` on free ports of 127.0.0.1 with a
persistent SQLite file (so a restart keeps the workflows); the worker is
``python worker.py --handlers tests.support.fault_handlers``. The tests SIGKILL,
freeze and restart them, or lock the SQL read model, and then check that
nothing was lost or duplicated: in Temporal (one workflow run per entry), in
SQL (one row per entry, at the workflow's version) and in the outbox (empty).
Every process is stopped by the ``stack`` fixture, which also checks that no
process of the test is left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, workflow_id_for
from dlq._models import EntryState
from dlq._procs import WorkerProcess, leftover_pids
from tests.support.faults import (
    FaultStack,
    audit_counts,
    count_entry_workflows,
    entry_workflow_ids,
    outbox_claimed,
    outbox_depth,
    read_rows,
    wait_for,
    wait_progress,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SETTLED = ("resolved", "requires_review")
# This machine may be shared and overloaded: waits are bounded by a lack of
# progress for STALL seconds (and by LIMIT in any case), not by a guess at speed.
STALL = 150.0
LIMIT = 900.0
# A sync store must return within store_timeout; the fallback then probes whether
# the workflow exists for at most 1 s (``rpc_timeout``). SLACK covers that probe
# and 2 s of scheduling delay: a "never hangs" check, not a speed test.
SLACK = 3.0


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[FaultStack]:
    """A :class:`FaultStack` in the test's folder; every process is gone afterwards."""
    fault_stack = FaultStack(tmp_path)
    try:
        yield fault_stack
    finally:
        fault_stack.stop()
        print(fault_stack.diagnostics())  # shown by pytest only when the test failed
        left = leftover_pids(fault_stack.marker)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes left running after the test: {left}"


def ensure_worker_survived(worker: WorkerProcess, what: str) -> bool:
    """Whether the worker lived through ``what``; if not, warn (it is restarted by the caller)."""
    if worker.alive():
        return True
    warnings.warn(f"the DLQ worker died during {what} (exit {worker.proc.returncode}); "
                  f"restarting it. Log tail:\n{worker.tail()}", stacklevel=2)
    return False


async def workflow_states(client: Client, ids: list[str]) -> dict[str, EntryState]:
    """The ``get_state`` query of each entry's workflow (20 queries in flight)."""
    gate = asyncio.Semaphore(20)

    async def one(dlq_id: str) -> tuple[str, EntryState]:
        async with gate:
            handle = client.get_workflow_handle(workflow_id_for(dlq_id))
            return dlq_id, await handle.query("get_state", result_type=EntryState)

    return dict(await asyncio.gather(*(one(i) for i in ids)))


async def assert_one_run_per_entry(client: Client, ids: list[str]) -> None:
    """Temporal holds exactly one ``DLQEntryWorkflow`` run per id, and no other."""
    expected = sorted(workflow_id_for(i) for i in ids)
    await wait_progress(lambda: count_entry_workflows(client), lambda n: n == len(ids),
                        lambda n: n, stall=60, limit=300,
                        what=f"{len(ids)} entry workflows in visibility")
    runs = await entry_workflow_ids(client)
    duplicates = [wid for wid, n in Counter(runs).items() if n > 1]
    assert not duplicates, f"entries with more than one workflow run: {duplicates[:10]}"
    assert sorted(runs) == expected


async def wait_rows(db_path: Path, ids: list[str], what: str) -> None:
    """Wait until the SQL read model has a row for every id (while rows keep coming)."""
    wanted = set(ids)
    await wait_progress(lambda: asyncio.to_thread(read_rows, db_path),
                        lambda rows: wanted <= set(rows), lambda rows: len(rows),
                        stall=STALL, limit=LIMIT, what=what)


def assert_rows_are_the_entries(db_path: Path, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The SQL read model has exactly one row per id and no other row."""
    rows = read_rows(db_path)
    assert len(rows) == len(ids), (len(rows), len(ids))
    assert set(rows) == set(ids)
    return rows


# --- 1. the Temporal server dies while the outbox is being relayed ----------------


async def test_server_sigkilled_mid_relay_of_2000_async_stores_each_entry_lands_exactly_once(
        stack: FaultStack) -> None:
    worker = await stack.start()
    service = AsyncDLQService(stack.config(store_timeout=5.0))
    try:
        ids = []
        for i in range(2000):  # no await point inside: the relay starts once this loop ends
            result = await service.store_failure(
                "f-relay", "SERVER_KILLED", entity_type="order", entity_id=str(i),
                snapshot_data={"n": i}, recommended_action="manual_check", mode="async")
            assert result.success and result.dlq_id, result
            ids.append(result.dlq_id)
        assert len(set(ids)) == 2000

        await wait_progress(service.get_capture_stats, lambda s: s["relay_delivered"] >= 300,
                            lambda s: s["relay_delivered"], stall=STALL, limit=LIMIT,
                            interval=0.05, what="relay under way")
        stack.server.kill()
        at_kill = await service.get_capture_stats()
        assert at_kill["outbox_depth"] > 0, "the relay finished before the kill"
        await asyncio.sleep(10)
        during = await service.get_capture_stats()
        assert during["outbox_depth"] > 0 and during["relay_errors"] > 0, during
        await stack.server.restart()  # same port, same database file
        await asyncio.sleep(5)  # give the worker's pollers time to come back (or not)
        if not ensure_worker_survived(worker, "the server restart"):
            await worker.restart()

        restarted = time.monotonic()
        await wait_progress(service.get_capture_stats, lambda s: s["outbox_depth"] == 0,
                            lambda s: s["outbox_depth"], stall=STALL, limit=LIMIT,
                            what="outbox drained after the restart")
        print(f"at the kill: {at_kill}; 10 s later: {during}; outbox drained "
              f"{time.monotonic() - restarted:.1f}s after the restart")
        await wait_rows(stack.db_path, ids, "2000 rows in SQL")
        rows = assert_rows_are_the_entries(stack.db_path, ids)
        assert {r["status"] for r in rows.values()} == {"pending"}
        assert {r["version"] for r in rows.values()} == {1}

        # A fresh client, and the producer's own client from before the kill
        # (the SDK reconnected it: the relay delivered through it after the restart).
        await assert_one_run_per_entry(await stack.client(), ids)
        old_client = await service.get_client()
        assert await count_entry_workflows(old_client) == 2000
        stats = await service.get_capture_stats()
        assert stats["outbox_depth"] == 0 and stats["relay_running"]
        assert stats["relay_delivered"] >= 2000
        assert worker.alive(), worker.tail()
    finally:
        await service.close()


# --- 2. the producing process dies right after its async stores returned ----------


@pytest.mark.parametrize("kill_at", ["stored", "mid-relay"])
async def test_producer_sigkilled_after_500_async_stores_a_fresh_relay_ingests_each_once(
        stack: FaultStack, kill_at: str) -> None:
    """``stored``: SIGKILL as soon as the producer says its 500 stores returned.

    ``mid-relay``: SIGKILL once its own relay delivered a first batch of 100, so
    the next batch is claimed under a lease and partly started in Temporal.
    """
    await stack.start()
    outbox = stack.folder / "producer-outbox.db"
    ids_file = stack.folder / "producer-ids.txt"
    env = stack.dlq_env(DLQ_OUTBOX_PATH=str(outbox))
    producer = stack.spawn("producer", [sys.executable, "-m", "tests.support.fault_producer",
                                        "--count", "500", "--ids-file", str(ids_file)], env)

    async def announced() -> bool:
        producer.check_alive()
        return "stored 500" in producer.log_text()

    await wait_for(announced, bool, timeout=300, interval=0.01, what="producer stored")
    if kill_at == "mid-relay":
        await wait_progress(lambda: asyncio.to_thread(outbox_depth, outbox),
                            lambda depth: depth <= 400, lambda depth: depth, stall=STALL,
                            limit=LIMIT, interval=0.01, what="first batch relayed")
    producer.kill()  # SIGKILL
    ids = ids_file.read_text().split()
    assert len(ids) == len(set(ids)) == 500
    left_at_kill = await asyncio.to_thread(outbox_depth, outbox)
    assert left_at_kill > 0, "the producer's relay delivered everything before the kill"
    client = await stack.client()
    print(f"at the kill: {left_at_kill} records left, "
          f"{await asyncio.to_thread(outbox_claimed, outbox)} of them leased by the dead "
          f"producer; {await count_entry_workflows(client)} workflows already started")

    # A fresh relay: the operator's drain command. Records the dead producer had
    # claimed come back when its 60 s lease expires.
    drain = stack.spawn("drain", [sys.executable, "-m", "dlq", "outbox", "drain",
                                  "--timeout", str(LIMIT)], env)

    async def drain_exit() -> int | None:
        return drain.proc.poll()

    code = await wait_for(drain_exit, lambda c: c is not None, timeout=LIMIT + 60,
                          interval=0.5, what="drain command finished")
    assert code == 0, drain.tail()
    assert "0 left" in drain.log_text(), drain.tail()
    assert await asyncio.to_thread(outbox_depth, outbox) == 0

    await wait_rows(stack.db_path, ids, "500 rows in SQL")
    rows = assert_rows_are_the_entries(stack.db_path, ids)
    assert sorted(r["snapshot_data"]["n"] for r in rows.values()) == list(range(500))
    await assert_one_run_per_entry(client, ids)


# --- 3. the worker dies five times while replays run --------------------------------


async def test_worker_sigkilled_five_times_during_500_replays_attempts_stay_consistent(
        stack: FaultStack) -> None:
    calls_log = stack.folder / "handler-calls.log"
    worker = await stack.start(extra_env={"FAULT_HANDLER_LOG": str(calls_log)})
    config = stack.config(store_timeout=30.0, retry_delay=1.0, max_replay_attempts=2,
                          replay_timeout=2.0)
    service = AsyncDLQService(config)
    client = await stack.client()

    def calls() -> Counter[str]:
        text = calls_log.read_text() if calls_log.exists() else ""
        return Counter(text.split())

    async def total_calls() -> int:
        return sum(calls().values())

    try:
        ids, number = [], {}
        for n in range(500):
            result = await service.store_failure(
                "f-parity", "REPLAY_KILL", entity_type="order", entity_id=str(n),
                snapshot_data={"n": n, "sleep_ms": 50 + (n * 37) % 151},
                recommended_action="replay", mode="async")
            assert result.success and result.dlq_id
            ids.append(result.dlq_id)
            number[result.dlq_id] = n

        kills = []
        for _ in range(5):
            # Kill while handlers run: some new calls since the last (re)start (or,
            # if none come for 90 s, kill anyway), and a few more in flight.
            before, deadline = await total_calls(), time.monotonic() + 90
            while await total_calls() < before + 10 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            replaying = await count_entry_workflows(client, 'DlqStatus="replaying"')
            worker.kill()
            kills.append(replaying)
            await worker.restart()
        print(f"entries replaying at each kill: {kills}")

        await wait_progress(
            lambda: asyncio.to_thread(read_rows, stack.db_path),
            lambda rows: len(rows) == 500 and all(r["status"] in SETTLED
                                                  for r in rows.values()),
            lambda rows: (len(rows), sum(r["version"] for r in rows.values())),
            stall=STALL, limit=LIMIT, what="every entry settled")
        assert (await service.get_capture_stats())["outbox_depth"] == 0
        rows = assert_rows_are_the_entries(stack.db_path, ids)
        states = await workflow_states(client, ids)
        audits = await asyncio.to_thread(audit_counts, stack.db_path)
        handler_calls = calls()
        lost = 0
        for dlq_id in ids:
            row, state, n = rows[dlq_id], states[dlq_id], number[dlq_id]
            where = f"entry {n} ({dlq_id}): {row}"
            # SQL is the workflow's state at the same version.
            assert (row["status"], row["version"]) == (str(state.status), state.version), where
            assert row["attempts"] == [a.model_dump(mode="json") for a in state.attempts], where
            # Every audit event persisted exactly once ((entry, seq) is unique).
            assert audits[dlq_id] == (state.audit_seq, state.audit_seq), where
            attempts = row["attempts"]
            outcomes = [a["outcome"] for a in attempts]
            assert [a["number"] for a in attempts] == list(range(1, len(attempts) + 1)), where
            assert all(a["counted"] for a in attempts), where
            assert row["retry_count"] == len(attempts) <= row["max_retries"] == 2, where
            allowed = {"success", "error", "timeout"} if n % 2 == 0 else {
                "failure", "error", "timeout"}
            assert set(outcomes) <= allowed, where
            if outcomes[-1] == "success":
                assert row["status"] == "resolved", where
            else:
                assert row["status"] == "requires_review", where
                assert row["retry_count"] == row["max_retries"], where
            assert "success" not in outcomes[:-1], where
            # The handler ran at most once per attempt (a lost worker is one failed
            # attempt, never a silent second call), and ran for every reported outcome.
            reported = sum(o in ("success", "failure") for o in outcomes)
            assert reported <= handler_calls[dlq_id] <= len(attempts), (
                where, handler_calls[dlq_id])
            for attempt in attempts:
                if attempt["outcome"] == "error":
                    assert "replay activity failed" in (attempt["error"] or ""), where
                    lost += 1
        assert lost > 0, "no kill landed during a replay attempt"
        print(f"attempts lost to kills: {lost}; statuses: "
              f"{Counter(r['status'] for r in rows.values())}")
        await assert_one_run_per_entry(client, ids)
    finally:
        await service.close()


# --- 4. the SQL read model is locked for 30 s -----------------------------------------


@pytest.mark.parametrize("lock_seconds", [30, 40])
async def test_sql_locked_entries_keep_state_in_temporal_and_rows_catch_up(
        stack: FaultStack, lock_seconds: int) -> None:
    """The read model's SQLite file is write-locked for ``lock_seconds``.

    The worker's SQLite busy timeout is 30 s: a 30 s lock makes ``persist_entry``
    wait; a 40 s lock outlasts it, so persist attempts fail and are retried.
    """
    worker = await stack.start()
    config = stack.config(store_timeout=3.0, retry_delay=4.0, max_replay_attempts=2,
                          replay_timeout=2.0)
    service = AsyncDLQService(config)
    client = await stack.client()
    number: dict[str, int] = {}

    async def store(n: int) -> Any:
        result = await service.store_failure(
            "f-parity", "SQL_LOCKED", entity_type="order", entity_id=str(n),
            snapshot_data={"n": n, "sleep_ms": 50}, recommended_action="replay", mode="sync")
        assert result.dlq_id, result
        number[result.dlq_id] = n
        return result

    lock: sqlite3.Connection | None = None
    try:
        before = [await store(n) for n in range(12)]  # SQL up: normal sync stores
        assert all(r.success for r in before), before
        early = [r.dlq_id for r in before]

        lock = sqlite3.connect(stack.db_path, timeout=30, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # no other writer until the rollback
        locked_at = time.monotonic()

        started = time.monotonic()
        during = await asyncio.gather(*(store(n) for n in range(12, 24)))
        assert time.monotonic() - started < config.store_timeout + SLACK
        for result in during:  # the workflow exists, its row cannot be confirmed
            assert result.success is False, result
            assert "SQL row was not confirmed" in result.error, result
            assert result.fallback_path == str(Path(config.outbox_path).resolve())
        late = [r.dlq_id for r in during]
        ids = early + late

        # While SQL is locked the entries live on in Temporal: every workflow
        # answers get_state, replays move them on, and SQL still shows what it had.
        # (Normally every even entry gets resolved in Temporal within the lock; on
        # an overloaded machine at least one entry must have moved on.)
        even = [i for i in ids if number[i] % 2 == 0]
        while True:
            states = await workflow_states(client, ids)
            if (all(states[i].status == "resolved" for i in even)
                    or time.monotonic() - locked_at > lock_seconds - 6):
                break
            await asyncio.sleep(0.5)
        rows = await asyncio.to_thread(read_rows, stack.db_path)
        assert time.monotonic() - locked_at < lock_seconds, "the checks outlasted the lock"
        assert not set(late) & set(rows), "a row was written through the lock"
        for dlq_id in early:
            assert (rows[dlq_id]["status"], rows[dlq_id]["version"]) == ("pending", 1)
        assert all(states[i].version >= 1 for i in late)
        moved = [i for i in ids if states[i].version > rows.get(i, {"version": 1})["version"]]
        assert moved, "no entry changed in Temporal while SQL was locked"
        print(f"while SQL was locked: {len(moved)} of {len(ids)} entries moved on in "
              f"Temporal; {sum(states[i].status == 'resolved' for i in even)} of "
              f"{len(even)} even ones resolved there")

        await asyncio.sleep(max(0.0, lock_seconds - (time.monotonic() - locked_at)))
        lock.rollback()
        lock.close()
        lock = None

        async def rows_and_states() -> tuple[dict[str, Any], dict[str, EntryState]]:
            return (await asyncio.to_thread(read_rows, stack.db_path),
                    await workflow_states(client, ids))

        def caught_up(value: tuple[dict[str, Any], dict[str, EntryState]]) -> bool:
            rows, states = value
            return len(rows) == len(ids) and all(
                rows[i]["status"] in SETTLED and (rows[i]["status"], rows[i]["version"])
                == (str(states[i].status), states[i].version) for i in ids)

        await wait_progress(rows_and_states, caught_up,
                            lambda v: (len(v[0]), sum(r["version"] for r in v[0].values())),
                            stall=STALL, limit=LIMIT, what="rows caught up")
        rows = assert_rows_are_the_entries(stack.db_path, ids)
        states = await workflow_states(client, ids)
        audits = await asyncio.to_thread(audit_counts, stack.db_path)
        for dlq_id in ids:
            row, state = rows[dlq_id], states[dlq_id]
            expected = "resolved" if number[dlq_id] % 2 == 0 else "requires_review"
            assert row["status"] == str(state.status) == expected, (number[dlq_id], row)
            assert row["version"] == state.version
            assert row["attempts"] == [a.model_dump(mode="json") for a in state.attempts]
            assert audits[dlq_id] == (state.audit_seq, state.audit_seq)
        await wait_progress(service.get_capture_stats, lambda s: s["outbox_depth"] == 0,
                            lambda s: s["outbox_depth"], stall=STALL, limit=LIMIT,
                            what="outbox drained")
        await assert_one_run_per_entry(client, ids)
        locked_errors = worker.log_text().count("database is locked")
        print(f"persist failures on the {lock_seconds}s lock: {locked_errors}")
        if lock_seconds > 30:  # the retry path really ran
            assert locked_errors > 0, worker.tail()
    finally:
        if lock is not None:
            lock.close()
        await service.close()


# --- 5. a sync store while Temporal is down ----------------------------------------------


@pytest.mark.parametrize("outage", ["frozen", "killed"])
async def test_sync_store_with_temporal_down_returns_within_bound_and_lands_after_restart(
        stack: FaultStack, outage: str) -> None:
    """``killed``: SIGKILL, connections are refused. ``frozen``: SIGSTOP, nothing answers."""
    worker = await stack.start()
    config = stack.config(store_timeout=2.0)
    connected = AsyncDLQService(config)  # its client is connected before the outage
    fresh = AsyncDLQService(config)  # connects for the first time during the outage
    outbox = str(Path(config.outbox_path).resolve())
    try:
        first = await connected.store_failure("f-down", "WARM_UP", mode="sync")
        assert first.success, first
        if outage == "killed":
            stack.server.kill()
        else:
            stack.server.freeze()

        results, elapsed = {}, {}
        for name, service in (("connected", connected), ("fresh", fresh)):
            started = time.monotonic()
            results[name] = await service.store_failure("f-down", "TEMPORAL_DOWN",
                                                        entity_id=name, mode="sync")
            elapsed[name] = time.monotonic() - started
        print(f"sync store durations with the server {outage}: {elapsed}")
        for name, result in results.items():
            assert result.success is False and result.dlq_id, (name, result)
            assert result.fallback_path == outbox, (name, result)
        # The bound is asserted last, so a slow store still has its recovery checked.
        too_slow = {name: round(seconds, 1) for name, seconds in elapsed.items()
                    if seconds >= config.store_timeout + SLACK}
        assert await asyncio.to_thread(outbox_depth, Path(outbox)) == 2

        if outage == "killed":
            await stack.server.restart()
        else:
            stack.server.thaw()
        await asyncio.sleep(2)
        if not ensure_worker_survived(worker, f"the server being {outage}"):
            await worker.restart()

        ids = [first.dlq_id, results["connected"].dlq_id, results["fresh"].dlq_id]
        await wait_rows(stack.db_path, ids, "rows of the fallen-back entries (relay with backoff)")
        assert_rows_are_the_entries(stack.db_path, ids)
        assert await asyncio.to_thread(outbox_depth, Path(outbox)) == 0
        await assert_one_run_per_entry(await stack.client(), ids)
        assert worker.alive(), worker.tail()
        if too_slow:
            # pytrace=False: no traceback to render (CPython 3.11.7's ast.parse, which
            # pytest uses for tracebacks, can crash the session in this threaded process).
            pytest.fail(f"sync stores took seconds {too_slow} with store_timeout="
                        f"{config.store_timeout:g}s while the server was {outage}: "
                        f"{ {n: results[n] for n in too_slow} }", pytrace=False)
    finally:
        await connected.close()
        await fresh.close()
