"""What the Web UI reads from and sends to an entry workflow, on the time-skipping server.

The card (current details, served by the SDK's ``__temporal_workflow_metadata``
query that the UI calls), the ``audit`` and ``audit_text`` queries, the
result of a closed entry, and the signals with the inputs the UI's "Send a
Signal" dialog sends: no payload at all when Data is left empty, otherwise
one ``json/plain`` value.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import tests.support.handlers  # noqa: F401 - registers the t-* replay handlers
from dlq import DLQConfig
from dlq._db import create_db_engine, migrate
from dlq._entry import new_entry_input
from dlq._messages import AuditRecord, EntryResult
from dlq._procs import BIN
from dlq._temporal import ENTRY_WORKFLOW, ensure_search_attributes, workflow_id_for
from dlq._worker import build_worker
from tests.support.helpers import eventually


@pytest.fixture(scope="module")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await ensure_search_attributes(env.client, "default")
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
async def queue(ts_env: WorkflowEnvironment,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('ui')}/ui.db")
    migrate(engine)
    name = f"ui-{uuid.uuid4().hex[:8]}"
    async with build_worker(ts_env.client, task_queue=name, engine=engine):
        yield name


async def start(env: WorkflowEnvironment, queue: str, domain: str,
                **config: object) -> WorkflowHandle:
    entry = new_entry_input(domain, "PG_TIMEOUT", recommended_action="manual_check",
                            entity_type="order", entity_id="ord-1",
                            config=DLQConfig(**config)).model_copy(update={"created_at": None})
    return await env.client.start_workflow(
        ENTRY_WORKFLOW, entry, id=workflow_id_for(entry.dlq_id), task_queue=queue,
        result_type=EntryResult)


async def card(handle: WorkflowHandle) -> str:
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return meta.current_details


async def audit(handle: WorkflowHandle) -> list[AuditRecord]:
    return await handle.query("audit", result_type=list[AuditRecord])


async def test_the_card_is_what_the_ui_metadata_query_returns(ts_env: WorkflowEnvironment,
                                                                queue: str) -> None:
    handle = await start(ts_env, queue, "t-ok")
    details = await card(handle)
    assert details.startswith("### pending · retries 0 of 2 used")
    assert '- `retry` `{"actor": "you@example.com"}`' in details
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    described = {d.name: d.description for d in meta.definition.signal_definitions}
    assert described["resolve"].startswith("Close as resolved, or discarded. Input: {")
    await handle.signal("resolve")  # leave the entry closed for the next tests' sake


async def test_retry_signal_with_no_payload_replays(ts_env: WorkflowEnvironment,
                                                    queue: str) -> None:
    handle = await start(ts_env, queue, "t-ok")
    await handle.signal("retry")  # the UI's dialog with Data left empty sends no payload
    result = await handle.result()
    assert (result.status, result.retry_count) == ("resolved", 1)
    assert result.summary == "resolved: replay succeeded after 1 replay attempt"


async def test_force_redrive_and_discard_signals_with_ui_json(ts_env: WorkflowEnvironment,
                                                               queue: str) -> None:
    handle = await start(ts_env, queue, "t-fail", max_replay_attempts=1)
    await handle.signal("retry", {"actor": "carol"})

    await eventually(lambda: card(handle), lambda c: c.startswith("### requires_review"))

    await handle.signal("force_redrive", {"actor": "alice", "reason": "PG fixed",
                                          "ticket_url": "https://t.example/INC-7"})

    await eventually(lambda: audit(handle),
                     lambda trail: [r.action for r in trail][-2:] == ["force_redrive",
                                                                      "replay_failed"])
    forced = next(r for r in await audit(handle) if r.action == "force_redrive")
    assert (forced.actor, forced.reason, forced.ticket_url) == (
        "alice", "PG fixed", "https://t.example/INC-7")
    details = await card(handle)
    assert "| force\\_redrive → replaying | alice | PG fixed |" in details  # the ticket follows
    assert "[t\\.example/INC\\-7](<https://t.example/INC-7>)" in details
    text = await handle.query("audit_text", result_type=str)
    assert "force_redrive · requires_review → replaying · by alice" in text

    await handle.signal("resolve", {"actor": "bob", "notes": "duplicate",
                                    "status": "discarded"})
    result = await handle.result()
    assert result.status == "discarded"
    assert result.summary == "discarded by bob (manual): duplicate"
    assert result.last_error and result.last_error.startswith("RuntimeError: downstream refused")


async def test_resolve_signal_with_a_bare_string_is_its_notes(ts_env: WorkflowEnvironment,
                                                              queue: str) -> None:
    handle = await start(ts_env, queue, "t-fail")
    await handle.signal("resolve", "refunded by hand")
    result = await handle.result()
    assert (result.status, result.resolution_notes) == ("resolved", "refunded by hand")
    assert result.summary == "resolved (manual): refunded by hand"
