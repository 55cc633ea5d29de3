"""The capture circuit breaker: during an outage, sync stores stop waiting for Temporal.

Once a store has found Temporal unreachable (no connection, or no answer
within ``store_timeout``), the breaker opens and later sync stores in the
process go straight to the outbox, without waiting: an outage then costs a
failing web request an outbox append (about a millisecond), not
``store_timeout`` seconds, and does not exhaust the caller's thread pool.
A background probe on the service's event loop checks Temporal's health
every ``probe_interval`` seconds and closes the breaker when it answers;
the relay delivers what the outbox gathered meanwhile.

:func:`workflow_exists_by` keeps a timed-out store within its bound: whether
the entry's workflow exists ("no worker" rather than "no Temporal", which
does not open the breaker) is asked before the timeout runs out.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlq._service import AsyncDLQService

__all__ = ["CircuitBreaker", "answer_within", "probe_until_reachable", "workflow_exists_by"]

log = logging.getLogger("dlq")


class CircuitBreaker:
    """Whether this process currently considers Temporal unreachable.

    Thread-safe: the blocking service reads it on callers' threads, the
    event loop trips and closes it.

    Args:
        probe_interval: Seconds between health probes while open.
    """

    def __init__(self, *, probe_interval: float = 1.0) -> None:
        self.probe_interval = probe_interval
        self._lock = threading.Lock()
        self._opened_at: float | None = None
        self.reason: str | None = None
        self.trips = 0
        self.short_circuited = 0

    @property
    def is_open(self) -> bool:
        """True while stores should skip Temporal."""
        return self._opened_at is not None

    def trip(self, reason: str) -> bool:
        """Open (or keep open) with ``reason``; True if this call opened it."""
        with self._lock:
            self.reason = reason
            if self._opened_at is not None:
                return False
            self._opened_at = time.monotonic()
            self.trips += 1
        log.warning("DLQ capture circuit open: %s; sync stores go to the outbox until "
                    "Temporal answers a probe", reason)
        return True

    def close(self) -> None:
        """Close: Temporal answered again."""
        with self._lock:
            if self._opened_at is None:
                return
            open_for = time.monotonic() - self._opened_at
            self._opened_at = None
            self.reason = None
        log.warning("DLQ capture circuit closed: Temporal answered after %.1fs", open_for)

    def short_circuit(self) -> str:
        """Count a store that skipped Temporal; the error text its result carries."""
        with self._lock:
            self.short_circuited += 1
            opened, reason = self._opened_at, self.reason
        since = 0.0 if opened is None else time.monotonic() - opened
        return (f"Temporal unreachable for {since:.1f}s (circuit open: {reason}); "
                "not tried")

    def snapshot(self) -> dict[str, Any]:
        """The breaker's state for ``get_capture_stats()``."""
        with self._lock:
            opened = self._opened_at
            return {"circuit_open": opened is not None,
                    "circuit_open_seconds": None if opened is None
                    else round(time.monotonic() - opened, 3),
                    "circuit_reason": self.reason, "circuit_trips": self.trips,
                    "circuit_short_circuited": self.short_circuited}


async def workflow_exists_by(service: AsyncDLQService, wid: str, bound: float) -> bool:
    """Whether workflow ``wid`` exists, asked at 70 % of ``bound`` (a sync store's timeout).

    A store that times out tells "no worker" (the workflow exists) from "no
    Temporal" with this answer, ready by then instead of one more round trip.
    """
    await asyncio.sleep(bound * 0.7)
    client = service._client
    if client is None:
        return False
    try:
        # wait_for, not only rpc_timeout: the SDK retries a refused
        # connection internally for longer than the timeout it is given.
        timeout = bound * 0.34
        await asyncio.wait_for(client.get_workflow_handle(wid).describe(
            rpc_timeout=timedelta(seconds=timeout)), timeout=timeout)
        return True
    except Exception:  # noqa: BLE001 - unknown means "not confirmed"
        return False


async def answer_within(task: asyncio.Future[bool], seconds: float) -> bool:
    """The task's answer if it comes within ``seconds``, else False (it is left running)."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return task in done and not task.cancelled() and task.result()


async def probe_until_reachable(service: AsyncDLQService) -> None:
    """Probe Temporal's health until it answers, then close the breaker (a task)."""
    breaker = service.breaker
    while breaker.is_open:
        await asyncio.sleep(breaker.probe_interval)
        try:
            client = await service.get_client()
            # wait_for as well as the RPC timeout: the SDK retries a refused
            # connection internally for longer than the timeout it is given.
            healthy = await asyncio.wait_for(client.service_client.check_health(
                timeout=timedelta(seconds=1)), timeout=1.5)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - still down: probe again
            log.debug("DLQ capture probe failed: %r", err)
            continue
        if not healthy:
            continue
        breaker.close()
        relay = service._relay
        if relay is not None:
            relay.wake_now()
