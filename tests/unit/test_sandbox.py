"""The cached-code sandbox runner: same workflows, glue code compiled once.

The worker running on it is in ``tests/integration/test_cached_sandbox.py``.
"""

from __future__ import annotations

import inspect

from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

from dlq._sandbox import _CachedCodeInstance, _compiled


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
