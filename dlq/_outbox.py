"""The local durable outbox: an embedded SQLite file that entries wait in.

``mode="async"`` stores append here and return at once; a sync store that
cannot reach Temporal (or SQL) falls back here. A relay drains the outbox into
Temporal; a record leaves only after its entry's workflow exists, and
re-delivery is idempotent because the workflow id comes from the record's
pre-assigned ``dlq_id``.

One file per host, safe for several processes: WAL mode, short write
transactions, and relays that claim batches under a lease, so a crashed
relay's claims expire and another picks them up.

With a key ring (``DLQ_ENCRYPTION_KEYS``) each record's payload and last
error are sealed (AES-256-GCM, see :mod:`dlq._keys`); records written before
encryption was switched on are read as they are.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlq._errors import DLQKeyError
from dlq._keys import KeyRing
from dlq._messages import EntryInput

__all__ = ["Outbox", "OutboxRecord", "OutboxStats", "QuarantinedRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dlq_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_until REAL NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_ready ON outbox (next_attempt_at, claimed_until, seq);
CREATE TABLE IF NOT EXISTS outbox_quarantine (
    dlq_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    quarantined_at REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


# Binds a sealed record to the outbox (it cannot be passed off as SQL data).
_AAD = b"dlq:outbox"

# Appends after which a writer checkpoints itself (the relay normally does it).
_APPENDS_PER_CHECKPOINT = 4096


@dataclass(frozen=True)
class OutboxRecord:
    """One waiting entry."""

    seq: int
    dlq_id: str
    entry: EntryInput
    attempts: int


@dataclass(frozen=True)
class OutboxStats:
    """Depth and age of the outbox, and how many records failed at least once."""

    depth: int
    oldest_age_seconds: float | None
    failing: int
    last_error: str | None
    quarantined: int = 0


@dataclass(frozen=True)
class QuarantinedRecord:
    """A record Temporal refused for good, kept aside for an operator.

    ``payload`` is the record's JSON as appended (the entry's fields); it is
    shown to operators on request and never logged.
    """

    dlq_id: str
    payload: str
    created_at: float
    attempts: int
    quarantined_at: float
    reason: str


class Outbox:
    """An outbox file.

    Args:
        path: The SQLite file (created with its folder if missing).
        key_ring: Seal records with it (None: write them in clear).
    """

    def __init__(self, path: str | os.PathLike[str], *, key_ring: KeyRing | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        self.key_ring = key_ring
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._appends = 0
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        # sqlite3 connections must stay on their thread; keep one per thread.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
            conn.execute("PRAGMA busy_timeout=30000")
            # No automatic checkpoints: SQLite runs them inside whichever
            # commit crosses the threshold, so a caller's store would now and
            # then pay for copying the WAL into the file (the p99). The relay
            # checkpoints after its deletes instead, off the callers' path.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.conn = conn
        return conn

    def checkpoint(self) -> None:
        """Copy the WAL back into the file without blocking writers (PASSIVE)."""
        self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def append(self, entry: EntryInput) -> None:
        """Add an entry (a second append of the same ``dlq_id`` is a no-op)."""
        self._conn().execute(
            "INSERT OR IGNORE INTO outbox (dlq_id, payload, created_at) VALUES (?, ?, ?)",
            (entry.dlq_id, self._seal(entry.model_dump_json()), time.time()),
        )
        # Bound the WAL even where no relay runs (e.g. Temporal down for hours
        # and no deletes): a writer checkpoints every few thousand appends.
        self._appends += 1
        if self._appends % _APPENDS_PER_CHECKPOINT == 0:
            self.checkpoint()

    def claim(self, limit: int, *, lease: float = 60.0) -> list[OutboxRecord]:
        """Take up to ``limit`` ready records for this owner for ``lease`` seconds."""
        now = time.time()
        rows = self._conn().execute(
            """UPDATE outbox SET claimed_by = ?, claimed_until = ?
               WHERE seq IN (SELECT seq FROM outbox
                             WHERE next_attempt_at <= ? AND claimed_until <= ?
                             ORDER BY seq LIMIT ?)
               RETURNING seq, dlq_id, payload, attempts""",
            (self.owner, now + lease, now, now, limit),
        ).fetchall()
        rows.sort()
        records = []
        for seq, dlq_id, payload, attempts in rows:
            try:
                entry = EntryInput.model_validate_json(self._open(payload))
            except ValueError as err:  # written by another version, or damaged: never deliverable
                self.quarantine(seq, f"unreadable record: {type(err).__name__}: "
                                     f"{str(err).splitlines()[0]}")
                continue
            records.append(OutboxRecord(seq, dlq_id, entry, attempts))
        return records

    def quarantine(self, seq: int, reason: str) -> None:
        """Move a record Temporal refuses for good out of the relay's way, with ``reason``."""
        conn = self._conn()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                """INSERT OR REPLACE INTO outbox_quarantine
                   (dlq_id, payload, created_at, attempts, quarantined_at, reason)
                   SELECT dlq_id, payload, created_at, attempts + 1, ?, ? FROM outbox
                   WHERE seq = ?""", (time.time(), reason[:2000], seq))
            conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def quarantined(self, *, limit: int = 100) -> list[QuarantinedRecord]:
        """The quarantined records, newest first (at most ``limit``)."""
        rows = self._conn().execute(
            "SELECT dlq_id, payload, created_at, attempts, quarantined_at, reason "
            "FROM outbox_quarantine ORDER BY quarantined_at DESC LIMIT ?", (limit,)).fetchall()
        return [self._quarantined_record(*row) for row in rows]

    def get_quarantined(self, dlq_id: str) -> QuarantinedRecord | None:
        """One quarantined record, or None."""
        row = self._conn().execute(
            "SELECT dlq_id, payload, created_at, attempts, quarantined_at, reason "
            "FROM outbox_quarantine WHERE dlq_id = ?", (dlq_id,)).fetchone()
        return self._quarantined_record(*row) if row else None

    def _quarantined_record(self, dlq_id: str, payload: str,
                            *rest: Any) -> QuarantinedRecord:
        # Kept sealed as appended; opened for the operator like a claimed record.
        # Without the key it stays as stored (shown as unreadable, never a failed list).
        try:
            payload = self._open(payload)
        except DLQKeyError:
            pass
        return QuarantinedRecord(dlq_id, payload, *rest)

    def delete_quarantined(self, dlq_id: str) -> bool:
        """Delete a quarantined record; False if there was none."""
        cursor = self._conn().execute("DELETE FROM outbox_quarantine WHERE dlq_id = ?",
                                      (dlq_id,))
        return cursor.rowcount > 0

    def _seal(self, text: str) -> str:
        return self.key_ring.seal_text(text, aad=_AAD) if self.key_ring else text

    def _open(self, text: str) -> str:
        if self.key_ring is None:
            # A sealed record without a ring raises DLQKeyError naming its key.
            return KeyRing.open_unconfigured(text)
        return self.key_ring.open_text(text, aad=_AAD)

    def delete(self, seqs: list[int]) -> None:
        """Remove delivered records (one transaction), then checkpoint the WAL."""
        if seqs:
            conn = self._conn()
            # One write transaction for the batch, not one per record: each
            # commit takes the file's write lock that producers' appends wait on.
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
            self.checkpoint()

    def release(self, seq: int, error: str, *, retry_in: float) -> None:
        """Give a record back after a failed delivery, to retry after ``retry_in`` seconds."""
        self._conn().execute(
            """UPDATE outbox SET claimed_by = NULL, claimed_until = 0, attempts = attempts + 1,
               last_error = ?, next_attempt_at = ? WHERE seq = ?""",
            (self._seal(error[:2000]), time.time() + retry_in, seq),
        )

    def stats(self) -> OutboxStats:
        """Depth, oldest record age and failing records."""
        depth, oldest, failing = self._conn().execute(
            "SELECT count(*), min(created_at), count(*) FILTER (WHERE attempts > 0) FROM outbox"
        ).fetchone()
        last = self._conn().execute(
            "SELECT last_error FROM outbox WHERE last_error IS NOT NULL "
            "ORDER BY next_attempt_at DESC LIMIT 1").fetchone()
        (quarantined,) = self._conn().execute(
            "SELECT count(*) FROM outbox_quarantine").fetchone()
        return OutboxStats(depth=depth,
                           oldest_age_seconds=(time.time() - oldest) if oldest else None,
                           failing=failing, last_error=self._open(last[0]) if last else None,
                           quarantined=quarantined)

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
