"""/metrics against a real dev server and worker: exact counters and gauge levels.

Counters are process-wide (the session's worker runs in this process), so each
test uses domains of its own and asserts the values of its own label sets;
unlabelled counters are asserted as differences across the test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

import dlq
from dlq import AsyncDLQService, DLQConfig
from dlq._db import create_db_engine
from dlq._exposition import DLQGaugeCollector, start_metrics_server
from dlq._handlers import registry
from tests.support.helpers import eventually, store, wait_status

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``, parsed with prometheus-client's parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def domains() -> Iterator[dict[str, str]]:
    """Fresh domains with handlers: ``ok`` succeeds, ``fail`` raises."""
    tag = uuid.uuid4().hex[:8]
    names = {"ok": f"m-ok-{tag}", "fail": f"m-fail-{tag}", "out": f"m-out-{tag}"}

    @dlq.replay_handler(names["ok"])
    def succeed(entry: dlq.FailedOperationData) -> None:
        return None

    @dlq.replay_handler(names["fail"])
    def fail(entry: dlq.FailedOperationData) -> None:
        raise RuntimeError("downstream still broken")

    yield names
    for domain in names.values():
        registry.unregister(domain, None)


@pytest.fixture
def outbox_path(tmp_path: Path) -> str:
    """The outbox of this test's outage (the session's own relay never drains it)."""
    return str(tmp_path / "outbox.db")


@pytest.fixture
def metrics_port(config: DLQConfig, domains: dict[str, str], outbox_path: str) -> Iterator[int]:
    """A /metrics server as the worker runs it (gauges from SQL and an outbox)."""
    from dlq._outbox import Outbox

    engine = create_db_engine(config.database_url)
    outbox = Outbox(outbox_path)
    # Every open entry of the `fail` domain breaches its SLA at once; the others never.
    gauges = DLQGaugeCollector(engine, outbox, {domains["fail"]: 0.0, "*": 86400.0})
    server = start_metrics_server(0, gauges, addr="127.0.0.1")
    yield server.server_port
    server.shutdown()
    engine.dispose()


async def scripted_sequence(config: DLQConfig, client: Client, service: AsyncDLQService,
                            outbox_path: str, domains: dict[str, str],
                            port: int) -> dict[str, Any]:
    """Stores, replays that succeed and fail, a force-redrive, a bulk redrive, an outage.

    Returns the scrapes ``before``, during the ``outage`` and ``after``, and the ``bulk_id``.
    """
    ok, fail, out = domains["ok"], domains["fail"], domains["out"]
    before = scrape(port)

    # Stores: two of one type and one of another, sync; one async through the outbox.
    resolved = [await store(service, ok) for _ in range(2)]
    await store(service, ok, failure_type="OTHER")
    queued = await service.store_failure(ok, "QUEUED", error_message="x", mode="async",
                                         recommended_action="manual_check")
    assert queued.success and queued.dlq_id
    poison, second = await store(service, fail), await store(service, fail)

    # Replays: two succeed; the poison entry fails twice, is force-redriven past
    # the cap and fails again; the second entry fails twice (requires_review).
    for pk in resolved:
        assert (await service.retry_entry(pk))["success"] is True
    for pk in (poison, poison, second, second):
        assert (await service.retry_entry(pk))["success"] is False
    await wait_status(service, poison, "requires_review")
    forced = await service.force_redrive_entry(poison, actor_id="alice", reason="INC-1")
    assert forced["success"] is False
    await wait_status(service, queued.dlq_id, "pending")
    # A throttled bulk redrive of the OTHER entry (it succeeds).
    started = await service.bulk_replay({"domain": ok, "failure_type": "OTHER"},
                                        actor_id="alice", reason="fixed")
    progress = await service.wait_bulk_replay(started["workflow_id"])
    assert progress.succeeded == 1, progress

    # An outbox outage: Temporal unreachable, the sync store falls back to the outbox.
    down = AsyncDLQService(dataclasses.replace(
        config, temporal_address="127.0.0.1:1", store_timeout=1.0, outbox_path=outbox_path))
    try:
        fallback = await down.store_failure(out, "PG_TIMEOUT", error_message="x",
                                            recommended_action="manual_check", mode="sync")
        assert not fallback.success and fallback.fallback_path
        outage = await eventually(lambda: _scrape_async(port),
                                  lambda s: (value(s, "dlq_relay_errors_total") or 0)
                                  > (value(before, "dlq_relay_errors_total") or 0))
    finally:
        await down.close()

    # Temporal back: a relay on the same outbox delivers it.
    back = AsyncDLQService(dataclasses.replace(config, outbox_path=outbox_path), client=client)
    try:
        assert await back.drain_outbox(timeout=30) == 1
    finally:
        await back.close()
    await eventually(lambda: service.get_entry(fallback.dlq_id),
                     lambda e: e is not None and e["status"] == "pending")
    after = await eventually(lambda: _scrape_async(port),
                             lambda s: value(s, "dlq_outbox_depth") == 0)
    return {"before": before, "outage": outage, "after": after, "bulk_id": started["bulk_id"]}


async def test_a_scripted_sequence_gives_exact_counters_and_gauges(
        config: DLQConfig, client: Client, service: AsyncDLQService, outbox_path: str,
        domains: dict[str, str], metrics_port: int) -> None:
    ok, fail, out = domains["ok"], domains["fail"], domains["out"]
    run = await scripted_sequence(config, client, service, outbox_path, domains, metrics_port)
    before, outage, after = run["before"], run["outage"], run["after"]

    assert value(outage, "dlq_outbox_depth") == 1
    assert 0 < (value(outage, "dlq_outbox_oldest_age_seconds") or 0) < 120
    assert value(outage, "dlq_outbox_quarantined") == 0
    failures = {labels: v for (name, labels), v in outage.items()
                if name == "dlq_store_failures_total"}
    failures_before = {labels: v for (name, labels), v in before.items()
                       if name == "dlq_store_failures_total"}
    grown = {labels: v - failures_before.get(labels, 0) for labels, v in failures.items()
             if v != failures_before.get(labels, 0)}
    assert list(grown.values()) == [1.0], grown
    (reason_label,) = grown
    assert dict(reason_label)["reason"] in ("unavailable", "timeout")
    assert value(after, "dlq_outbox_oldest_age_seconds") == 0

    stored = "dlq_entries_stored_total"
    assert value(after, stored, domain=ok, failure_type="PG_TIMEOUT", mode="sync") == 2
    assert value(after, stored, domain=ok, failure_type="OTHER", mode="sync") == 1
    assert value(after, stored, domain=ok, failure_type="QUEUED", mode="async") == 1
    assert value(after, stored, domain=fail, failure_type="PG_TIMEOUT", mode="sync") == 2
    assert value(after, stored, domain=out, failure_type="PG_TIMEOUT", mode="fallback") == 1

    replays = "dlq_replays_total"
    assert value(after, replays, domain=ok, trigger="manual", outcome="success") == 2
    assert value(after, replays, domain=ok, trigger="bulk", outcome="success") == 1
    assert value(after, replays, domain=fail, trigger="manual", outcome="failure") == 4
    assert value(after, replays, domain=fail, trigger="force", outcome="failure") == 1
    assert value(after, "dlq_force_redrives_total", domain=fail) == 1
    assert value(after, "dlq_force_redrives_total", domain=ok) is None
    runs = (value(after, "dlq_replay_duration_seconds_count") or 0) - \
        (value(before, "dlq_replay_duration_seconds_count") or 0)
    assert runs >= 8  # the worker may also finish other tests' automatic replays

    # Gauges: ok has QUEUED open; fail has the force-redriven entry back in
    # pending (budget left) and the second in requires_review.
    opened = "dlq_open_entries"
    assert value(after, opened, domain=ok, status="pending") == 1
    assert value(after, opened, domain=fail, status="pending") == 1
    assert value(after, opened, domain=fail, status="requires_review") == 1
    assert value(after, opened, domain=out, status="pending") == 1
    assert value(after, opened, domain=ok, status="resolved") is None  # closed: not a gauge
    assert 0 < (value(after, "dlq_oldest_open_entry_age_seconds", domain=fail) or 0) < 300
    assert value(after, "dlq_sla_breached_entries", domain=fail) == 2
    assert value(after, "dlq_sla_breached_entries", domain=ok) == 0
    # The bulk redrive's throttle, shown for a minute after its last page.
    bulk = run["bulk_id"]
    assert value(after, "dlq_redrive_limit", redrive=bulk) == 4  # the throttle's start
    assert value(after, "dlq_redrive_health", redrive=bulk, state="healthy") == 1
    assert value(after, "dlq_redrive_health", redrive=bulk, state="emergency") == 0


async def _scrape_async(port: int) -> Samples:
    return await asyncio.to_thread(scrape, port)


def test_running_redrives_show_their_limit_and_health(metrics_port: int) -> None:
    from dlq import _metrics
    from dlq._throttle import AdaptiveThrottle

    bulk_id = f"bulk-{uuid.uuid4().hex[:8]}"
    throttle = AdaptiveThrottle()
    _metrics.track_redrive(bulk_id, throttle)
    samples = scrape(metrics_port)
    assert value(samples, "dlq_redrive_limit", redrive=bulk_id) == throttle.limit == 4
    assert value(samples, "dlq_redrive_health", redrive=bulk_id, state="healthy") == 1
    assert value(samples, "dlq_redrive_health", redrive=bulk_id, state="emergency") == 0


def deploy_metric_names() -> dict[str, set[str]]:
    """Every ``dlq_*`` name the alert rules and the Grafana dashboard query, by file."""
    import json
    import re

    import yaml

    from dlq._procs import ROOT

    name = re.compile(r"\bdlq_[a-z0-9_]+\b")
    rules = yaml.safe_load((ROOT / "deploy/prometheus/dlq.rules.yml").read_text())
    exprs = [r["expr"] for group in rules["groups"] for r in group["rules"]]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/dlq.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return {"rules": {n for e in exprs for n in name.findall(e)},
            "dashboard": {n for q in queries for n in name.findall(q)}}


async def test_every_metric_in_deploy_exists_in_a_real_scrape(
        config: DLQConfig, client: Client, service: AsyncDLQService, outbox_path: str,
        domains: dict[str, str], metrics_port: int) -> None:
    names = deploy_metric_names()
    # Both files query the main families (a renamed metric would empty a panel or a rule).
    assert {"dlq_open_entries", "dlq_entries_stored_total", "dlq_replays_total",
            "dlq_oldest_open_entry_age_seconds", "dlq_sla_breached_entries",
            "dlq_outbox_depth"} <= names["dashboard"]
    assert len(names["rules"]) >= 12
    run = await scripted_sequence(config, client, service, outbox_path, domains, metrics_port)
    scraped = {n for (n, _labels) in {**run["outage"], **run["after"]}}
    for where, used in names.items():
        missing = used - scraped
        assert not missing, f"{where} queries metrics no scrape has: {sorted(missing)}"


def test_every_alert_rule_says_what_and_how_bad() -> None:
    import yaml

    from dlq._procs import ROOT

    rules = yaml.safe_load((ROOT / "deploy/prometheus/dlq.rules.yml").read_text())
    alerts = [r for group in rules["groups"] for r in group["rules"]]
    assert len({r["alert"] for r in alerts}) == len(alerts)
    for rule in alerts:
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


async def test_the_sdk_runtime_serves_temporal_metrics_on_its_own_port(
        temporal_address: str) -> None:
    import socket

    from dlq._connect import connect
    from dlq._exposition import sdk_metrics_runtime

    with socket.socket() as probe:  # a free port for the runtime to bind
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runtime = sdk_metrics_runtime(port)
    assert runtime is not None
    client = await connect(temporal_address, runtime=runtime)
    await client.count_workflows()
    samples = await eventually(lambda: _scrape_async(port),
                               lambda s: any(n.startswith("temporal_request") for n, _ in s))
    assert not any(n.startswith("dlq_") for n, _ in samples)  # the SDK's own, apart from ours


def test_no_sdk_runtime_when_its_port_is_zero() -> None:
    from dlq._exposition import sdk_metrics_runtime

    assert sdk_metrics_runtime(0) is None


async def test_run_worker_serves_dlq_and_sdk_metrics_on_their_ports(
        config: DLQConfig, service: AsyncDLQService, domains: dict[str, str]) -> None:
    from dlq._procs import free_port
    from dlq._worker import run_worker

    ports = {"dlq": free_port(), "sdk": free_port()}
    worker_config = dataclasses.replace(
        config, task_queue=f"dlq-metrics-{uuid.uuid4().hex[:8]}", maintenance_enabled=False,
        metrics_port=ports["dlq"], sdk_metrics_port=ports["sdk"])
    ready, stop = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_worker(worker_config, ready=ready, stop=stop))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        domain = domains["ok"]
        producer = AsyncDLQService(worker_config)
        try:
            stored = await producer.store_failure(domain, "PG_TIMEOUT", error_message="x",
                                                  recommended_action="manual_check")
        finally:
            await producer.close()
        assert stored.success, stored
        samples = await eventually(lambda: _scrape_async(ports["dlq"]),
                                   lambda s: value(s, "dlq_open_entries", domain=domain,
                                                   status="pending") == 1)
        assert value(samples, "dlq_entries_stored_total", domain=domain,
                     failure_type="PG_TIMEOUT", mode="sync") == 1
        sdk = await eventually(lambda: _scrape_async(ports["sdk"]),
                               lambda s: any(n.startswith("temporal_") for n, _ in s))
        assert any(n.startswith("temporal_worker") or n.startswith("temporal_request")
                   for n, _ in sdk)
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
    with pytest.raises(OSError):  # the port is closed with the worker
        scrape(ports["dlq"])
