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


@dlq.replay_handler("t-replay")
def succeed_for_replay(entry: dlq.FailedOperationData) -> None:
    """Always succeeds; a domain of its own for the batch replay test."""
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


class Downstream:
    """A fake downstream: fails above ``capacity`` calls in flight, or during a burst."""

    def __init__(self) -> None:
        self.capacity = 4
        self.burst = False
        self.latency = 0.02
        self.in_flight = 0
        self.samples: list[int] = []
        self.lock = threading.Lock()

    def reset(self, capacity: int = 4, latency: float = 0.02) -> None:
        with self.lock:
            self.capacity, self.latency, self.burst = capacity, latency, False
            self.in_flight, self.samples = 0, []

    async def call(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.samples.append(self.in_flight)
            overloaded = self.in_flight > self.capacity
        try:
            await asyncio.sleep(self.latency)
            if self.burst:
                raise ConnectionError("downstream error burst")
            if overloaded:
                raise ConnectionError(f"downstream overloaded (> {self.capacity} in flight)")
        finally:
            with self.lock:
                self.in_flight -= 1


downstream = Downstream()


@dlq.replay_handler("t-down")
async def call_downstream(entry: dlq.FailedOperationData) -> None:
    """Replays through the fake downstream."""
    _count(entry)
    await downstream.call()


# What the t-echo handler saw, per entry: (request_data, snapshot_data) of each call.
seen: dict[str, list[tuple[dict, dict]]] = {}


@dlq.replay_handler("t-echo")
def echo(entry: dlq.FailedOperationData) -> None:
    """Records the data it was given; fails unless snapshot_data says ``{"fixed": true}``."""
    _count(entry)
    with _lock:
        seen.setdefault(entry.id, []).append((dict(entry.request_data),
                                              dict(entry.snapshot_data)))
    if not entry.snapshot_data.get("fixed"):
        raise ValueError("bad data: snapshot_data.fixed is not set")
