"""Dedup keys: repeats of one failure become occurrences of one open entry."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, DLQStateConflictError
from dlq._models import EntryState
from dlq._temporal import dedup_workflow_id
from tests.support.helpers import CAN_EVENTS, visible_runs

pytestmark = pytest.mark.integration


async def test_concurrent_stores_with_one_key_make_one_entry(service: AsyncDLQService,
                                                             client: Client) -> None:
    key = f"order-{id(service)}-{asyncio.get_running_loop().time()}"
    results = await asyncio.gather(*(service.store_failure(
        "payment", "PG_TIMEOUT", entity_id="o-1", recommended_action="manual_check",
        dedup_key=key) for _ in range(50)))
    assert all(r.success for r in results)
    assert len({r.dlq_id for r in results}) == 1
    entry = await service.get_entry(results[0].dlq_id)
    assert entry["occurrences"] == 50 and entry["dedup_key"] == key
    assert entry["last_seen_at"] >= entry["created_at"]
    assert [e["action"] for e in entry["audit_events"]] == ["created"]  # no audit storm
    state = await client.get_workflow_handle(dedup_workflow_id("payment", "PG_TIMEOUT", key)
                                             ).query("get_state", result_type=EntryState)
    assert state.occurrences == 50 and state.id == results[0].dlq_id


async def test_a_closed_entry_frees_its_key_and_commands_target_the_right_entry(
        service: AsyncDLQService) -> None:
    key = f"wh-{asyncio.get_running_loop().time()}"
    first = await service.store_failure("webhook", "HTTP_503", dedup_key=key)
    again = await service.store_failure("webhook", "HTTP_503", dedup_key=key)
    assert first.dlq_id == again.dlq_id
    other_type = await service.store_failure("webhook", "HTTP_410", dedup_key=key)
    assert other_type.dlq_id != first.dlq_id  # the key is scoped by domain and failure type
    await service.resolve_entry(first.dlq_id, notes="receiver fixed")
    second = await service.store_failure("webhook", "HTTP_503", dedup_key=key)
    assert second.success and second.dlq_id != first.dlq_id
    assert (await service.get_entry(second.dlq_id))["occurrences"] == 1
    # The old entry shares the workflow id with the new one but is closed.
    with pytest.raises(DLQStateConflictError, match="closed|resolved"):
        await service.retry_entry(first.dlq_id)
    out = await service.resolve_entry(second.dlq_id, status="discarded")
    assert out["id"] == second.dlq_id and out["current_status"] == "discarded"
    assert (await service.get_entry(first.dlq_id))["status"] == "resolved"


async def test_hot_failure_continues_as_new_and_keeps_counting(service: AsyncDLQService,
                                                               client: Client) -> None:
    key = f"hot-{asyncio.get_running_loop().time()}"
    total = 0
    for _ in range(8):  # 400 occurrences: several times the test server's CaN threshold
        results = await asyncio.gather(*(service.store_failure(
            "inventory", "STOCK_DECREMENT", dedup_key=key) for _ in range(50)))
        assert all(r.success for r in results), [r.error for r in results if not r.success]
        total += 50
    dlq_id = results[0].dlq_id
    assert (await service.get_entry(dlq_id))["occurrences"] == total
    wid = dedup_workflow_id("inventory", "STOCK_DECREMENT", key)
    runs = await visible_runs(client, wid, at_least=2)
    assert runs > 1, f"expected continue-as-new past {CAN_EVENTS} events"
    handle = client.get_workflow_handle(wid)
    state = await handle.query("get_state", result_type=EntryState)
    assert (state.id, state.occurrences, state.status) == (dlq_id, total, "pending")
    out = await service.resolve_entry(dlq_id)  # commands reach the latest run
    assert out["current_status"] == "resolved"
