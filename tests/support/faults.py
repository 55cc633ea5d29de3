"""Real processes for the fault tests: a Temporal dev server, the DLQ worker, probes.

Every process a fault test starts is a :class:`dlq._procs.ManagedProcess`: its
output goes to a log file in the test's folder, it carries the test's marker
variable so leftovers can be found (:func:`dlq._procs.leftover_pids`), it dies
with the test process (``setpriv --pdeathsig KILL``) and :class:`FaultStack`
stops it at the end of the test, whatever happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import Client

from dlq import DLQConfig
from dlq._connect import connect
from dlq._procs import ROOT, DevServer, ManagedProcess, WorkerProcess

__all__ = [
    "FaultStack",
    "audit_counts",
    "count_entry_workflows",
    "entry_workflow_ids",
    "outbox_claimed",
    "outbox_depth",
    "read_rows",
    "wait_for",
    "wait_progress",
]

STOP_GRACE = 15.0
T = TypeVar("T")


async def wait_for(probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], *,
                   timeout: float, interval: float = 0.5, what: str = "condition") -> T:
    """Poll ``probe`` until ``until(value)`` holds; fail with the last value after ``timeout``.

    A probe that raises counts as "not yet" (the server may be restarting);
    its last error is part of the failure message.
    """
    return await wait_progress(probe, until, lambda _: None, stall=timeout, limit=timeout,
                               interval=interval, what=what)


async def wait_progress(probe: Callable[[], Awaitable[T]], until: Callable[[T], bool],
                        progress: Callable[[T], object], *, stall: float, limit: float,
                        interval: float = 1.0, what: str = "condition") -> T:
    """Poll ``probe`` until ``until(value)`` holds, for as long as it makes progress.

    On a loaded machine the same work may take many times longer, so the
    bound is on stalling: it fails when ``progress(value)`` (a signature of
    how far the work got) stays the same for ``stall`` seconds, and in any
    case after ``limit`` seconds. A probe that raises counts as no progress.
    """
    started = last_change = time.monotonic()
    seen: object = object()
    last: Any = None
    while True:
        try:
            last = await probe()
            if until(last):
                return last
            mark = progress(last)
            if mark != seen:
                seen, last_change = mark, time.monotonic()
        except Exception as err:  # noqa: BLE001 - e.g. the server is still coming back
            last = err
        now = time.monotonic()
        if now - last_change > stall or now - started > limit:
            why = f"no progress for {stall:g}s" if now - last_change > stall else (
                f"not done after {limit:g}s")
            raise AssertionError(f"{what}: {why}; progress {seen!r:.300}; "
                                 f"last value: {last!r:.1500}")
        await asyncio.sleep(interval)


class FaultStack:
    """The processes of one fault test, in its own folder, and the probes it needs.

    Attributes:
        folder: The test's folder (databases, outboxes, logs).
        marker: Value of the marker variable every child carries.
        server: The dev server (not started yet).
        database_url: SQLAlchemy URL of the worker's SQLite read model.
        db_path: That SQLite file.
        task_queue: The DLQ task queue of this test.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.marker = uuid.uuid4().hex
        # A persistent SQLite file: a restart (same port, same file) keeps the workflows.
        self.server = DevServer(log_path=folder / "temporal.log", db_file=folder / "temporal.db",
                                log_level="error", headless=True, marker=self.marker, cwd=ROOT,
                                tail_lines=40)
        self.db_path = folder / "dlq.db"
        self.database_url = f"sqlite:///{self.db_path}"
        self.task_queue = f"dlq-fault-{self.marker[:8]}"
        self.worker: WorkerProcess | None = None
        self.others: list[ManagedProcess] = []
        self._clients: list[Client] = []

    def make_worker(self, *, handlers: str = "tests.support.fault_handlers",
                    outbox_path: Path | None = None,
                    extra_env: dict[str, str] | None = None) -> WorkerProcess:
        """Define the worker process (its outbox is its own unless ``outbox_path`` is given)."""
        env = self.dlq_env(DLQ_OUTBOX_PATH=str(outbox_path or self.folder / "worker-outbox.db"),
                           **(extra_env or {}))
        self.worker = WorkerProcess(
            address=self.server.address, task_queue=self.task_queue, handlers=[handlers],
            log_path=self.folder / "worker.log", env=env, cwd=ROOT, marker=self.marker,
            tail_lines=40)
        return self.worker

    async def start(self, **worker_options: Any) -> WorkerProcess:
        """Start the server, then the worker, each waited for."""
        self.server.start()
        await self.server.wait_ready()
        worker = self.make_worker(**worker_options)
        await worker.restart()
        return worker

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str]) -> ManagedProcess:
        """Start another child (a producer, a drain command); stopped with the stack."""
        proc = ManagedProcess(name, argv, log_path=self.folder / f"{name}.log", env=env,
                              cwd=ROOT, marker=self.marker, tail_lines=40)
        self.others.append(proc)
        proc.start()
        return proc

    def dlq_env(self, **changes: str) -> dict[str, str]:
        """The environment of a DLQ process pointed at this stack."""
        return {**os.environ, "DLQ_TEMPORAL_ADDRESS": self.server.address,
                "DLQ_TASK_QUEUE": self.task_queue, "DLQ_DATABASE_URL": self.database_url,
                "DLQ_MAINTENANCE_ENABLED": "false", "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1", **changes}

    def config(self, **changes: Any) -> DLQConfig:
        """A producer's configuration pointed at this stack."""
        base: dict[str, Any] = dict(temporal_address=self.server.address,
                                    task_queue=self.task_queue, database_url=self.database_url,
                                    outbox_path=str(self.folder / "producer-outbox.db"),
                                    maintenance_enabled=False)
        return DLQConfig(**{**base, **changes})

    async def client(self) -> Client:
        """A fresh client of the server (closed with the stack)."""
        client = await asyncio.wait_for(connect(self.server.address), timeout=10)
        self._clients.append(client)
        return client

    def stop(self) -> None:
        """Stop every child: producers first, then the worker, then the server."""
        for proc in [*self.others, *([self.worker] if self.worker else []), self.server]:
            try:
                proc.stop(STOP_GRACE)
            except Exception:  # noqa: BLE001 - keep stopping the others
                proc.kill()

    def diagnostics(self) -> str:
        """Log tails of the worker and the server, for a failure message."""
        parts = [f"--- server log ---\n{self.server.tail()}"]
        if self.worker:
            parts.append(f"--- worker log ---\n{self.worker.tail()}")
        return "\n".join(parts)


