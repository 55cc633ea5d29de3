"""Helpers of bench/store.py: closing a service, counting rows, quiet cancellations."""

from __future__ import annotations

import asyncio
import sys
import time

import sqlalchemy as sa

from dlq import AsyncDLQService
from dlq._db import create_db_engine

__all__ = ["CLOSE_TIMEOUT", "close_service", "count_leaked_cancellations",
           "settled_row_count"]

# Seconds AsyncDLQService.close() may take before the benchmark cuts it short.
CLOSE_TIMEOUT = 10.0


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
