"""Replay handlers of the fault tests (run inside the worker subprocess).

``f-parity`` is deterministic by ``snapshot_data``: entity ``n`` fails when
``n`` is odd and succeeds when it is even, after sleeping
``snapshot_data["sleep_ms"]`` (50-200 ms) so a killed worker dies mid-replay.
Each call appends the entry id to the file named by ``FAULT_HANDLER_LOG``
(when set), so a test can count how often a handler really ran.
"""

from __future__ import annotations

import asyncio

import dlq
from tests.support.call_log import append_call


def _log_call(entry: dlq.FailedOperationData) -> None:
    append_call("FAULT_HANDLER_LOG", entry.id)


@dlq.replay_handler("f-parity")
async def parity(entry: dlq.FailedOperationData) -> None:
    """Fails for odd ``snapshot_data["n"]``, succeeds for even, after a short sleep."""
    _log_call(entry)
    n = int(entry.snapshot_data["n"])
    await asyncio.sleep(int(entry.snapshot_data.get("sleep_ms", 50)) / 1000)
    if n % 2:
        raise RuntimeError(f"odd entity {n} refused")
