"""Helpers of :mod:`bench.capture`: sample failures, services with a chosen relay, a baseline.

Nothing here changes ``dlq``: the relay is switched off or re-tuned by
overriding :meth:`AsyncDLQService.start_relay` in a subclass, and the
blocking ``DLQService`` is pointed at such a subclass through its ``aio``
attribute (every blocking method calls ``self.aio``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlq import AsyncDLQService, DLQConfig, DLQService
from dlq._entry import new_entry_input
from dlq._outbox import _SCHEMA as OUTBOX_SCHEMA
from dlq._relay import Relay

__all__ = [
    "NoRelayService",
    "PlainSQLiteOutbox",
    "Quantiles",
    "TunedRelayService",
    "blocking_service",
    "entry_json_row",
    "loadavg",
    "quantiles",
    "sample_failure",
    "stop_relay",
    "stop_relay_blocking",
]

# Distinct per failure so rows differ, but of a steady size (~500 bytes of data).
_ITEMS = [{"sku": f"SKU-{n:05d}", "qty": n % 3 + 1, "unit_price": 1999 + n} for n in range(3)]


def sample_failure(i: int, *, domain: str = "payment") -> dict[str, Any]:
    """Keyword arguments of one realistic ``store_failure`` call (about 500 bytes of data).

    ``recommended_action="manual_check"``: the entry waits for an operator, so
    no replay runs while the benchmark measures capture.
    """
    return dict(
        domain=domain, failure_type="PG_TIMEOUT", entity_type="order",
        entity_id=f"ord-{i:08d}", user_id=100_000 + i, error_code="504",
        error_message="payment gateway timed out after 30s (upstream 10.0.3.17:443)",
        snapshot_data={"order_id": f"ord-{i:08d}", "amount": 5997 + i % 100, "currency": "EUR",
                       "status": "awaiting_capture", "items": _ITEMS,
                       "customer": {"id": 100_000 + i, "country": "DE", "tier": "gold"}},
        request_data={"method": "POST", "url": "https://pg.example.com/v2/charges",
                      "idempotency_key": f"chg-{i:08d}-3",
                      "body": {"amount": 5997 + i % 100, "currency": "EUR",
                               "card_token": "tok_1NbXyZ2eZvKYlo2C", "capture": True}},
        metadata={"region": "eu-west-1", "host": "api-7f9c", "attempt": 3},
        next_action_hint="check the PG status page, then replay",
        recommended_action="manual_check",
    )


def entry_json_row(kwargs: dict[str, Any], config: DLQConfig) -> dict[str, Any]:
    """The JSON object the outbox stores for ``kwargs`` (same fields and size)."""
    return new_entry_input(**kwargs, config=config).model_dump(mode="json")


class NoRelayService(AsyncDLQService):
    """An ``AsyncDLQService`` whose relay never starts: the store path alone.

    ``enqueue`` calls :meth:`start_relay` after every append; here that does
    nothing, so records stay in the outbox and nothing competes with the store.
    """

    def start_relay(self) -> Relay:  # type: ignore[override]
        """Do not start a relay (returns an idle one nobody runs)."""
        if self._relay is None:
            self._relay = Relay(self.outbox, self.deliver)
        return self._relay


class TunedRelayService(AsyncDLQService):
    """An ``AsyncDLQService`` whose in-process relay uses the given settings.

    Args:
        config: As for ``AsyncDLQService``.
        batch_size: ``Relay.batch_size`` (product default 100).
        concurrency: ``Relay.concurrency`` (product default 32).
    """

    def __init__(self, config: DLQConfig, *, batch_size: int, concurrency: int) -> None:
        super().__init__(config)
        self.relay_batch_size = batch_size
        self.relay_concurrency = concurrency

    def _get_relay(self) -> Relay:
        # The one place the service builds its relay: start_relay and drain_outbox
        # both get the tuned one.
        if self._relay is None:
            self._relay = Relay(self.outbox, self.deliver, batch_size=self.relay_batch_size,
                                concurrency=self.relay_concurrency, ready=self.get_client)
        return self._relay


def blocking_service(aio: AsyncDLQService) -> DLQService:
    """A ``DLQService`` (private loop thread) that runs its calls on ``aio``."""
    service = DLQService(aio.config)
    service.aio = aio  # the one it built opened nothing yet (everything is lazy)
    return service


async def stop_relay(service: AsyncDLQService, *, timeout: float = 30.0) -> int:
    """Cancel the service's relay task until it has really stopped; call before ``close()``.

    ``AsyncDLQService.close()`` cancels the relay once and awaits it. On Python
    3.11, ``Relay.run``'s ``asyncio.wait_for(self._wake.wait(), ...)`` returns
    normally when the wake-up and the cancel land in the same loop iteration
    (a ``wait_for`` race fixed in 3.12), so the relay keeps running and
    ``close()`` waits forever. Cancelling again until the task is done avoids it.

    Returns:
        How many cancels beyond the first were needed (0 when the race did not hit).

    Raises:
        TimeoutError: The relay was still running after ``timeout`` seconds.
    """
    task = service._relay_task
    extra = -1
    deadline = time.monotonic() + timeout
    while task is not None and not task.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"relay still running {timeout:g}s after the first cancel")
        task.cancel()
        extra += 1
        await asyncio.wait([task], timeout=0.5)
    return max(0, extra)


def stop_relay_blocking(service: DLQService, *, timeout: float = 30.0) -> int:
    """:func:`stop_relay` for a blocking ``DLQService``, run on its loop thread."""
    task = service.aio._relay_task
    if task is None or task.done():
        return 0
    return asyncio.run_coroutine_threadsafe(
        stop_relay(service.aio, timeout=timeout), task.get_loop()).result(timeout + 5)


class PlainSQLiteOutbox:
    """The baseline: one plain ``sqlite3`` INSERT per call into a table like the outbox's.

    Same ``CREATE TABLE`` (imported from ``dlq._outbox``, so it follows any
    change there), same pragmas (WAL, ``synchronous=NORMAL``), autocommit.

    Args:
        path: The SQLite file to create.
    """

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.conn.executescript(OUTBOX_SCHEMA)

    def insert(self, row: dict[str, Any]) -> str:
        """Give ``row`` a fresh id, serialise it and insert it; returns the id."""
        dlq_id = str(uuid.uuid4())
        row["dlq_id"] = dlq_id
        self.conn.execute("INSERT INTO outbox (dlq_id, payload, created_at) VALUES (?, ?, ?)",
                          (dlq_id, json.dumps(row), time.time()))
        return dlq_id

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


@dataclass(frozen=True)
class Quantiles:
    """Latency summary of one measured series."""

    n: int
    elapsed: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        """Calls per second of wall time."""
        return self.n / self.elapsed if self.elapsed > 0 else 0.0


def quantiles(latencies: list[float], elapsed: float) -> Quantiles:
    """p50, p99 and max (nearest rank) of ``latencies`` (seconds), in milliseconds."""
    ordered = sorted(latencies)
    if not ordered:
        nan = float("nan")
        return Quantiles(0, elapsed, nan, nan, nan)

    def rank(pct: float) -> float:
        index = max(0, min(len(ordered) - 1, int(-(-pct * len(ordered) // 100)) - 1))
        return ordered[index] * 1000

    return Quantiles(len(ordered), elapsed, rank(50), rank(99), ordered[-1] * 1000)


def loadavg() -> str:
    """The 1/5/15-minute load averages, formatted (``-`` where unsupported)."""
    try:
        return "/".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "-"
