"""Small helpers for integration tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from dlq import AsyncDLQService, DLQConfig

T = TypeVar("T")
# The session's dev server suggests continue-as-new after this many history
# events (instead of thousands), so the suite exercises it (dedup storms).
CAN_EVENTS = 400


def with_config(config: DLQConfig, **changes: object) -> DLQConfig:
    """A copy of ``config`` with some fields changed."""
    return replace(config, **changes)


async def eventually(probe: Callable[[], Awaitable[T]], until: Callable[[T], bool],
                     timeout: float = 20.0, interval: float = 0.1) -> T:
    """Poll ``probe`` until ``until(value)`` holds; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = await probe()
    while not until(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)
        value = await probe()
    return value


async def wait_status(service: AsyncDLQService, dlq_id: str, status: str,
                      timeout: float = 20.0) -> dict[str, Any]:
    """Wait until the entry's SQL row has ``status``."""
    return await eventually(lambda: service.get_entry(dlq_id),
                            lambda e: e is not None and e["status"] == status, timeout)


async def store(service: AsyncDLQService, domain: str, *, action: str = "manual_check",
                failure_type: str = "PG_TIMEOUT", **kw: Any) -> str:
    """Store an entry and return its id (asserting success)."""
    result = await service.store_failure(domain, failure_type, recommended_action=action,
                                         error_message="original failure", **kw)
    assert result.success, result
    assert result.dlq_id
    return result.dlq_id


async def visible_runs(client, workflow_id: str, *, at_least: int = 1,
                       timeout: float = 10) -> int:
    """Runs of ``workflow_id`` in visibility, once at least ``at_least`` show.

    Visibility (list/count) is eventually consistent: a run just started or
    closed may be missing for a moment, so a single listing can under-count.
    """
    async def runs() -> int:
        return len([w async for w in client.list_workflows(f'WorkflowId="{workflow_id}"')])

    return await eventually(runs, lambda n: n >= at_least, timeout=timeout)
