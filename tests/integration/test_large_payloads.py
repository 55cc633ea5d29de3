"""Data too large for Temporal: claim-checked through SQL, never truncated, capped."""

from __future__ import annotations

import hashlib
import json

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, workflow_id_for
from dlq._models import EntryState

pytestmark = pytest.mark.integration


def big_snapshot(mib: float) -> dict:
    blob = "x" * 1000
    return {f"k{i}": f"{i}-{blob}" for i in range(int(mib * 1024 * 1024 / 1010))}


def digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


async def test_five_mib_snapshot_round_trips_to_the_handler(service: AsyncDLQService,
                                                            client: Client) -> None:
    snapshot = big_snapshot(5)
    result = await service.store_failure("t-big", "HUGE", snapshot_data=snapshot,
                                         metadata={"sha256": digest(snapshot)},
                                         recommended_action="manual_check")
    assert result.success, result.error
    state = await client.get_workflow_handle(workflow_id_for(result.dlq_id)).query(
        "get_state", result_type=EntryState)
    assert state.payload_ref == result.dlq_id and state.snapshot_data == {}  # only a reference
    entry = await service.get_entry(result.dlq_id)
    assert digest(entry["snapshot_data"]) == digest(snapshot)  # full data in SQL
    out = await service.retry_entry(result.dlq_id)
    assert out["success"] is True, out  # the handler checked the digest


async def test_small_data_stays_inline(service: AsyncDLQService, client: Client) -> None:
    result = await service.store_failure("t-ok", "SMALL", snapshot_data={"a": 1})
    state = await client.get_workflow_handle(workflow_id_for(result.dlq_id)).query(
        "get_state", result_type=EntryState)
    assert state.payload_ref is None and state.snapshot_data == {"a": 1}


async def test_eleven_mib_is_rejected_before_anything_is_written(
        service: AsyncDLQService) -> None:
    before = (await service.get_capture_stats())["outbox_depth"]
    with pytest.raises(ValueError, match=r"entry data is 11\.\d MiB .*over the 10 MiB limit"):
        await service.store_failure("t-big", "HUGE11", snapshot_data=big_snapshot(11))
    with pytest.raises(ValueError, match="over the 10 MiB limit"):
        await service.store_failure("t-big", "HUGE11", snapshot_data=big_snapshot(11),
                                    mode="async")
    assert (await service.get_capture_stats())["outbox_depth"] == before
    stats = await service.list_entries({"domain": "t-big", "failure_type": "HUGE11"})
    assert stats["total_count"] == 0


async def test_huge_error_message_is_rejected_not_truncated(service: AsyncDLQService) -> None:
    with pytest.raises(ValueError, match="error_message is .* bytes"):
        await service.store_failure("payment", "X", error_message="e" * 300_000)
