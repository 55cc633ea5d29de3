"""End to end on a real dev server and a real worker, against SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from dlq import (
    ENTRY_WORKFLOW,
    AsyncDLQService,
    DLQConfig,
    DLQEntryNotFoundError,
    DLQReplayError,
    DLQStateConflictError,
    FailedOperationData,
    workflow_id_for,
)
from dlq._messages import EntryResult
from dlq._models import EntryState
from tests.support.handlers import calls
from tests.support.helpers import eventually, store, visible_runs, wait_status, with_config

pytestmark = pytest.mark.integration


async def test_sync_store_returns_id_and_row_is_readable(service: AsyncDLQService,
                                                         client: Client) -> None:
    result = await service.store_failure(
        "payment", "PG_TIMEOUT", entity_type="order", entity_id="ord-1", user_id=7,
        error_code="504", error_message="gateway timeout", snapshot_data={"amount": 1200},
        request_data={"card": "tok_1"}, response_data={"status": 504},
        metadata={"region": "eu"}, next_action_hint="check the PG dashboard",
        recommended_action="manual_check", mode="sync",
    )
    assert result.success and result.error is None and result.fallback_path is None
    entry = await service.get_entry(result.dlq_id)  # read-your-writes: no polling
    assert entry is not None
    assert entry["id"] == result.dlq_id and entry["workflow_id"] == workflow_id_for(result.dlq_id)
    assert (entry["status"], entry["retry_count"], entry["max_retries"]) == ("pending", 0, 2)
    assert (entry["domain"], entry["failure_type"], entry["entity_id"]) == ("payment",
                                                                           "PG_TIMEOUT", "ord-1")
    assert entry["snapshot_data"] == {"amount": 1200} and entry["metadata"] == {"region": "eu"}
    assert entry["created_at"] and entry["expires_at"] and entry["last_error"] is None
    assert [e["action"] for e in entry["audit_events"]] == ["created"]
    assert entry["attempts"] == []
    data = await service.get_entry_by_id(result.dlq_id)
    assert isinstance(data, FailedOperationData) and data.user_id == 7
    assert data.response_data == {"status": 504} and data.can_retry

    desc = await client.get_workflow_handle(workflow_id_for(result.dlq_id)).describe()
    attrs = desc.typed_search_attributes
    assert attrs.get(SearchAttributeKey.for_keyword("DlqStatus")) == "pending"
    assert attrs.get(SearchAttributeKey.for_keyword("DlqDomain")) == "payment"
    assert attrs.get(SearchAttributeKey.for_keyword("DlqFailureType")) == "PG_TIMEOUT"
    assert attrs.get(SearchAttributeKey.for_int("DlqRetryCount")) == 0
    assert await desc.static_summary() == "payment/PG_TIMEOUT order:ord-1"


async def test_retry_success_resolves_and_completes_workflow(service: AsyncDLQService,
                                                             client: Client) -> None:
    dlq_id = await store(service, "t-ok")
    out = await service.retry_entry(dlq_id)
    assert out == {"success": True, "id": dlq_id, "retry_count": 1, "previous_retry_count": 0,
                   "status": "resolved", "message": "replay succeeded"}
    entry = await service.get_entry(dlq_id)
    assert entry["status"] == "resolved" and entry["resolution_type"] == "replay"
    assert [a["outcome"] for a in entry["attempts"]] == ["success"]
    assert entry["attempts"][0]["trigger"] == "manual"
    handle = client.get_workflow_handle(workflow_id_for(dlq_id), result_type=EntryResult)
    assert (await handle.result()).status == "resolved"
    with pytest.raises(DLQStateConflictError, match="resolved"):
        await service.retry_entry(dlq_id)


async def test_async_handler_is_awaited(service: AsyncDLQService) -> None:
    dlq_id = await store(service, "t-async-ok")
    assert (await service.retry_entry(dlq_id))["success"] is True
    assert calls[dlq_id] == 1


async def test_cap_gate_failures_then_requires_review_then_conflict(
        service: AsyncDLQService) -> None:
    dlq_id = await store(service, "t-fail")
    first = await service.retry_entry(dlq_id)
    assert (first["success"], first["status"], first["retry_count"]) == (False, "pending", 1)
    second = await service.retry_entry(dlq_id)
    assert (second["success"], second["status"], second["retry_count"]) == (
        False, "requires_review", 2)
    with pytest.raises(DLQStateConflictError, match="exhausted"):
        await service.retry_entry(dlq_id)
    entry = await service.get_entry(dlq_id)
    assert entry["status"] == "requires_review" and entry["retry_count"] == 2
    assert entry["last_error"] == "RuntimeError: downstream refused (call 2)"
    assert [a["outcome"] for a in entry["attempts"]] == ["failure", "failure"]
    assert calls[dlq_id] == 2  # the rejected third retry never reached the handler


async def test_force_redrive_is_validated_audited_and_grants_fresh_budget(
        service: AsyncDLQService) -> None:
    dlq_id = await store(service, "t-flaky", snapshot_data={"succeed_on": 3})
    await service.retry_entry(dlq_id)
    await service.retry_entry(dlq_id)
    assert (await service.get_entry(dlq_id))["status"] == "requires_review"
    with pytest.raises(ValueError, match="actor_id"):
        await service.force_redrive_entry(dlq_id, reason="fixed")
    with pytest.raises(ValueError, match="reason"):
        await service.force_redrive_entry(dlq_id, actor_id="alice", reason="  ")
    out = await service.force_redrive_entry(dlq_id, actor_id="alice", reason="PG fixed",
                                            ticket_url="https://tickets/INC-7")
    assert out["success"] is True and out["status"] == "resolved"
    assert (out["retry_count"], out["previous_retry_count"]) == (1, 2)
    entry = await service.get_entry(dlq_id)
    forced = [e for e in entry["audit_events"] if e["action"] == "force_redrive"]
    assert len(forced) == 1
    assert (forced[0]["actor"], forced[0]["reason"], forced[0]["ticket_url"]) == (
        "alice", "PG fixed", "https://tickets/INC-7")
    assert [a["trigger"] for a in entry["attempts"]] == ["manual", "manual", "force"]
    with pytest.raises(DLQStateConflictError):
        await service.force_redrive_entry(dlq_id, actor_id="alice", reason="again")


async def test_resolve_and_discard(service: AsyncDLQService) -> None:
    a = await store(service, "payment")
    out = await service.resolve_entry(a, notes="refunded by hand")
    assert (out["success"], out["previous_status"], out["current_status"]) == (
        True, "pending", "resolved")
    assert out["notes"] == "refunded by hand" and out["resolved_at"]
    with pytest.raises(DLQStateConflictError, match="resolved"):
        await service.resolve_entry(a)
    with pytest.raises(DLQStateConflictError):
        await service.retry_entry(a)
    b = await store(service, "payment")
    with pytest.raises(ValueError, match="status must be one of"):
        await service.resolve_entry(b, status="expired")
    out = await service.resolve_entry(b, notes="duplicate", resolution_type="duplicate",
                                      status="discarded")
    assert out["current_status"] == "discarded"
    entry = await service.get_entry(b)
    assert (entry["status"], entry["resolution_type"], entry["resolution_notes"]) == (
        "discarded", "duplicate", "duplicate")
    assert entry["audit_events"][-1]["action"] == "discard"


async def test_resolve_batch_reports_each_entry(service: AsyncDLQService) -> None:
    ids = [await store(service, "payment") for _ in range(3)]
    await service.resolve_entry(ids[2])
    out = await service.resolve_entries_batch([ids[0], "no-such-id", ids[1], ids[2]],
                                              notes="bulk", chunk_size=2)
    assert (out["total"], out["resolved"], out["failed"], out["chunks"]) == (4, 2, 2, 2)
    by_id = {r["id"]: r for r in out["results"]}
    assert by_id[ids[0]]["success"] and by_id[ids[1]]["success"]
    assert by_id["no-such-id"]["error_type"] == "DLQEntryNotFoundError"
    assert by_id[ids[2]]["error_type"] == "DLQStateConflictError"
    assert (await service.get_entry(ids[1]))["status"] == "resolved"


async def test_unknown_id(service: AsyncDLQService) -> None:
    for call in (service.retry_entry("nope"), service.resolve_entry("nope"),
                 service.force_redrive_entry("nope", actor_id="a", reason="r")):
        with pytest.raises(DLQEntryNotFoundError, match="nope"):
            await call
    assert await service.get_entry("nope") is None
    assert await service.get_entry_by_id("nope") is None


async def test_missing_handler_manual_retry_consumes_no_budget(service: AsyncDLQService) -> None:
    dlq_id = await store(service, "t-typed", failure_type="OTHER_TYPE")
    with pytest.raises(DLQReplayError, match="no replay handler registered for .*t-typed"):
        await service.retry_entry(dlq_id)
    entry = await service.get_entry(dlq_id)
    assert (entry["status"], entry["retry_count"]) == ("pending", 0)
    assert "no replay handler" in entry["last_error"]
    typed = await store(service, "t-typed", failure_type="ONLY_THIS")
    assert (await service.retry_entry(typed))["success"] is True


async def test_handler_timeout_is_a_failed_attempt(service: AsyncDLQService) -> None:
    dlq_id = await store(service, "t-slow", snapshot_data={"sleep": 10})
    out = await service.retry_entry(dlq_id)  # replay_timeout is 2 s in tests
    assert (out["success"], out["status"]) == (False, "pending")
    entry = await service.get_entry(dlq_id)
    assert entry["attempts"][0]["outcome"] == "timeout"
    assert "timed out" in entry["last_error"]


async def test_automatic_replay_succeeds(service: AsyncDLQService) -> None:
    dlq_id = await store(service, "t-flaky", action="replay", snapshot_data={"succeed_on": 2})
    entry = await wait_status(service, dlq_id, "resolved")
    assert [a["trigger"] for a in entry["attempts"]] == ["auto", "auto"]
    assert [a["outcome"] for a in entry["attempts"]] == ["failure", "success"]


async def test_automatic_replay_poison_pill_ends_in_requires_review(
        service: AsyncDLQService) -> None:
    dlq_id = await store(service, "t-fail", action="replay")
    entry = await wait_status(service, dlq_id, "requires_review")
    assert entry["retry_count"] == 2 and len(entry["attempts"]) == 2
    assert calls[dlq_id] == 2


async def test_automatic_replay_without_handler_parks_in_review(service: AsyncDLQService) -> None:
    dlq_id = await store(service, "no-handler-domain", action="replay")
    entry = await wait_status(service, dlq_id, "requires_review")
    assert entry["retry_count"] == 0
    assert "no replay handler registered for ('no-handler-domain'" in entry["last_error"]


async def test_auto_replay_disabled_leaves_entry_pending(config: DLQConfig,
                                                         client: Client) -> None:
    svc = AsyncDLQService(with_config(config, auto_replay=False), client=client)
    dlq_id = await store(svc, "t-ok", action="replay")
    state = await client.get_workflow_handle(workflow_id_for(dlq_id)).query(
        "get_state", result_type=EntryState)
    assert state.next_auto_attempt_at is None and state.status == "pending"


async def test_expiry_closes_entry_and_rejects_commands(config: DLQConfig,
                                                        client: Client) -> None:
    svc = AsyncDLQService(with_config(config, expiry_hours=1 / 3600), client=client)
    dlq_id = await store(svc, "payment")
    entry = await wait_status(svc, dlq_id, "expired")
    assert entry["closed_at"] and entry["audit_events"][-1]["action"] == "expire"
    with pytest.raises(DLQStateConflictError, match="expired"):
        await svc.retry_entry(dlq_id)
    with pytest.raises(DLQStateConflictError, match="expired"):
        await svc.resolve_entry(dlq_id)
    desc = await client.get_workflow_handle(workflow_id_for(dlq_id)).describe()
    assert desc.status == WorkflowExecutionStatus.COMPLETED


async def test_closed_entry_is_never_recreated(service: AsyncDLQService, client: Client) -> None:
    from dlq._entry import new_entry_input

    entry = new_entry_input("payment", "PG_TIMEOUT", config=service.config)
    assert (await service.store_entry(entry)).success
    await service.resolve_entry(entry.dlq_id)
    handle = client.get_workflow_handle(workflow_id_for(entry.dlq_id))
    await handle.result()
    first_run = (await handle.describe()).run_id
    again = await service.store_entry(entry)  # a client retry after the entry closed
    assert again.success and again.dlq_id == entry.dlq_id
    with pytest.raises(WorkflowAlreadyStartedError):
        await client.start_workflow(ENTRY_WORKFLOW, entry, id=workflow_id_for(entry.dlq_id),
                                    task_queue=service.config.task_queue,
                                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    # describe() is consistent at once: the latest run is still the first one.
    assert (await handle.describe()).run_id == first_run
    assert await visible_runs(client, handle.id) == 1
    assert (await service.get_entry(entry.dlq_id))["status"] == "resolved"


async def test_store_twice_same_id_is_one_entry(service: AsyncDLQService, client: Client) -> None:
    from dlq._entry import new_entry_input

    entry = new_entry_input("payment", "PG_TIMEOUT", config=service.config)
    first, second = await service.store_entry(entry), await service.store_entry(entry)
    assert first.success and second.success
    assert await visible_runs(client, workflow_id_for(entry.dlq_id)) == 1
    assert len((await service.get_entry(entry.dlq_id))["audit_events"]) == 1


async def test_get_state_query_returns_full_state(service: AsyncDLQService,
                                                  client: Client) -> None:
    dlq_id = await store(service, "t-fail")
    await service.retry_entry(dlq_id)
    state = await client.get_workflow_handle(workflow_id_for(dlq_id)).query(
        "get_state", result_type=EntryState)
    assert (state.id, state.status, state.retry_count, state.version) == (dlq_id, "pending", 1, 3)
    assert [e.action for e in state.audit] == ["created", "replay_started", "replay_failed"]
    assert state.attempts[0].outcome == "failure" and state.occurrences == 1


async def test_signals_share_the_command_path(service: AsyncDLQService, client: Client) -> None:
    dlq_id = await store(service, "t-ok")
    handle = client.get_workflow_handle(workflow_id_for(dlq_id))
    await handle.signal("resolve", {"notes": "closed from a signal", "status": "discarded"})
    entry = await wait_status(service, dlq_id, "discarded")
    assert entry["resolution_notes"] == "closed from a signal"


async def test_illegal_signal_is_ignored_with_warning(service: AsyncDLQService, client: Client,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    dlq_id = await store(service, "t-fail")
    await service.retry_entry(dlq_id)
    await service.retry_entry(dlq_id)  # now requires_review, at the cap
    handle = client.get_workflow_handle(workflow_id_for(dlq_id))
    before = await handle.query("get_state", result_type=EntryState)
    with caplog.at_level(logging.WARNING):
        await handle.signal("retry")  # illegal: at the cap
        await handle.signal("force_redrive", {"actor_id": "bob"})  # illegal: no reason
        await handle.signal("resolve", {"status": ["not", "a", "string"]})  # invalid input
        await eventually(lambda: _messages(caplog), lambda m: len(m) >= 3, timeout=10)
    messages = _messages_now(caplog)
    assert any("ignored retry signal" in m and "exhausted" in m for m in messages)
    assert any("ignored force_redrive signal" in m and "reason" in m for m in messages)
    assert any("ignored resolve signal: invalid input" in m for m in messages)
    after = await handle.query("get_state", result_type=EntryState)
    # Nothing moved but the audit trail: each ignored signal is recorded there.
    assert after.status == "requires_review" and after.retry_count == before.retry_count
    rejected = [e for e in after.audit if e.action == "signal_rejected"]
    assert [(e.details["signal"], e.actor) for e in rejected] == [
        ("retry", None), ("force_redrive", "bob"), ("resolve", None)]
    assert "exhausted" in rejected[0].reason and "reason" in rejected[1].reason
    assert after.version == before.version + 3
    assert calls[dlq_id] == 2


def _messages_now(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]


async def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return _messages_now(caplog)


async def test_worker_registered_search_attributes_and_ui_filter(service: AsyncDLQService,
                                                                 client: Client) -> None:
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default"))
    assert {"DlqStatus", "DlqDomain", "DlqFailureType", "DlqRetryCount"} <= set(
        listed.custom_attributes)
    dlq_id = await store(service, "t-fail", failure_type="UI_FILTER")
    await service.retry_entry(dlq_id)
    await service.retry_entry(dlq_id)
    query = ('DlqStatus="requires_review" AND DlqDomain="t-fail" AND '
             f'WorkflowId="{workflow_id_for(dlq_id)}"')

    async def found() -> int:
        return (await client.count_workflows(query)).count

    assert await eventually(found, lambda n: n == 1, timeout=10) == 1
    desc = await client.get_workflow_handle(workflow_id_for(dlq_id)).describe()
    assert desc.typed_search_attributes.get(SearchAttributeKey.for_int("DlqRetryCount")) == 2
