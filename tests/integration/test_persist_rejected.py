"""A persist that SQL refuses for good makes the entry visible as unprojected, once.

The boundary check keeps such values out of a store; here the entry is
delivered the way the relay delivers (``deliver``: start the workflow),
bypassing it, with values each engine refuses: an int beyond 64 bits (both)
and a NUL character (PostgreSQL). The workflow records the rejection in its
state, card and audit trail, does not retry it, has no failing workflow
task, and still takes commands.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from dlq import AsyncDLQService, DLQConfig
from dlq._entry import new_entry_input
from dlq._messages import AuditRecord, ResolveInput, ResolveResult
from dlq._models import EntryState
from dlq._temporal import workflow_id_for
from dlq.workflows.entry import DLQEntryWorkflow
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration


def _refused(backend: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = [{"user_id": 2**70}]
    if backend == "postgresql":
        cases.append({"error_message": "gateway said \x00 then nothing"})
    return cases


async def test_a_row_sql_refuses_is_recorded_as_unprojected_not_retried_forever(
        backend: str, config: DLQConfig, service: AsyncDLQService, client: Client) -> None:
    for update in _refused(backend):
        entry = new_entry_input("unprojected", "SQL_REFUSES", config=config).model_copy(
            update=update)
        await service.deliver(entry)
        handle = client.get_workflow_handle(workflow_id_for(entry.dlq_id))
        state = await eventually(
            lambda h=handle: h.query("get_state", result_type=EntryState),
            lambda s: s.unprojected is not None, timeout=30)
        assert state.unprojected.startswith("v1: SQL refused the row of entry"), state.unprojected
        audit = await handle.query("audit", result_type=list[AuditRecord])
        assert [a.action for a in audit].count("persist_rejected") == 1
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert "**Not in SQL**" in meta.current_details  # the Web UI card says so
        assert await service.get_entry(entry.dlq_id) is None

        description = await handle.describe()
        assert not description.raw_description.pending_activities  # nothing retrying
        # Still operable: a command is applied (and its own write refused, recorded again).
        resolved = await handle.execute_update(
            "resolve", ResolveInput(actor="ops", notes="bad data"), result_type=ResolveResult)
        assert resolved.current_status == "resolved"
        await handle.result()
        failed_tasks = [e async for e in handle.fetch_history_events()
                        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
        assert failed_tasks == []
        # The new path (guarded by a patch) replays deterministically.
        await Replayer(workflows=[DLQEntryWorkflow], data_converter=pydantic_data_converter
                       ).replay_workflow(await handle.fetch_history())
