"""Helpers of bench/store.py: phase results, closing a service, counting rows."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from dlq import AsyncDLQService
from dlq._db import create_db_engine

__all__ = ["CLOSE_TIMEOUT", "PhaseResult", "close_service", "count_leaked_cancellations",
           "loadavg", "merge", "settled_row_count"]

# Seconds AsyncDLQService.close() may take before the benchmark cuts it short.
CLOSE_TIMEOUT = 10.0


@dataclass
class PhaseResult:
    """The measured part of one phase (warm-up excluded)."""

    name: str
    ok: int
    elapsed: float
    latencies: list[float]
    errors: list[str] = field(default_factory=list)
    cores: dict[str, float | None] = field(default_factory=dict)
    warmup_ok: int = 0

    @property
    def rate(self) -> float:
        """Successful operations per second of wall time."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, pct: int) -> float:
        """Latency percentile of the successful operations, in milliseconds."""
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0] * 1000
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[pct - 1] * 1000


def merge(parts: list[PhaseResult]) -> PhaseResult:
    """One phase from its rounds: summed counts and time, time-weighted CPU."""
    elapsed = sum(p.elapsed for p in parts)
    cores: dict[str, float | None] = {}
    for proc in parts[0].cores:
        weighted = [(p.cores[proc], p.elapsed) for p in parts]
        cores[proc] = (None if any(v is None for v, _ in weighted)
                       else sum((v or 0.0) * t for v, t in weighted) / elapsed)
    return PhaseResult(name=parts[0].name, ok=sum(p.ok for p in parts), elapsed=elapsed,
                       latencies=[x for p in parts for x in p.latencies],
                       errors=[e for p in parts for e in p.errors], cores=cores,
                       warmup_ok=sum(p.warmup_ok for p in parts))


def loadavg() -> str:
    """The 1/5/15-minute load averages, for the record of how busy the machine was."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "-"


async def close_service(service: AsyncDLQService) -> None:
    """``service.close()``, bounded by ``CLOSE_TIMEOUT``.

    After stores fell back to the outbox, ``close()`` was seen waiting
    forever for its relay task, which had not ended on ``cancel()``. Our own
    cancellation from ``wait_for`` gets it out; say so when that was needed.
    """
    start = time.perf_counter()
    try:
        await asyncio.wait_for(service.close(), timeout=CLOSE_TIMEOUT)
    except TimeoutError:
        pass
    if time.perf_counter() - start >= CLOSE_TIMEOUT:
        print(f"AsyncDLQService.close() did not return within {CLOSE_TIMEOUT:g}s "
              "(its outbox relay did not stop); cut short", file=sys.stderr)


async def settled_row_count(database_url: str, attempted: int, *,
                            timeout: float = 15.0) -> int:
    """Rows in ``dlq_entries`` once all ``attempted`` are there or the count stops growing.

    A store that timed out may still have started its workflow, whose row
    then lands later; waiting a little shows whether that happened.
    """
    engine = create_db_engine(database_url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    previous = -1
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT COUNT(*) FROM dlq_entries")).scalar_one()
            if rows >= attempted or rows == previous or loop.time() > deadline:
                return rows
            previous = rows
            await asyncio.sleep(1.0)
    finally:
        engine.dispose()



def count_leaked_cancellations(loop: asyncio.AbstractEventLoop) -> list[int]:
    """Count, instead of printing, futures abandoned with a CancelledError.

    When ``store_timeout`` cancels ``execute_update_with_start_workflow``, the
    SDK leaves an inner future holding the CancelledError, and asyncio prints
    a full traceback per store when it is garbage-collected. Everything else
    goes to the default handler.

    Returns:
        A one-item list holding the count so far.
    """
    count = [0]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        if (isinstance(context.get("exception"), asyncio.CancelledError)
                and "never retrieved" in str(context.get("message", ""))):
            count[0] += 1
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return count
