"""Histories made by this very code replay without a determinism error.

The test drives its own mix of transitions on the session's dev server and
replays the histories of the workflows it started (whatever ran before it).
Histories recorded by earlier releases are replayed by
``test_replay_histories.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from dlq import AsyncDLQService, DLQConfig, workflow_id_for
from dlq.workflows.bulk import BulkReplayWorkflow
from dlq.workflows.entry import DLQEntryWorkflow
from dlq.workflows.maintenance import DLQMaintenanceWorkflow
from tests.support.helpers import store, wait_status, with_config

pytestmark = pytest.mark.integration


async def test_histories_replay_deterministically(service: AsyncDLQService, config: DLQConfig,
                                                  client: Client) -> None:
    # Visibility times are RFC 3339; everything this test starts is at or after this.
    since = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    ok = await store(service, "t-ok")
    await service.retry_entry(ok)
    poison = await store(service, "t-fail", action="replay")
    await wait_status(service, poison, "requires_review")
    await service.force_redrive_entry(poison, actor_id="ops", reason="replay test")
    await client.get_workflow_handle(workflow_id_for(poison)).signal("retry")
    resolved = await store(service, "payment")
    await service.resolve_entry(resolved, status="discarded")
    short = AsyncDLQService(with_config(config, expiry_hours=1 / 3600), client=client)
    expired = await store(short, "payment")
    await wait_status(short, expired, "expired")
    await service.run_maintenance(dry_run=True)
    redrive = await service.bulk_replay({"domain": "t-ok"}, actor_id="ops", reason="replay test")
    await service.wait_bulk_replay(redrive["workflow_id"])

    histories = [
        await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        async for wf in client.list_workflows(
            f'TaskQueue="{config.task_queue}" AND StartTime >= "{since}"')
    ]
    assert len(histories) >= 4
    types = {h.events[0].workflow_execution_started_event_attributes.workflow_type.name
             for h in histories}
    assert "DLQEntryWorkflow" in types
    replayer = Replayer(workflows=[DLQEntryWorkflow, DLQMaintenanceWorkflow, BulkReplayWorkflow],
                        data_converter=pydantic_data_converter)
    async def each():
        for history in histories:
            yield history

    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    failures = {wid: err for wid, err in results.replay_failures.items()}
    assert failures == {}
