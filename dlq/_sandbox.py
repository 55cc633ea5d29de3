"""A workflow sandbox runner that compiles its glue code once instead of on every call.

temporalio's sandbox talks to the sandboxed workflow by ``exec`` of small
code strings: once per activation, and once per payload it encodes or decodes
(``get_serialization_context``). ``exec`` of a string compiles it every time.
Profiling a bulk redrive showed that compiling alone took about 15 % of the
DLQ worker's CPU. This runner keeps the compiled code objects; what runs, in
which namespace and under which restrictions is unchanged.

It subclasses private SDK classes, so :func:`workflow_runner` checks those
internals first: if an SDK release moved them, the worker logs one warning
and runs on the stock ``SandboxedWorkflowRunner`` (slower, never broken).
"""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass
from types import CodeType
from typing import Any

import temporalio
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

__all__ = ["CachedCodeSandboxedWorkflowRunner", "sdk_internals_problem", "workflow_runner"]

log = logging.getLogger("dlq.worker")


def sdk_internals_problem() -> str | None:
    """What keeps the cached runner from working with the installed temporalio (None: nothing).

    The runner relies on ``_runner._Instance(instance_details, runner_class,
    restrictions)`` and on its ``_run_code(code, **extra_globals)`` passing
    ``code`` straight to ``exec``, which takes a code object as well as a string.
    """
    try:
        from temporalio.worker.workflow_sandbox import _runner

        instance = _runner._Instance
        init = list(inspect.signature(instance.__init__).parameters)
        run_code = inspect.signature(instance._run_code).parameters
        source = inspect.getsource(instance._run_code)
    except Exception as err:  # noqa: BLE001 - any change in the internals disables the cache
        return f"{type(err).__name__}: {err}"
    if init != ["self", "instance_details", "runner_class", "restrictions"]:
        return f"_Instance.__init__ takes {init}"
    if list(run_code) != ["self", "code", "extra_globals"]:
        return f"_Instance._run_code takes {list(run_code)}"
    if "exec(code," not in source.replace(" ", ""):
        return "_Instance._run_code no longer passes its code to exec"
    return None


@functools.lru_cache(maxsize=64)
def _compiled(code: str) -> CodeType:
    # The sandbox's code strings are a handful of fixed templates.
    return compile(code, "<string>", "exec")


def _cached_instance_class() -> type:
    from temporalio.worker.workflow_sandbox import _runner

    class _CachedCodeInstance(_runner._Instance):
        def _run_code(self, code: str, **extra_globals: Any) -> None:
            super()._run_code(_compiled(code), **extra_globals)  # type: ignore[arg-type]

    return _CachedCodeInstance


@dataclass(frozen=True)
class CachedCodeSandboxedWorkflowRunner(SandboxedWorkflowRunner):
    """``SandboxedWorkflowRunner`` whose glue code is compiled once per template.

    Build it through :func:`workflow_runner`, which checks the SDK first.
    """

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """Implements ``WorkflowRunner.create_instance`` with the cached-code instance."""
        return _instance_class()(det, self.runner_class, self.restrictions)


@functools.cache
def _instance_class() -> type:
    return _cached_instance_class()


@functools.cache
def _cache_usable() -> bool:
    problem = sdk_internals_problem()
    if problem is not None:
        log.warning("temporalio %s: the cached-code sandbox runner is off (%s); running "
                    "workflows on the stock SandboxedWorkflowRunner", temporalio.__version__,
                    problem)
    return problem is None


def workflow_runner() -> WorkflowRunner:
    """A new cached-code runner, or the stock sandbox runner if the SDK's internals moved.

    The SDK is checked once per process, and the fallback logged once, with the reason.
    """
    return CachedCodeSandboxedWorkflowRunner() if _cache_usable() else SandboxedWorkflowRunner()
