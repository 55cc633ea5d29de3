"""The cached-code sandbox runner: same workflows, glue code compiled once; guarded.

The worker running on it is in ``tests/integration/test_cached_sandbox.py``; a
worker that falls back to the stock runner runs entries in
``tests/workflows/test_time_skipping.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

from dlq import _sandbox
from dlq._sandbox import (
    CachedCodeSandboxedWorkflowRunner,
    _compiled,
    sdk_internals_problem,
    workflow_runner,
)


@pytest.fixture
def fresh_check() -> Iterator[None]:
    """The once-per-process SDK check runs again in this test, and after it."""
    _sandbox._cache_usable.cache_clear()
    yield
    _sandbox._cache_usable.cache_clear()


def test_the_installed_sdk_has_the_internals_it_relies_on(fresh_check: None) -> None:
    assert sdk_internals_problem() is None
    runner = workflow_runner()
    assert type(runner) is CachedCodeSandboxedWorkflowRunner
    assert isinstance(runner, SandboxedWorkflowRunner)


def test_a_template_is_compiled_once() -> None:
    code = "with __x:\n  pass\n"
    assert _compiled(code) is _compiled(code)


def _renamed_run_code(self: Any, source: str, **extra_globals: Any) -> None:
    raise AssertionError("never called: the check refuses this signature")


@pytest.mark.parametrize("change", ["signature", "missing", "no_exec"])
def test_an_sdk_change_turns_the_cache_off_with_one_log_line(
        change: str, fresh_check: None, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    if change == "signature":
        monkeypatch.setattr(sandbox_runner._Instance, "_run_code", _renamed_run_code)
    elif change == "missing":
        monkeypatch.delattr(sandbox_runner, "_Instance")
    else:
        def _run_code(self: Any, code: str, **extra_globals: Any) -> None:
            self.runner.run(code)  # a new mechanism that would not take a code object

        monkeypatch.setattr(sandbox_runner._Instance, "_run_code", _run_code)
    with caplog.at_level(logging.WARNING, logger="dlq.worker"):
        runners = [workflow_runner(), workflow_runner()]
    assert all(type(r) is SandboxedWorkflowRunner for r in runners)
    warnings = [r.getMessage() for r in caplog.records if r.name == "dlq.worker"]
    assert len(warnings) == 1, warnings
    assert "cached-code sandbox runner is off" in warnings[0]
