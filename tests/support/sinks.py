"""Helpers of the end-to-end secrets proofs: seeded secrets and the bytes of every sink.

Shared by tests/integration/test_redaction_sinks.py, test_encryption_e2e.py and
test_secrets_e2e.py: distinct random secrets that must never be seen, and the
raw bytes of the sinks they could leak into (SQL files or ``pg_dump``, Temporal
histories as the ``temporal`` CLI prints them, every log record).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from dlq import DLQConfig
from dlq._procs import BIN


class Secrets:
    """Distinct random secrets, and the exact strings that must never be seen."""

    def __init__(self) -> None:
        self.rng = random.Random(uuid.uuid4().int)
        self.values: list[str] = []

    def _keep(self, *values: str) -> None:
        self.values.extend(values)

    def word(self, prefix: str) -> str:
        value = f"{prefix}{self.rng.getrandbits(80):020x}Zq"
        self._keep(value)
        return value

    def card(self, sep: str = "") -> str:
        digits = [4] + [self.rng.randrange(10) for _ in range(14)]
        total = 0
        for i, d in enumerate(reversed(digits)):  # the check digit makes it pass Luhn
            d = d * 2 if i % 2 == 0 else d
            total += d - 9 if d > 9 else d
        number = "".join(map(str, digits)) + str((10 - total % 10) % 10)
        # Never seen: the number, any of its spellings, or its first twelve digits.
        self._keep(number, " ".join(number[i:i + 4] for i in range(0, 16, 4)),
                   "-".join(number[i:i + 4] for i in range(0, 16, 4)), number[:12])
        return sep.join(number[i:i + 4] for i in range(0, 16, 4)) if sep else number

    def jwt(self) -> str:
        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
        body = part({"sub": self.word("sub-"), "exp": 2000000000})
        value = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{body}.{self.word('sig')}"
        self._keep(value, body)
        return value

    def pem(self) -> str:
        body = "".join(f"{self.rng.getrandbits(256):064x}" for _ in range(2))
        self._keep(body)
        return f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"

    def failure(self, n: int) -> dict[str, Any]:
        """One failure's fields, with about a dozen secrets in every field.

        ``request_data.credentials.api_key`` holds a value that is *not* kept
        among the secrets: tests put that path on their allow list.
        """
        token, card = self.word("tok"), self.card(("", " ", "-")[n % 3])
        basic = base64.b64encode(f"u:{self.word('basic')}".encode()).decode()
        return dict(
            error_message=f"gateway said 401 for Bearer {token}; card {card}",
            snapshot_data={"user": {"name": f"user{n}", "password": self.word("pw")},
                           "db": {"dsn": f"postgres://app:{self.word('dbpw')}@db/x"}},
            request_data={
                "headers": {"Authorization": f"Bearer {self.word('hdr')}",
                            "X-Api-Key": self.word("xak"), "Cookie": self.word("ck")},
                "credentials": {"api_key": f"allowed-{n}-{uuid.uuid4().hex}"},
                "payment": {"pan": self.card(), "note": f"paid with {self.card('-')}"},
                "items": [{"sku": "A1", "secret": self.word("itm")}, {"token": self.jwt()}],
            },
            response_data={"session": self.jwt(), "detail": f"use Basic {basic}"},
            metadata={"client_secret": self.word("cs"), "signing": self.pem(),
                      "apiKey": self.word("ak")},
        )


def decoded_strings(value: Any, out: list[bytes]) -> None:
    """Every string in a JSON document, and what base64 strings (payloads) decode to."""
    if isinstance(value, dict):
        for item in value.values():
            decoded_strings(item, out)
    elif isinstance(value, list):
        for item in value:
            decoded_strings(item, out)
    elif isinstance(value, str):
        out.append(value.encode())
        if len(value) >= 8 and len(value) % 4 == 0:
            try:
                out.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                pass


def temporal_json(address: str, *args: str) -> bytes:
    """``temporal <args> -o json`` output, with every base64 string added decoded.

    Payload data is base64 in that JSON: a plaintext payload would not show
    its text otherwise.
    """
    done = subprocess.run([str(BIN / "temporal"), *args, "--address", address, "-o", "json"],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    parts: list[bytes] = [done.stdout]
    decoded_strings(json.loads(done.stdout), parts)
    return b"\n".join(parts)


def sqlite_bytes(path: Path) -> bytes:
    """A SQLite file with its WAL and journal, as they are on disk."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*"))
                    if p.is_file())


def sql_bytes(config: DLQConfig) -> bytes:
    """The read model's bytes: the SQLite files, or a ``pg_dump`` of the database."""
    url = make_url(config.database_url)
    if url.get_backend_name() == "sqlite":
        return sqlite_bytes(Path(url.database or ""))
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    dump = subprocess.run(["pg_dump", "--no-owner", plain], capture_output=True, timeout=60,
                          check=True).stdout
    assert b"dlq_entries" in dump
    return dump


class LogCapture(logging.Handler):
    """Every record of the process, formatted, with its traceback if it has one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)
        self.lines.append(repr(record.args))  # raw arguments, in case formatting hid one


def capture_all_logs() -> Iterator[LogCapture]:
    """Body of a fixture: a ``LogCapture`` on the root logger, dlq and temporalio at DEBUG."""
    handler = LogCapture()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", "dlq", "temporalio")}
    root.addHandler(handler)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
