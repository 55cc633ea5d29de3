"""A workflow sandbox runner that compiles its glue code once instead of on every call.

temporalio 1.35's sandbox talks to the sandboxed workflow by ``exec`` of
small code strings: once per activation, and once per payload it encodes or
decodes (``get_serialization_context``). ``exec`` of a string compiles it
every time. Profiling a bulk redrive showed that compiling alone took about
15 % of the DLQ worker's CPU. This runner keeps the compiled code objects;
what runs, in which namespace and under which restrictions is unchanged.

It subclasses private SDK classes, so ``pyproject.toml`` pins temporalio, and
``tests/test_sandbox.py`` fails loudly if the internals it relies on move.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import CodeType
from typing import Any

from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

__all__ = ["CachedCodeSandboxedWorkflowRunner"]


@functools.lru_cache(maxsize=64)
def _compiled(code: str) -> CodeType:
    # The sandbox's code strings are a handful of fixed templates.
    return compile(code, "<string>", "exec")


class _CachedCodeInstance(sandbox_runner._Instance):
    def _run_code(self, code: str, **extra_globals: Any) -> None:
        super()._run_code(_compiled(code), **extra_globals)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CachedCodeSandboxedWorkflowRunner(SandboxedWorkflowRunner):
    """``SandboxedWorkflowRunner`` whose glue code is compiled once per template."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """Implements ``WorkflowRunner.create_instance`` with the cached-code instance."""
        return _CachedCodeInstance(det, self.runner_class, self.restrictions)
