"""Replay handler of the bulk kill test (imported only by the worker subprocess).

``t-bulk-kill`` always succeeds after a short sleep (``DLQ_TEST_HANDLER_SLEEP``
seconds, 0.05 by default), so a bulk redrive takes a while. Every call appends
``<entry id> <pid>`` to the file named by ``DLQ_TEST_CALL_LOG`` (when set)
first, with one ``write`` on an ``O_APPEND`` descriptor and an ``fsync``: the
line survives a SIGKILL of the worker, so the test counts every call that
really started, across worker processes.

While the file named by ``DLQ_TEST_HOLD_FILE`` exists, calls wait after
logging: the test creates it just before a kill, so the worker provably dies
with replays in flight (not only when the timing happens to line up).
"""

from __future__ import annotations

import asyncio
import os

import dlq
from tests.support.call_log import append_call

DOMAIN = "t-bulk-kill"


def _log_call(entry: dlq.FailedOperationData) -> None:
    append_call("DLQ_TEST_CALL_LOG", f"{entry.id} {os.getpid()}", durable=True)


@dlq.replay_handler(DOMAIN)
async def replay_and_record(entry: dlq.FailedOperationData) -> None:
    """Record the call durably, wait while held, take a little while, succeed."""
    await asyncio.to_thread(_log_call, entry)
    hold = os.environ.get("DLQ_TEST_HOLD_FILE")
    while hold and os.path.exists(hold):
        await asyncio.sleep(0.02)
    await asyncio.sleep(float(os.environ.get("DLQ_TEST_HANDLER_SLEEP", "0.05")))
