"""Replay handlers the tests register (domains starting with ``t-``)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import dlq

calls: Counter[str] = Counter()
_lock = threading.Lock()


def _count(entry: dlq.FailedOperationData) -> int:
    with _lock:
        calls[entry.id] += 1
        return calls[entry.id]


@dlq.replay_handler("t-ok")
def succeed(entry: dlq.FailedOperationData) -> None:
    """Sync handler that always succeeds."""
    _count(entry)


@dlq.replay_handler("t-async-ok")
async def succeed_async(entry: dlq.FailedOperationData) -> None:
    """Async handler that always succeeds."""
    _count(entry)
    await asyncio.sleep(0)


@dlq.replay_handler("t-fail")
def fail(entry: dlq.FailedOperationData) -> None:
    """A poison pill: always raises."""
    n = _count(entry)
    raise RuntimeError(f"downstream refused (call {n})")


@dlq.replay_handler("t-flaky")
def flaky(entry: dlq.FailedOperationData) -> None:
    """Fails until called ``snapshot_data["succeed_on"]`` times."""
    n = _count(entry)
    if n < int(entry.snapshot_data.get("succeed_on", 2)):
        raise ConnectionError(f"still down (call {n})")


@dlq.replay_handler("t-typed", "ONLY_THIS")
def typed(entry: dlq.FailedOperationData) -> None:
    """Registered for one failure type only; others of the domain have no handler."""
    _count(entry)


@dlq.replay_handler("t-slow")
async def slow(entry: dlq.FailedOperationData) -> None:
    """Sleeps longer than the replay timeout the tests configure."""
    _count(entry)
    await asyncio.sleep(float(entry.snapshot_data.get("sleep", 5)))


@dlq.replay_handler("t-big")
def check_big(entry: dlq.FailedOperationData) -> None:
    """Succeeds only if the snapshot arrived intact (its digest is in metadata)."""
    import hashlib
    import json

    _count(entry)
    digest = hashlib.sha256(json.dumps(entry.snapshot_data, sort_keys=True).encode()).hexdigest()
    if digest != entry.metadata["sha256"]:
        raise ValueError(f"snapshot damaged: {digest} != {entry.metadata['sha256']}")
