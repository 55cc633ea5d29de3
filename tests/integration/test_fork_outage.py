"""Fork safety, the outage bound and the capture circuit breaker, against a real server.

- A ``DLQService``/``AsyncDLQService`` built (and used) before ``os.fork()``
  stores from the child (a real ``multiprocessing`` fork; gunicorn
  ``--preload`` is in ``test_django.py``).
- During an outage (a TCP proxy in front of the dev server taken down), every
  sync store returns within ``store_timeout`` + 10 %, also from 8 threads at
  once; after the first one found Temporal unreachable the others go
  straight to the outbox; once the server is back the relay delivers every
  entry exactly once and the breaker closes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig, DLQService
from dlq._fork import forks_seen
from dlq._outbox import Outbox
from dlq._temporal import workflow_id_for
from tests.support.helpers import eventually
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.integration

FORK = multiprocessing.get_context("fork")


def _domain() -> str:
    return f"fork-{uuid.uuid4().hex[:8]}"


# --- a real fork ---------------------------------------------------------------------


def _child_sync(service: DLQService, domain: str, queue: Any) -> None:
    started = time.monotonic()
    result = service.store_failure(domain, "CHILD_SYNC", error_message="from the child")
    queue.put({"forks": forks_seen(), "success": result.success, "dlq_id": result.dlq_id,
               "error": result.error, "fallback_path": result.fallback_path,
               "elapsed": time.monotonic() - started})


def _child_async(service: AsyncDLQService, domain: str, queue: Any) -> None:
    result = asyncio.run(service.store_failure(domain, "CHILD_ASYNC_API"))
    queue.put({"success": result.success, "dlq_id": result.dlq_id, "error": result.error})


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    # Called on the main thread, as gunicorn and Celery fork (a child forked
    # from another thread fails in Python's own threading shutdown).
    queue = FORK.Queue()
    process = FORK.Process(target=target, args=(*args, queue))
    process.start()
    try:
        answer: dict[str, Any] = queue.get(timeout=60)
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
    assert process.exitcode == 0
    return answer


async def test_a_service_built_and_used_before_fork_stores_from_the_child(
        config: DLQConfig, client: Client) -> None:
    domain = _domain()
    service = DLQService(config)
    aio = AsyncDLQService(config)
    try:
        # Used in the parent first: its loop thread, client, Temporal runtime
        # and SQL connections exist before the fork.
        parent = await asyncio.to_thread(service.store_failure, domain, "PARENT")
        assert parent.success, parent.error
        assert (await aio.store_failure(domain, "PARENT_ASYNC_API")).success
        assert await asyncio.to_thread(service.get_entry, parent.dlq_id) is not None
        child = _in_child(_child_sync, service, domain)
        assert child["forks"] == 1
        assert child["success"] is True, child
        assert child["elapsed"] < config.store_timeout
        child_aio = _in_child(_child_async, aio, domain)
        assert child_aio["success"] is True, child_aio
        # The parent's service still works after its child used its copy.
        again = await asyncio.to_thread(service.store_failure, domain, "PARENT_AGAIN")
        assert again.success, again.error
        for dlq_id in (child["dlq_id"], child_aio["dlq_id"]):
            entry = await asyncio.to_thread(service.get_entry, dlq_id)
            assert entry is not None and entry["domain"] == domain
            await client.get_workflow_handle(workflow_id_for(dlq_id)).describe()
    finally:
        await asyncio.to_thread(service.close)
        await aio.close()


async def test_a_child_that_cannot_reach_temporal_keeps_the_store_in_the_outbox(
        config: DLQConfig, tmp_path: Path) -> None:
    proxy = TcpProxy(config.temporal_address)  # never up: a closed port
    bounded = replace(config, temporal_address=proxy.address, store_timeout=2.0,
                      outbox_path=str(tmp_path / "outbox.db"))
    service = DLQService(bounded)
    try:
        child = _in_child(_child_sync, service, _domain())
        assert child["success"] is False and child["dlq_id"], child
        assert child["fallback_path"] == str(tmp_path / "outbox.db")
        assert child["elapsed"] <= bounded.store_timeout * 1.1, child
        assert Outbox(tmp_path / "outbox.db").stats().depth == 1
    finally:
        await asyncio.to_thread(service.close)
        proxy.close()


# --- outage: the bound, the breaker, the relay ----------------------------------------


def _timed_store(service: DLQService, domain: str, n: int) -> tuple[float, float, Any]:
    started = time.monotonic()
    result = service.store_failure(domain, "OUTAGE", entity_id=str(n))
    return started, time.monotonic() - started, result


async def test_sync_stores_during_an_outage_are_bounded_then_relayed_exactly_once(
        config: DLQConfig, client: Client, tmp_path: Path) -> None:
    proxy = TcpProxy(config.temporal_address)
    proxy.up()
    bound = 2.0
    outage = replace(config, temporal_address=proxy.address, store_timeout=bound,
                     outbox_path=str(tmp_path / "outbox.db"))
    service = DLQService(outage)
    domain = _domain()
    try:
        # Connected and storing before the outage (the client exists: the
        # case that took store_timeout + 1 s before).
        first = await asyncio.to_thread(service.store_failure, domain, "BEFORE")
        assert first.success, first.error
        proxy.down()
        unavailable_before = _store_failures("unavailable")
        with ThreadPoolExecutor(8) as pool:
            outcomes = await asyncio.gather(*(
                asyncio.wrap_future(pool.submit(_timed_store, service, domain, n))
                for n in range(48)))
        elapsed = [e for _, e, _ in outcomes]
        assert max(elapsed) <= bound * 1.1, sorted(elapsed)[-8:]
        results = [r for _, _, r in outcomes]
        assert all(not r.success and r.dlq_id and r.fallback_path for r in results), results[0]
        ids = {r.dlq_id for r in results}
        assert len(ids) == 48
        assert Outbox(tmp_path / "outbox.db").stats().depth == 48
        # The breaker: stores that began after the first one came back did not wait.
        first_back = min(s + e for s, e, _ in outcomes)
        later = [e for s, e, _ in outcomes if s > first_back]
        assert later and max(later) < 0.5, later
        stats = await asyncio.to_thread(service.get_capture_stats)
        assert stats["circuit_open"] is True and stats["circuit_short_circuited"] >= len(later)
        # A short-circuited store is counted as Temporal unavailable, not as an "error".
        assert _store_failures("unavailable") - unavailable_before >= len(later)

        proxy.up()
        await eventually(lambda: asyncio.to_thread(service.get_capture_stats),
                         lambda s: s["outbox_depth"] == 0 and not s["circuit_open"],
                         timeout=60, interval=0.5)
        after = await asyncio.to_thread(service.store_failure, domain, "AFTER")
        assert after.success, after.error  # the breaker closed: stores reach Temporal again
        # Exactly once: one workflow per id, one row per id, nothing else.
        for dlq_id in ids:
            runs = [w async for w in client.list_workflows(
                f'WorkflowId = "{workflow_id_for(dlq_id)}"')]
            assert len(runs) == 1, dlq_id
        page = await eventually(
            lambda: asyncio.to_thread(service.list_entries, {"domain": domain},
                                      page=1, page_size=100),
            lambda p: p["total_count"] == 50, timeout=60, interval=0.5)
        assert {e["id"] for e in page["results"]} >= ids
    finally:
        await asyncio.to_thread(service.close)
        proxy.close()


def _store_failures(reason: str) -> float:
    """``dlq_store_failures_total{reason=...}`` in this process."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("dlq_store_failures_total", {"reason": reason})
    return value or 0.0
