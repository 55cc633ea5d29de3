"""``dlq serve`` as a child process (``make run``, tests), ready once it answers HTTP."""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from dlq._procs import ManagedProcess, ProcessExitedError, ProcessNotReadyError

__all__ = ["ServeProcess"]


class ServeProcess(ManagedProcess):
    """``python -m dlq serve --host 127.0.0.1 --port PORT [--insecure-local]``.

    Configuration comes from the ``DLQ_*`` variables in ``env``.

    Args:
        port: Port to serve on (127.0.0.1).
        log_path: Log file.
        insecure_local: Serve without tokens (everyone an admin named ``local``).
        **options: More :class:`ManagedProcess` arguments (``env``, ``marker``...).
    """

    def __init__(self, *, port: int, log_path: Path, insecure_local: bool = False,
                 name: str = "dlq serve", **options) -> None:
        self.port = port
        argv = [sys.executable, "-m", "dlq", "serve", "--host", "127.0.0.1", "--port",
                str(port), *(["--insecure-local"] if insecure_local else [])]
        super().__init__(name, argv, log_path=log_path, **options)

    @property
    def url(self) -> str:
        """Where it serves."""
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once ``/login`` answers.

        Raises:
            ProcessError: It exited, or did not answer within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise ProcessExitedError(f"{self.name} exited (code {self.returncode}); "
                                         f"log {self.log_path}:\n{self.tail()}", self)
            try:
                await asyncio.to_thread(_get, f"{self.url}/login")
                return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise ProcessNotReadyError(f"{self.name} did not answer on {self.url} within "
                                           f"{timeout:g}s; log {self.log_path}:\n{self.tail()}",
                                           self)
            await asyncio.sleep(0.2)


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=2) as response:
        response.read()
