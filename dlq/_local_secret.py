"""Random secrets kept next to the state in ``DLQ_HOME`` (mode 0600).

Used where a key is needed but none was configured: the cursor signing key
when ``DLQ_CURSOR_SECRET`` is unset. The secret is made once, with the
operating system's random source, and every later process on the host reads
the same file, so nothing about it can be predicted from the configuration
(the database URL is no secret).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["local_secret"]

_BYTES = 32


def local_secret(home: str, name: str) -> bytes:
    """The secret in ``home/name``, created (32 random bytes, hex, mode 0600) if missing.

    Creation is atomic: the secret is written to a private temporary file and
    hard-linked into place, so two processes starting together agree on one
    secret and neither ever reads a half-written file.

    Raises:
        OSError: ``home`` cannot be created or the file cannot be read or written.
        ValueError: The file exists but does not hold a secret.
    """
    folder = Path(home)
    path = folder / name
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    text = path.read_text().strip()
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) < 16:
        raise ValueError(f"{path} must hold a hex secret of at least 16 bytes; delete it to "
                         "have a new one made")
    return value
