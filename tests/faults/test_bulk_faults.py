"""A bulk redrive survives its worker being SIGKILLed mid-run, without double replays.

The session's dev server is shared, but the entries, the SQLite read model and
the task queue of this test belong to it alone and are served only by a real
``python worker.py`` subprocess, which the test kills (SIGKILL, twice, in the
middle of a page, with replays held in flight) and starts again. The replay
handler runs in that subprocess and logs every call to a file, durably, so
the test counts the calls that really happened in any worker process.

Timing: ``replay_bulk_page`` heartbeats with a 60 s heartbeat timeout, so the
page a killed worker was running is retried only ~60 s after its last
heartbeat reached the server; each kill costs about a minute of wall time.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig
from dlq._procs import ROOT, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.faults]

DOMAIN = "t-bulk-kill"  # registered by tests/support/bulk_fault_handlers.py, in the subprocess only
HANDLERS = "tests.support.bulk_fault_handlers"
TOTAL = 120
RATE = 15.0  # replays per second: the run spans several seconds
PAGE = 20
# Kill when this many handler calls have started: mid-page 2, then mid-page 4.
KILL_AFTER_CALLS = (36, 70)
# Product constant (workflows/bulk.py): a killed page is retried after this.
HEARTBEAT_TIMEOUT = 60.0
# The entries' replay_timeout (above the short hold before a kill): a replay lost
# with its worker times out after replay_timeout + 30 s (workflows/entry.py),
# before the page is retried.
REPLAY_TIMEOUT = 10.0
# Whole redrive: nominal ~8 s plus, per kill, the heartbeat timeout and the
# retry backoff, with room for a loaded 2-core machine.
RUN_BOUND = 120.0 + len(KILL_AFTER_CALLS) * (HEARTBEAT_TIMEOUT + 40.0)
# Server and test share the clock; a replay begun after a kill started >= 2 s later.
CLOCK_SLACK = timedelta(seconds=1)


@pytest.fixture
def kill_setup(temporal_address: str, tmp_path: Path) -> Iterator[tuple[WorkerProcess, dict]]:
    queue = f"dlq-bulk-kill-{uuid.uuid4().hex[:8]}"
    db_path = tmp_path / "bulk-kill.db"
    paths = {"queue": queue, "db_path": db_path, "database_url": f"sqlite:///{db_path}",
             "call_log": tmp_path / "calls.log", "hold": tmp_path / "hold",
             "outbox": tmp_path / "outbox.db"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLQ_")}
    env.update({"DLQ_DATABASE_URL": paths["database_url"],
                "DLQ_OUTBOX_PATH": str(tmp_path / "worker-outbox.db"),
                "DLQ_MAINTENANCE_ENABLED": "false", "DLQ_TEST_CALL_LOG": str(paths["call_log"]),
                "DLQ_TEST_HOLD_FILE": str(paths["hold"]),
                "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    # `python worker.py --handlers tests.support.bulk_fault_handlers`, restartable and killable.
    worker = WorkerProcess(address=temporal_address, task_queue=queue, handlers=[HANDLERS],
                           log_path=tmp_path / "worker.log", env=env, cwd=ROOT)
    try:
        yield worker, paths
    finally:
        worker.stop(20)
        alive = [p.pid for p in worker.runs if p.poll() is None]
        assert not alive, f"worker processes left running: {alive}"
        ps = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(os.getpid())],
                            capture_output=True, text=True).stdout
        assert "worker.py" not in ps, f"leftover worker process:\n{ps}"


def read_calls(path: Path) -> list[tuple[str, int]]:
    """(entry id, worker pid) of every handler call so far, in order."""
    if not path.exists():
        return []
    calls = []
    for line in path.read_text().splitlines():
        entry_id, pid = line.split()
        calls.append((entry_id, int(pid)))
    return calls


async def wait_calls(path: Path, n: int, worker: WorkerProcess, timeout: float) -> int:
    """Wait until ``n`` handler calls were logged; returns how many there are."""
    deadline = time.monotonic() + timeout
    while (count := len(read_calls(path))) < n:
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
        if time.monotonic() > deadline:
            raise AssertionError(f"only {count}/{n} handler calls within {timeout:g}s:\n"
                                 f"{worker.tail()}")
        await asyncio.sleep(0.02)
    return count


def sql_rows(db_path: Path, query: str, *args: object) -> list[tuple]:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


async def test_killing_the_worker_mid_run_resumes_without_double_replays(
        kill_setup: tuple[WorkerProcess, dict], temporal_address: str, client: Client) -> None:
    """Two SIGKILLs mid-page, each with replays provably in flight.

    Expected (README "Delivery guarantees" and "Surviving worker loss"): the
    redrive completes; no entry's handler ever runs twice; every entry has
    exactly one counted attempt. A replay lost with its worker is that one
    attempt, failed (its activity has no retries), and is never re-run by the
    retried page; every other entry is resolved. The redrive's counters agree
    with SQL.
    """
    worker, paths = kill_setup
    call_log, hold = paths["call_log"], paths["hold"]
    await worker.restart(timeout=90)
    service = AsyncDLQService(DLQConfig(
        temporal_address=temporal_address, task_queue=paths["queue"],
        database_url=paths["database_url"], outbox_path=str(paths["outbox"]),
        store_timeout=30, replay_timeout=REPLAY_TIMEOUT), client=client)
    try:
        gate = asyncio.Semaphore(16)

        async def store_one(n: int) -> str:
            async with gate:
                result = await service.store_failure(
                    DOMAIN, "PG_TIMEOUT", entity_type="order", entity_id=str(n),
                    error_message="original failure", recommended_action="manual_check",
                    mode="sync")
            assert result.success and result.dlq_id, result
            return result.dlq_id

        ids = await asyncio.gather(*(store_one(n) for n in range(TOTAL)))
        assert len(set(ids)) == TOTAL
        assert read_calls(call_log) == []

        started = await service.bulk_replay({"domain": DOMAIN}, actor_id="ops",
                                            reason="kill test", rate_per_second=RATE,
                                            page_size=PAGE)
        assert started["total"] == TOTAL
        wid = started["workflow_id"]
        t0 = time.monotonic()
        kills: list[dict] = []
        for n in KILL_AFTER_CALLS:
            await wait_calls(call_log, n, worker, timeout=RUN_BOUND)
            progress = await service.get_bulk_replay(wid)
            assert progress.status == "running" and progress.done < TOTAL, progress
            # Hold the handlers, and kill once a call is provably held (logged after the hold).
            hold.touch()
            held_from = len(read_calls(call_log))
            await wait_calls(call_log, held_from + 1, worker, timeout=60)
            pid = worker.proc.pid
            # SIGKILL: no shutdown, no final heartbeat, in-flight work is simply lost.
            assert worker.alive(), "worker is not running"
            worker.kill()
            killed_at = datetime.now(UTC)
            hold.unlink()
            held = {i for i, p in read_calls(call_log)[held_from:] if p == pid}
            kills.append({"pid": pid, "calls": held_from, "done": progress.done, "held": held,
                          "at": round(time.monotonic() - t0, 1), "wall": killed_at})
            await asyncio.sleep(2.0)
            await worker.restart(timeout=90)
        try:
            final = await asyncio.wait_for(service.wait_bulk_replay(wid), timeout=RUN_BOUND)
        except TimeoutError:
            raise AssertionError(f"redrive not done within {RUN_BOUND:g}s (kills: {kills}); "
                                 f"progress {await service.get_bulk_replay(wid)!r}\n"
                                 f"{worker.tail()}") from None
        elapsed = time.monotonic() - t0

        calls = read_calls(call_log)
        per_entry = Counter(i for i, _ in calls)
        pid_of = {i: p for i, p in calls}
        killed = {k["pid"] for k in kills}
        details = {i: await service.get_entry(i) for i in ids}
        lost = {i for i, d in details.items() if d["status"] != "resolved"}
        print(f"\nredrive of {TOTAL} with {len(kills)} kills took {elapsed:.1f}s"
              f"\nkills: {kills}\nfinal: {final!r}\nhandler calls: {len(calls)} in "
              f"{len({p for _, p in calls})} processes; lost with a killed worker: "
              f"{ {i: (details[i]['status'], per_entry[i]) for i in lost} }")

        # The redrive went through both kills and completed.
        assert (final.status, final.total, final.done, final.remaining) == (
            "completed", TOTAL, TOTAL, 0), final
        assert {p for _, p in calls} - killed == {worker.proc.pid}, "the last worker did no work"
        # No double replays: no entry's handler started twice, in any worker process.
        doubled = {i: n for i, n in per_entry.items() if n > 1}
        assert not doubled, f"entries replayed more than once: {doubled}"
        assert set(per_entry) <= set(ids)
        # Every entry: exactly one counted attempt, by this redrive.
        for i, d in details.items():
            assert d["retry_count"] == 1 and len(d["attempts"]) == 1, (i, d["attempts"])
            attempt = d["attempts"][0]
            assert (attempt["trigger"], attempt["actor"], attempt["counted"]) == (
                "bulk", "ops", True), (i, attempt)
            actions = Counter(e["action"] for e in d["audit_events"])
            assert actions["replay_started"] == 1, (i, actions)
            if i in lost:
                # Lost with a killed worker: one failed attempt, never re-run elsewhere.
                assert d["status"] == "pending", (i, d["status"])
                assert attempt["outcome"] == "error", (i, attempt)
                assert "StartToClose timeout" in attempt["error"], (i, attempt)
                assert actions["replay_failed"] == 1, (i, actions)
                assert per_entry[i] == 0 or pid_of[i] in killed, (i, pid_of[i], killed)
            else:
                assert per_entry[i] == 1, f"{i} resolved without its handler running"
                assert attempt["outcome"] == "success", (i, attempt)
                assert actions["replay_succeeded"] == 1, (i, actions)
        # The kills really hit replays in flight, and only those were lost: every lost
        # attempt began before a kill (and at most a page is in flight per kill).
        for k in kills:
            assert k["held"] and k["held"] <= lost, k
        for i in lost:
            began = datetime.fromisoformat(details[i]["attempts"][0]["at"])
            assert any(k["wall"] - timedelta(seconds=60) < began < k["wall"] + CLOCK_SLACK
                       for k in kills), (i, began, [k["wall"] for k in kills])
        assert len(lost) <= PAGE * len(kills), lost
        # The redrive's counters agree with SQL.
        assert (final.succeeded, final.failed, final.skipped) == (
            TOTAL - len(lost), len(lost), 0), final
        # No duplicate rows in the read model.
        db = paths["db_path"]
        assert sql_rows(db, "SELECT count(*), count(DISTINCT id) FROM dlq_entries") == [
            (TOTAL, TOTAL)]
        assert sql_rows(db, "SELECT entry_id, seq, count(*) FROM dlq_audit_events "
                            "GROUP BY entry_id, seq HAVING count(*) > 1") == []
        assert sql_rows(db, "SELECT count(*), count(DISTINCT entry_id) FROM dlq_bulk_items "
                            "WHERE bulk_id = ?", started["bulk_id"]) == [(TOTAL, TOTAL)]
    finally:
        hold.unlink(missing_ok=True)
        await service.close()
