"""A worker process stops gracefully on SIGTERM and SIGINT: replays in flight finish, once.

``python worker.py`` as a real process against the session's dev server; a
second worker process takes over the entry afterwards, as a rolling deploy does.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig
from dlq._procs import BIN, ROOT, WorkerProcess
from tests.support.helpers import eventually, store

pytestmark = pytest.mark.integration

GRACE = 20.0  # DLQ_SHUTDOWN_GRACE of the worker processes
SLEEP = 3.0  # how long the replay in flight takes


def _worker(address: str, queue: str, folder: Path, name: str) -> WorkerProcess:
    env = {**os.environ, "DLQ_DATABASE_URL": f"sqlite:///{folder}/read.db",
           "DLQ_OUTBOX_PATH": str(folder / "outbox.db"), "DLQ_MAINTENANCE_ENABLED": "false",
           "DLQ_HANDLER_MODULES": "tests.support.shutdown_handlers",
           "DLQ_SHUTDOWN_GRACE": f"{GRACE:g}", "SHUTDOWN_HANDLER_LOG": str(folder / "calls.log"),
           "PYTHONPATH": str(ROOT)}
    return WorkerProcess(address=address, task_queue=queue, log_path=folder / f"{name}.log",
                         env=env, cwd=ROOT, name=name)


def _wait_exit(worker: WorkerProcess, timeout: float) -> float:
    """Seconds until the worker exits (fails the test after ``timeout``)."""
    started = time.monotonic()
    assert worker.proc is not None
    worker.proc.wait(timeout=timeout)
    return time.monotonic() - started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_replay_in_flight_at_shutdown_completes_and_is_recorded_once(
        sig: signal.Signals, temporal_address: str, client: Client, tmp_path: Path) -> None:
    queue = f"dlq-stop-{uuid.uuid4().hex[:6]}"
    calls = tmp_path / "calls.log"
    first = _worker(temporal_address, queue, tmp_path, "first")
    second = _worker(temporal_address, queue, tmp_path, "second")
    service = AsyncDLQService(DLQConfig(temporal_address=temporal_address, task_queue=queue,
                                        database_url=f"sqlite:///{tmp_path}/read.db",
                                        store_timeout=30, command_timeout=90), client=client)
    try:
        await first.restart()
        dlq_id = await store(service, "s-slow", snapshot_data={"sleep": SLEEP})
        retry = asyncio.create_task(service.retry_entry(dlq_id))
        await eventually(lambda: asyncio.to_thread(_read, calls),
                         lambda text: f"start {dlq_id}" in text, timeout=30)

        assert first.pid is not None
        os.kill(first.pid, sig)
        took = await asyncio.to_thread(_wait_exit, first, GRACE + 15)
        assert first.returncode == 0, first.tail()
        # It waited for the replay instead of cutting it off...
        assert _read(calls).splitlines() == [f"start {dlq_id}", f"end {dlq_id}"]
        assert took < SLEEP + 10, took
        # ...and said what it did, step by step.
        log = first.log_text()
        steps = [f"{sig.name} received: shutting down gracefully",
                 "shutdown: no new tasks", "shutdown: running activities finished",
                 "shutdown: outbox", "shutdown: DLQ worker stopped"]
        positions = [log.find(step) for step in steps]
        assert -1 not in positions and positions == sorted(positions), log

        # The next worker records the finished replay: one attempt, resolved.
        await second.restart()
        result = await asyncio.wait_for(retry, timeout=60)
        assert result["success"] is True and result["status"] == "resolved", result
        entry = await service.get_entry(dlq_id)
        assert entry is not None and entry["status"] == "resolved"
        assert len(entry["attempts"]) == 1, entry["attempts"]
        assert _read(calls).splitlines() == [f"start {dlq_id}", f"end {dlq_id}"]
    finally:
        first.stop(5)
        second.stop(5)
        await service.close()


def _check(worker: WorkerProcess, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, "--check"], env=worker.env, cwd=ROOT, text=True,
                          capture_output=True, timeout=60)


async def test_an_idle_worker_is_healthy_then_stops_at_once(temporal_address: str,
                                                            tmp_path: Path) -> None:
    worker = _worker(temporal_address, f"dlq-stop-{uuid.uuid4().hex[:6]}", tmp_path, "idle")
    commands = [(sys.executable, str(ROOT / "worker.py")), (str(BIN / "dlq"), "worker")]
    try:
        await worker.restart()
        for command in commands:  # the image's HEALTHCHECK, and the CLI's twin
            healthy = await asyncio.to_thread(_check, worker, *command)
            assert healthy.returncode == 0, healthy.stderr
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGTERM)
        took = await asyncio.to_thread(_wait_exit, worker, 30)
        assert worker.returncode == 0, worker.tail()
        assert took < 5, took
        assert re.search(r"activities finished in \d+\.\ds", worker.log_text())
        gone = await asyncio.to_thread(_check, worker, *commands[0])
        assert gone.returncode == 1 and "no poller from this host" in gone.stderr
    finally:
        worker.stop(5)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
