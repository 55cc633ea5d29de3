"""The capture circuit breaker's states, and an open breaker answering stores at once.

The last test runs a real ``AsyncDLQService`` against a port that accepts
connections and never answers: the first stores wait their bound, the next
one goes to the outbox without trying.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlq import AsyncDLQService, DLQConfig, DLQEntryResult, DLQService
from dlq._breaker import CircuitBreaker


def test_the_breaker_opens_once_counts_and_closes() -> None:
    breaker = CircuitBreaker()
    assert not breaker.is_open and breaker.snapshot()["circuit_open"] is False
    assert breaker.trip("cannot reach Temporal") is True
    assert breaker.trip("still down") is False  # already open: one trip
    assert breaker.is_open
    error = breaker.short_circuit()
    assert error.startswith("Temporal unreachable for ") and "circuit open: still down" in error
    snap = breaker.snapshot()
    assert snap["circuit_open"] is True and snap["circuit_trips"] == 1
    assert snap["circuit_short_circuited"] == 1 and snap["circuit_reason"] == "still down"
    breaker.close()
    assert not breaker.is_open and breaker.snapshot()["circuit_reason"] is None
    assert breaker.trip("down again") is True and breaker.snapshot()["circuit_trips"] == 2


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a frozen server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def test_concurrent_stores_are_bounded_then_skip_temporal(silent_port: int,
                                                                tmp_path: Path) -> None:
    bound = 1.0
    config = DLQConfig(temporal_address=f"127.0.0.1:{silent_port}", store_timeout=bound,
                       database_url=f"sqlite:///{tmp_path}/d.db",
                       outbox_path=str(tmp_path / "outbox.db"))
    service = AsyncDLQService(config)

    async def timed(n: int) -> tuple[float, DLQEntryResult]:
        started = time.monotonic()
        result = await service.store_failure("payment", "PG_TIMEOUT", entity_id=str(n))
        return time.monotonic() - started, result

    try:
        first = await asyncio.gather(*(timed(n) for n in range(8)))
        assert max(e for e, _ in first) <= bound * 1.1, [e for e, _ in first]
        assert all(not r.success and r.fallback_path for _, r in first)
        elapsed, later = await timed(8)
        assert elapsed < 0.2 and later.fallback_path
        assert "circuit open" in later.error
        stats = await service.get_capture_stats()
        assert stats["circuit_open"] is True and stats["outbox_depth"] == 9
        assert stats["circuit_short_circuited"] == 1
    finally:
        await service.close()


def test_a_sync_store_is_bounded_even_when_the_loop_thread_is_stuck(tmp_path: Path) -> None:
    config = DLQConfig(temporal_address="127.0.0.1:1", store_timeout=2.0,
                       database_url=f"sqlite:///{tmp_path}/d.db",
                       outbox_path=str(tmp_path / "outbox.db"))
    with DLQService(config) as service:
        # Something (a blocking call by mistake) holds the service's loop thread.
        service._loop.loop.call_soon_threadsafe(time.sleep, 4)
        started = time.monotonic()
        result = service.store_failure("payment", "PG_TIMEOUT")
        elapsed = time.monotonic() - started
        assert elapsed <= config.store_timeout * 1.1, elapsed
        assert result.success is False and result.dlq_id and result.fallback_path
        assert "no answer from the DLQ loop thread" in (result.error or "")
        assert service.aio.outbox.stats().depth == 1
