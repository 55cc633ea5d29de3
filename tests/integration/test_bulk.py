"""Redrive without a second outage: reference replay operations and BulkReplayWorkflow."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig
from dlq._throttle import AdaptiveThrottle
from tests.support.handlers import calls, downstream
from tests.support.helpers import eventually, store, with_config

pytestmark = pytest.mark.integration


async def seed(service: AsyncDLQService, domain: str, n: int, failure_type: str) -> list[str]:
    return list(await asyncio.gather(*(store(service, domain, failure_type=failure_type)
                                       for _ in range(n))))


def kind() -> str:
    return f"B{uuid.uuid4().hex[:8]}"


async def run(service: AsyncDLQService, filters: dict, **kw: object):
    started = await service.bulk_replay(filters, actor_id="ops-alice",
                                        reason=kw.pop("reason", "downstream recovered"), **kw)
    return started, await service.wait_bulk_replay(started["workflow_id"])


async def test_dry_run_reports_and_changes_nothing(service: AsyncDLQService) -> None:
    ftype = kind()
    ids = await seed(service, "t-ok", 7, ftype)
    before = [await service.get_entry(i) for i in ids]
    report = await service.bulk_replay({"failure_type": ftype}, dry_run=True)
    assert report["dry_run"] and report["count"] == 7
    assert report["by_domain_failure_type"] == [{"domain": "t-ok", "failure_type": ftype,
                                                 "count": 7}]
    assert {r["id"] for r in report["sample"]} <= set(ids) and len(report["sample"]) == 7
    assert [await service.get_entry(i) for i in ids] == before


async def test_redrive_replays_the_frozen_set_through_each_entry(service: AsyncDLQService
                                                                 ) -> None:
    ftype = kind()
    ids = await seed(service, "t-ok", 30, ftype)
    started = await service.bulk_replay({"failure_type": ftype}, actor_id="ops-alice",
                                        reason="PG back", rate_per_second=40, page_size=10)
    assert started["total"] == 30
    late = await seed(service, "t-ok", 3, ftype)  # arrives after the set was frozen
    final = await service.wait_bulk_replay(started["workflow_id"])
    assert (final.status, final.total, final.done, final.succeeded, final.remaining) == (
        "completed", 30, 30, 30, 0)
    assert final.current_rate > 0
    for dlq_id in ids:
        entry = await service.get_entry(dlq_id)
        assert entry["status"] == "resolved" and calls[dlq_id] == 1
        assert entry["attempts"][0]["trigger"] == "bulk"
        started_event = next(e for e in entry["audit_events"] if e["action"] == "replay_started")
        assert (started_event["actor"], started_event["reason"]) == ("ops-alice", "PG back")
    assert [(await service.get_entry(i))["status"] for i in late] == ["pending"] * 3


async def test_filter_matching_nothing_gives_zero_totals(service: AsyncDLQService) -> None:
    _, final = await run(service, {"failure_type": kind()})
    assert (final.status, final.total, final.done, final.succeeded) == ("completed", 0, 0, 0)


async def test_bad_arguments_fail_before_anything_starts(service: AsyncDLQService,
                                                         client: Client) -> None:
    ftype = kind()
    await seed(service, "t-ok", 2, ftype)
    cases = [
        (dict(rate_per_second=-1, actor_id="a", reason="r"), "rate_per_second"),
        (dict(rate_per_second=0, actor_id="a", reason="r"), "rate_per_second"),
        (dict(canary=3, actor_id="a", reason="r"), r"canary \(3\) is larger than the set \(2\)"),
        (dict(canary=-1, actor_id="a", reason="r"), "canary"),
        (dict(canary_min_success=1.5, actor_id="a", reason="r"), "canary_min_success"),
        (dict(actor_id="a", reason=" "), "reason"),
        (dict(reason="r"), "actor_id"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            await service.bulk_replay({"failure_type": ftype}, **kwargs)
    with pytest.raises(ValueError, match="colour"):
        await service.bulk_replay({"colour": "red"}, actor_id="a", reason="r")

    async def running() -> int:  # visibility lags: a redrive that just ended may still show
        return (await client.count_workflows(
            'WorkflowType="BulkReplayWorkflow" AND ExecutionStatus="Running"')).count

    assert await eventually(running, lambda n: n == 0, timeout=15) == 0


async def test_canary_stops_a_bad_redrive(service: AsyncDLQService) -> None:
    ftype = kind()
    ids = await seed(service, "t-fail", 20, ftype)
    _, final = await run(service, {"failure_type": ftype}, canary=5, canary_min_success=0.8)
    assert final.status == "stopped" and final.done == 5 and final.failed == 5
    assert final.early_stop_reason.startswith("canary failed: 0/5 succeeded")
    touched = [i for i in ids if calls[i]]
    assert len(touched) == 5
    untouched = [await service.get_entry(i) for i in ids if i not in touched]
    assert all(e["retry_count"] == 0 for e in untouched)


async def test_pause_resume_cancel(service: AsyncDLQService) -> None:
    ftype = kind()
    await seed(service, "t-ok", 60, ftype)
    started = await service.bulk_replay({"failure_type": ftype}, actor_id="ops", reason="r",
                                        rate_per_second=15, page_size=5)
    wid = started["workflow_id"]
    await service.signal_bulk_replay(wid, "pause")
    paused = await eventually(lambda: service.get_bulk_replay(wid),
                              lambda p: p.status == "paused", timeout=20)
    await asyncio.sleep(1.0)
    still = await service.get_bulk_replay(wid)
    assert still.done == paused.done and still.status == "paused"
    await service.signal_bulk_replay(wid, "resume")
    await eventually(lambda: service.get_bulk_replay(wid),
                     lambda p: p.done > paused.done, timeout=20)
    await service.signal_bulk_replay(wid, "cancel")
    final = await service.wait_bulk_replay(wid)
    assert final.status == "cancelled" and 0 < final.done < 60 and final.remaining > 0
    with pytest.raises(ValueError, match="pause, resume or cancel"):
        await service.signal_bulk_replay(wid, "stop")  # type: ignore[arg-type]


async def test_throttle_keeps_in_flight_near_downstream_capacity(
        service: AsyncDLQService) -> None:
    ftype = kind()
    downstream.reset(capacity=4, latency=0.05)
    await seed(service, "t-down", 80, ftype)
    _, final = await run(service, {"failure_type": ftype}, page_size=40)
    assert final.done == 80
    settled = downstream.samples[len(downstream.samples) // 3:]
    assert statistics.mean(settled) <= 1.5 * downstream.capacity, statistics.mean(settled)
    assert final.succeeded >= 0.7 * final.done, final


async def test_emergency_stops_the_redrive_early(service: AsyncDLQService) -> None:
    ftype = kind()
    downstream.reset(capacity=100)
    downstream.burst = True
    try:
        await seed(service, "t-down", 60, ftype)
        _, final = await run(service, {"failure_type": ftype}, page_size=20)
    finally:
        downstream.burst = False
    assert final.status == "stopped" and "emergency" in final.early_stop_reason
    assert final.done < 60 and final.succeeded == 0


async def test_reference_replay(service: AsyncDLQService) -> None:
    ok = await seed(service, "t-replay", 3, kind())
    stats = await service.replay(domain="t-replay", batch_size=500)
    assert (stats.processed, stats.success, stats.failed, stats.errors) == (3, 3, 0, [])
    assert [(await service.get_entry(i))["status"] for i in ok] == ["resolved"] * 3


async def test_replay_throttle_aware_checks_in_order(config: DLQConfig, client: Client,
                                                     service: AsyncDLQService) -> None:
    throttle = AdaptiveThrottle(max_rate_per_second=1000)
    fresh = await store(service, "t-ok")
    out = await service.replay_throttle_aware(fresh, throttle)
    assert out.success and out.entry_id == fresh
    capped = await store(service, "t-fail")
    await service.retry_entry(capped)
    await service.retry_entry(capped)
    out = await service.replay_throttle_aware(capped, throttle)
    assert not out.success and "not retryable" in out.error and out.retry_after is None
    short = AsyncDLQService(with_config(config, expiry_hours=1 / 3600), client=client)
    gone = await store(short, "t-ok")
    await asyncio.sleep(1.5)
    out = await service.replay_throttle_aware(gone, throttle)
    assert not out.success and "expired" in out.error
    tight = AdaptiveThrottle(initial_limit=1, min_limit=1, max_limit=1)
    held = tight.acquire()
    waiting = await store(service, "t-ok")
    out = await service.replay_throttle_aware(waiting, tight)
    assert not out.success and out.retry_after is not None and out.retry_after > 0
    assert calls[waiting] == 0 and (await service.get_entry(waiting))["version"] == 1
    held.release(success=True)


async def test_replay_all_throttle_aware_stops_on_emergency(service: AsyncDLQService) -> None:
    downstream.reset(capacity=100)
    downstream.burst = True
    try:
        await seed(service, "t-down", 40, kind())
        throttle = AdaptiveThrottle(min_samples=4)  # judge health from the first batch
        result = await service.replay_all_throttle_aware(throttle, domain="t-down",
                                                         batch_size=10, max_entries=40)
    finally:
        downstream.burst = False
    assert result.early_stop_reason and "emergency" in result.early_stop_reason
    assert result.total < 40 and result.succeeded == 0


def test_redrive_command_line(config: DLQConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dlq import DLQService
    from dlq._cli import app

    ftype = kind()
    with DLQService(config) as svc:
        ids = [svc.store_failure("t-ok", ftype, recommended_action="manual_check").dlq_id
               for _ in range(4)]
    for key, value in {"DLQ_TEMPORAL_ADDRESS": config.temporal_address,
                       "DLQ_TASK_QUEUE": config.task_queue,
                       "DLQ_DATABASE_URL": config.database_url}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    preview = runner.invoke(app, ["redrive", "--failure-type", ftype, "--dry-run"])
    assert preview.exit_code == 0 and "4 entries would be replayed" in preview.output
    missing = runner.invoke(app, ["redrive", "--failure-type", ftype])
    assert missing.exit_code == 2 and "reason" in missing.output
    done = runner.invoke(app, ["redrive", "--failure-type", ftype, "--actor", "ops",
                               "--reason", "cli test", "--wait"])
    assert done.exit_code == 0 and "completed" in done.output, done.output
    with DLQService(config) as svc:
        assert [svc.get_entry(i)["status"] for i in ids] == ["resolved"] * 4


async def _replays(ids: list[str]) -> int:
    return sum(calls[i] for i in ids)


async def test_cancel_acts_within_a_second_mid_page(service: AsyncDLQService) -> None:
    ftype = kind()
    ids = await seed(service, "t-ok", 40, ftype)
    # One page of 40 at 5 per second: 8 s, so the cancel lands mid-page.
    started = await service.bulk_replay({"failure_type": ftype}, actor_id="ops", reason="r",
                                        rate_per_second=5, page_size=40)
    wid = started["workflow_id"]
    mid = await eventually(lambda: service.get_bulk_replay(wid), lambda p: p.done >= 3,
                           timeout=20)
    assert mid.status == "running" and mid.done < 40  # progress moved during the page
    await service.signal_bulk_replay(started["bulk_id"], "cancel")
    sent = time.monotonic()
    at_cancel = await _replays(ids)
    await asyncio.sleep(1.0)
    after_a_second = await _replays(ids)
    await asyncio.sleep(1.5)
    assert await _replays(ids) == after_a_second  # nothing started after the first second
    # At 5/s, at most ~5 more could start within that second; the page had 30+ left.
    assert after_a_second - at_cancel <= 6, (at_cancel, after_a_second)
    final = await service.wait_bulk_replay(wid)
    assert time.monotonic() - sent < 10
    assert final.status == "cancelled"
    replayed = [i for i in ids if calls[i]]
    assert all(calls[i] == 1 for i in replayed)  # none twice
    assert final.done == len(replayed) and final.succeeded == len(replayed)
    assert final.remaining == 40 - len(replayed) > 0


async def test_pause_mid_page_then_resume_skips_and_repeats_nothing(
        service: AsyncDLQService) -> None:
    ftype = kind()
    ids = await seed(service, "t-ok", 30, ftype)
    started = await service.bulk_replay({"failure_type": ftype}, actor_id="ops", reason="r",
                                        rate_per_second=6, page_size=30)
    wid = started["workflow_id"]
    await eventually(lambda: service.get_bulk_replay(wid), lambda p: p.done >= 3, timeout=20)
    await service.signal_bulk_replay(wid, "pause")
    await asyncio.sleep(1.0)
    frozen = await _replays(ids)
    paused = await eventually(lambda: service.get_bulk_replay(wid),
                              lambda p: p.status == "paused", timeout=5)
    await asyncio.sleep(1.5)
    assert await _replays(ids) == frozen and paused.done == frozen < 30
    await service.signal_bulk_replay(wid, "resume")
    final = await service.wait_bulk_replay(wid)
    assert (final.status, final.done, final.succeeded) == ("completed", 30, 30)
    assert [calls[i] for i in ids] == [1] * 30  # every entry once: none skipped, none twice