def _sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60)
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def read_rows(db_path: Path) -> dict[str, dict[str, Any]]:
    """Every entry row of the SQLite read model: id -> status, version, counts, attempts."""
    if not db_path.exists():
        return {}
    conn = _sqlite(db_path)
    try:
        try:
            rows = conn.execute("SELECT id, status, version, retry_count, max_retries, "
                                "attempts, snapshot_data FROM dlq_entries").fetchall()
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                return {}
            raise
    finally:
        conn.close()
    return {r[0]: {"status": r[1], "version": r[2], "retry_count": r[3], "max_retries": r[4],
                   "attempts": json.loads(r[5]), "snapshot_data": json.loads(r[6])}
            for r in rows}


def audit_counts(db_path: Path) -> dict[str, tuple[int, int]]:
    """entry id -> (number of audit rows, highest seq) in the SQLite read model."""
    conn = _sqlite(db_path)
    try:
        rows = conn.execute("SELECT entry_id, count(*), max(seq) FROM dlq_audit_events "
                            "GROUP BY entry_id").fetchall()
    finally:
        conn.close()
    return {r[0]: (r[1], r[2]) for r in rows}


def outbox_depth(path: Path) -> int:
    """Records waiting in an outbox file (0 if the file does not exist)."""
    if not path.exists():
        return 0
    conn = _sqlite(path)
    try:
        return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()


def outbox_claimed(path: Path) -> int:
    """Records of an outbox file that a relay holds under a lease right now."""
    conn = _sqlite(path)
    try:
        return conn.execute("SELECT count(*) FROM outbox WHERE claimed_until > ?",
                            (time.time(),)).fetchone()[0]
    finally:
        conn.close()


async def count_entry_workflows(client: Client, query: str = "") -> int:
    """How many ``DLQEntryWorkflow`` executions (runs) the server knows, optionally filtered."""
    where = 'WorkflowType="DLQEntryWorkflow"' + (f" AND {query}" if query else "")
    return (await client.count_workflows(where)).count


async def entry_workflow_ids(client: Client) -> list[str]:
    """Workflow ids of every ``DLQEntryWorkflow`` run (one item per run)."""
    return [w.id async for w in client.list_workflows('WorkflowType="DLQEntryWorkflow"',
                                                      page_size=1000)]
