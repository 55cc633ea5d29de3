"""The DLQ worker runs its workflows on the cached-code sandbox runner."""

from __future__ import annotations

import pytest
from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

from dlq import AsyncDLQService
from dlq._sandbox import CachedCodeSandboxedWorkflowRunner, _compiled
from tests.support.helpers import store


@pytest.mark.integration
async def test_the_dlq_worker_runs_entries_on_the_cached_runner(service: AsyncDLQService
                                                                ) -> None:
    before = _compiled.cache_info()
    dlq_id = await store(service, "payment")
    entry = await service.get_entry(dlq_id)
    assert entry is not None and entry["status"] == "pending"
    after = _compiled.cache_info()
    # Each activation and each payload went through the cache, nearly all as hits.
    assert after.hits - before.hits >= 5
    assert after.misses - before.misses <= 6
    assert isinstance(CachedCodeSandboxedWorkflowRunner(), sandbox_runner.SandboxedWorkflowRunner)
