"""Handler calls recorded in a file named by an environment variable (for fault tests)."""

from __future__ import annotations

import os


def append_call(env_var: str, line: str, *, durable: bool = False) -> None:
    """Append ``line`` to the file ``$env_var`` names (nothing if unset).

    One ``write`` on an ``O_APPEND`` file, so lines from concurrent handlers and
    processes never interleave; ``durable`` also fsyncs (survives a SIGKILL).
    """
    path = os.environ.get(env_var)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
