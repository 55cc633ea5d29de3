"""Replay handler of the graceful-shutdown test (runs inside the worker subprocess).

``s-slow`` appends ``start <id>`` to the file named by ``SHUTDOWN_HANDLER_LOG``,
sleeps ``snapshot_data["sleep"]`` seconds, then appends ``end <id>``, so the
test sees a replay in flight and whether it ran to its end, and how often.
"""

from __future__ import annotations

import asyncio

import dlq
from tests.support.call_log import append_call


@dlq.replay_handler("s-slow")
async def slow(entry: dlq.FailedOperationData) -> None:
    """Succeeds after ``snapshot_data["sleep"]`` seconds."""
    append_call("SHUTDOWN_HANDLER_LOG", f"start {entry.id}", durable=True)
    await asyncio.sleep(float(entry.snapshot_data["sleep"]))
    append_call("SHUTDOWN_HANDLER_LOG", f"end {entry.id}", durable=True)
