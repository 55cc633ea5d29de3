"""The baseline: the smallest useful Temporal workflow (one no-op activity).

This module is loaded by the worker's workflow sandbox, so it imports only
the standard library and ``temporalio``.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

__all__ = ["BareWorkflow", "bare_noop"]


@activity.defn(name="bare_noop")
async def bare_noop() -> None:
    """Do nothing: the activity round trip is what the baseline measures."""


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    """Start, run one no-op activity, complete."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(bare_noop, start_to_close_timeout=timedelta(seconds=30))
