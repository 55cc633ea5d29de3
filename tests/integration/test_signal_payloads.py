"""Property: no signal payload of any JSON and any arity fails a workflow task of an entry.

Against the real dev server and worker (SQLite and PostgreSQL): after each
signal, the entry's history has a completed workflow task after the signal
and no failed one, and its ``get_state`` query answers. A signal that
closed the entry (a valid resolve) makes the next example use a new entry.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig, workflow_id_for
from dlq._connect import connect
from dlq._models import CLOSED_STATUSES, EntryState

pytestmark = pytest.mark.integration

SIGNALS = ("retry", "force_redrive", "resolve", "edit_data", "expire")
KEYS = ("actor", "actor_id", "reason", "notes", "status", "ticket_url", "dlq_id", "trigger",
        "request_data", "snapshot_data", "resolution_type")
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
SCALARS = (st.none() | st.booleans() | st.integers() | TEXT
           | st.floats(allow_nan=False, allow_infinity=False))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | TEXT, inner, max_size=4),
    max_leaves=12)
# Mostly objects with the commands' own keys (the interesting paths), some anything.
PAYLOAD = st.dictionaries(st.sampled_from(KEYS), SCALARS | TEXT, max_size=4) | JSON


class Entries:
    """The entry the examples signal, replaced by a new one once a signal closed it."""

    def __init__(self, service: AsyncDLQService, client: Client) -> None:
        self.service, self.client = service, client
        self.dlq_id: str | None = None

    async def current(self) -> str:
        if self.dlq_id is None:
            result = await self.service.store_failure(
                "t-fail", "PROPERTY", recommended_action="manual_check",
                error_message="signal property test")
            assert result.success and result.dlq_id
            self.dlq_id = result.dlq_id
        return self.dlq_id

    async def signal_and_check(self, name: str, args: list[Any]) -> None:
        dlq_id = await self.current()
        handle = self.client.get_workflow_handle(workflow_id_for(dlq_id))
        await handle.signal(name, args=args)
        deadline = time.monotonic() + 20
        while True:
            events = [e async for e in handle.fetch_history_events()]
            failed = [e.event_id for e in events
                      if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
            assert failed == [], f"{name}{args!r:.200}: workflow task failed at {failed}"
            signaled = max(e.event_id for e in events
                           if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
            if any(e.event_id > signaled
                   and e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
                   for e in events):
                break
            assert time.monotonic() < deadline, f"{name}{args!r:.200}: signal never handled"
            await asyncio.sleep(0.02)
        closed = events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
        if not closed:
            state = await asyncio.wait_for(handle.query("get_state", result_type=EntryState), 10)
            closed = state.status in CLOSED_STATUSES
        if closed:
            await handle.result()  # it ended normally
            self.dlq_id = None


def test_no_signal_payload_fails_a_workflow_task(config: DLQConfig) -> None:
    loop = asyncio.new_event_loop()
    try:
        client = loop.run_until_complete(connect(config))
        service = AsyncDLQService(config, client=client)
        entries = Entries(service, client)

        @settings(max_examples=40, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(name=st.sampled_from(SIGNALS), args=st.lists(PAYLOAD, max_size=3))
        def check(name: str, args: list[Any]) -> None:
            loop.run_until_complete(entries.signal_and_check(name, args))

        check()
        loop.run_until_complete(service.close())
    finally:
        loop.close()
