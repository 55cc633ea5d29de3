"""Real processes for the fault tests: a Temporal dev server, the DLQ worker, probes.

Every process a fault test starts is a :class:`Managed` process: its output goes
to a log file in the test's folder, it carries a marker variable so leftovers
can be found, it dies with the test process (``setpriv --pdeathsig KILL``) and
:class:`FaultStack` stops it at the end of the test, whatever happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from dlq import DLQConfig
from dlq._temporal import connect

__all__ = [
    "BIN",
    "ROOT",
    "DevServer",
    "FaultStack",
    "Managed",
    "WorkerProcess",
    "audit_counts",
    "count_entry_workflows",
    "entry_workflow_ids",
    "free_port",
    "leftover_pids",
    "outbox_claimed",
    "outbox_depth",
    "read_rows",
    "wait_for",
    "wait_progress",
]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MARKER = "DLQ_FAULT_TEST_RUN"
STOP_TIMEOUT = 15.0
_SETPRIV = shutil.which("setpriv")
T = TypeVar("T")


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_for(probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], *,
                   timeout: float, interval: float = 0.5, what: str = "condition") -> T:
    """Poll ``probe`` until ``until(value)`` holds; fail with the last value after ``timeout``.

    A probe that raises counts as "not yet" (the server may be restarting);
    its last error is part of the failure message.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = await probe()
            if until(last):
                return last
        except Exception as err:  # noqa: BLE001 - e.g. the server is still coming back
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout:g}s; last value: {last!r:.2000}")
        await asyncio.sleep(interval)


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


class Managed:
    """One child process with its log; restartable, killable, always stoppable.

    Args:
        name: Short name, used for the log files (``<name>-<n>.log``).
        argv: Command line.
        logs: Folder of the log files.
        env: Environment (the marker variable is added).
        marker: Value of the marker variable (one per test).
    """

    def __init__(self, name: str, argv: Sequence[str], *, logs: Path, env: dict[str, str],
                 marker: str) -> None:
        self.name, self.argv, self.logs = name, list(argv), logs
        self.env = {**env, MARKER: marker}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = logs / f"{name}-0.log"

    @property
    def pid(self) -> int | None:
        """Process id of the current run (None before the first start)."""
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        """Whether the current run is still running."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start a new run (the previous one must have ended)."""
        assert not self.alive(), f"{self.name} is already running"
        self.starts += 1
        self.log_path = self.logs / f"{self.name}-{self.starts}.log"
        argv = self.argv
        if _SETPRIV:  # dies with the test process even if no finally block runs
            argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the current run and reap it (a thawed process first, so it can die)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``STOP_TIMEOUT``; reaped either way."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)

    def log_text(self) -> str:
        """The whole log of the current run."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 40) -> str:
        """The last lines of the current run's log (for failure messages)."""
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(empty log)"

    def check_alive(self) -> None:
        """Raise with the log tail if the current run has exited."""
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise AssertionError(f"{self.name} exited with {code}; log tail:\n{self.tail()}")


class DevServer(Managed):
    """``temporal server start-dev`` on fixed free ports with a persistent SQLite file.

    Restarting keeps the port and the file, so clients and the stored
    workflows come back as they were.
    """

    def __init__(self, folder: Path, *, marker: str) -> None:
        self.port, self.ui_port = free_port(), free_port()
        self.db_file = folder / "temporal.db"
        argv = [str(BIN / "temporal"), "server", "start-dev", "--ip", "127.0.0.1",
                "--port", str(self.port), "--ui-port", str(self.ui_port),
                "--db-filename", str(self.db_file),
                "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
                "--log-level", "error", "--headless"]
        super().__init__("temporal", argv, logs=folder, env=dict(os.environ), marker=marker)

    @property
    def address(self) -> str:
        """``host:port`` of the frontend."""
        return f"127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once the frontend answers and the ``default`` namespace exists."""
        async def probe() -> bool:
            self.check_alive()
            client = await asyncio.wait_for(connect(self.address), timeout=3)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace="default"), timeout=timedelta(seconds=3))
            return True

        try:
            await wait_for(probe, bool, timeout=timeout, interval=0.2, what="server ready")
        except AssertionError as err:
            raise AssertionError(f"{err}\nserver log tail:\n{self.tail()}") from None

    async def restart(self, timeout: float = 60.0) -> None:
        """Start again (same port, same file) and wait until it answers."""
        self.start()
        await self.wait_ready(timeout)


class WorkerProcess(Managed):
    """``python worker.py --handlers <module>`` configured through ``DLQ_*`` variables."""

    READY_LINE = "DLQ worker on"

    def __init__(self, folder: Path, *, address: str, task_queue: str, database_url: str,
                 outbox_path: Path, handlers: str, marker: str,
                 extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "DLQ_TEMPORAL_ADDRESS": address, "DLQ_TASK_QUEUE": task_queue,
               "DLQ_DATABASE_URL": database_url, "DLQ_OUTBOX_PATH": str(outbox_path),
               "DLQ_MAINTENANCE_ENABLED": "false", "PYTHONPATH": str(ROOT),
               "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        argv = [sys.executable, "worker.py", "--handlers", handlers]
        super().__init__("worker", argv, logs=folder, env=env, marker=marker)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once this run logged its start-up line (it polls right after)."""
        async def probe() -> bool:
            self.check_alive()
            return self.READY_LINE in self.log_text()

        await wait_for(probe, bool, timeout=timeout, interval=0.1, what="worker ready")

    async def restart(self, timeout: float = 60.0) -> None:
        """Start a new run and wait until it polls."""
        self.start()
        await self.wait_ready(timeout)


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
        self.server = DevServer(folder, marker=self.marker)
        self.db_path = folder / "dlq.db"
        self.database_url = f"sqlite:///{self.db_path}"
        self.task_queue = f"dlq-fault-{self.marker[:8]}"
        self.worker: WorkerProcess | None = None
        self.others: list[Managed] = []
        self._clients: list[Client] = []

    def make_worker(self, *, handlers: str = "tests.support.fault_handlers",
                    outbox_path: Path | None = None,
                    extra_env: dict[str, str] | None = None) -> WorkerProcess:
        """Define the worker process (its outbox is its own unless ``outbox_path`` is given)."""
        self.worker = WorkerProcess(
            self.folder, address=self.server.address, task_queue=self.task_queue,
            database_url=self.database_url,
            outbox_path=outbox_path or self.folder / "worker-outbox.db", handlers=handlers,
            marker=self.marker, extra_env=extra_env)
        return self.worker

    async def start(self, **worker_options: Any) -> WorkerProcess:
        """Start the server, then the worker, each waited for."""
        self.server.start()
        await self.server.wait_ready()
        worker = self.make_worker(**worker_options)
        await worker.restart()
        return worker

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Managed:
        """Start another child (a producer, a drain command); stopped with the stack."""
        proc = Managed(name, argv, logs=self.folder, env=env, marker=self.marker)
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
                proc.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                proc.kill()

    def diagnostics(self) -> str:
        """Log tails of the worker and the server, for a failure message."""
        parts = [f"--- server log ---\n{self.server.tail()}"]
        if self.worker:
            parts.append(f"--- worker log ---\n{self.worker.tail()}")
        return "\n".join(parts)


def leftover_pids(marker: str) -> list[int]:
    """Processes still running (not zombies) whose environment carries ``marker``."""
    found = []
    needle = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


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
