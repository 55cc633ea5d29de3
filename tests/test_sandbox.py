"""The cached-code sandbox runner: same workflows, glue code compiled once."""

from __future__ import annotations

import inspect

import pytest
from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

from dlq import AsyncDLQService
from dlq._sandbox import CachedCodeSandboxedWorkflowRunner, _CachedCodeInstance, _compiled
from tests.helpers import store


def test_the_sdk_internals_it_relies_on_are_still_there() -> None:
    # If temporalio moves these, this fails instead of the worker misbehaving.
    params = list(inspect.signature(sandbox_runner._Instance._run_code).parameters)
    assert params == ["self", "code", "extra_globals"]
    assert list(inspect.signature(sandbox_runner._Instance.__init__).parameters) == [
        "self", "instance_details", "runner_class", "restrictions"]
    assert issubclass(_CachedCodeInstance, sandbox_runner._Instance)


def test_a_template_is_compiled_once() -> None:
    code = "with __x:\n  pass\n"
    assert _compiled(code) is _compiled(code)


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
