"""Alerts that reach a person: rules, cooldowns, webhooks (a real local receiver), the record.

The rule and delivery tests run the activities' code against SQLite and
PostgreSQL; the workflow tests run ``DLQAlertsWorkflow`` on the dev server
with a real worker, directly and through the schedule the worker creates.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from dlq import DLQConfig
from dlq._alert_messages import (
    AlertsInput,
    AlertsResult,
    DeliverAlertInput,
    EvaluateAlertsInput,
    FinishAlertInput,
)
from dlq._alert_rules import parse_alert_rules
from dlq._alert_schedule import ensure_alerts_schedule
from dlq._entry import new_entry_input
from dlq._models import DLQStatus
from dlq._outbox import Outbox
from dlq._sql import SQLModelRepository
from dlq._worker import build_worker
from dlq.activities.alerts import AlertActivities
from dlq.activities.entry import EntryActivities
from tests.sql.test_groups import bump, new_state, persist
from tests.support.webhook import webhook_receiver


@pytest.fixture
def engine(read_model: Engine) -> Engine:
    return read_model


def rules(url: str, *, cooldown: float = 3600, only: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    every = [
        {"name": "new-groups", "kind": "new_group", "cooldown_seconds": cooldown,
         "webhooks": [{"url": f"{url}/json"}, {"url": f"{url}/slack", "format": "slack"}]},
        {"name": "hot-groups", "kind": "group_rate", "threshold": 1, "window_minutes": 1,
         "cooldown_seconds": cooldown, "webhooks": [{"url": f"{url}/json"}]},
        {"name": "sla", "kind": "sla_breach", "cooldown_seconds": cooldown,
         "webhooks": [{"url": f"{url}/json"}]},
        {"name": "review", "kind": "review_backlog", "threshold": 0,
         "cooldown_seconds": cooldown, "webhooks": [{"url": f"{url}/json"}]},
        {"name": "outbox", "kind": "outbox", "max_age_seconds": 0.001,
         "cooldown_seconds": cooldown, "webhooks": [{"url": f"{url}/json"}]},
    ]
    return [r for r in every if not only or r["name"] in only]


def make_config(tmp_path: Path, url: str, **kwargs: Any) -> DLQConfig:
    raw = kwargs.pop("rules", None) or rules(url)
    return DLQConfig(home=str(tmp_path), outbox_path=str(tmp_path / "outbox.db"),
                     sla_thresholds={"payment": 60}, console_url="http://console.example/",
                     alert_rules=parse_alert_rules(raw), **kwargs)


def seed(engine: Engine, config: DLQConfig) -> None:
    """One situation that each of the five rules sees exactly once."""
    acts = EntryActivities(engine)
    now = datetime.now(UTC)
    for i in range(3):  # a new group, at 3 a minute
        persist(acts, new_state(f"hot-{i}", f"order {100 + i} timed out"), first=True)
    # An old payment entry: breaches the 60 s SLA; its group is not new.
    persist(acts, new_state("old", "card declined", code="D", at=now - timedelta(hours=2)),
            first=True)
    # An entry waiting for review (not new either).
    review = new_state("rev", "bad payload", domain="webhook", at=now - timedelta(minutes=30))
    persist(acts, review, first=True)
    persist(acts, bump(review, status=DLQStatus.REQUIRES_REVIEW))
    box = Outbox(config.outbox_path)  # a record waiting in the worker's outbox
    box.append(new_entry_input(domain="payment", failure_type="X"))
    box.close()
    time.sleep(0.01)


def alert_rows(engine: Engine) -> list[dict[str, Any]]:
    return SQLModelRepository(engine).list_alerts(100, None)


def test_the_outbox_rule_reads_an_encrypted_outbox(engine: Engine, tmp_path: Path) -> None:
    # With DLQ_ENCRYPTION_KEYS the outbox's records and last errors are sealed;
    # the rule must read its figures with the worker's key ring.
    from dlq._keys import generate_key

    with webhook_receiver() as receiver:
        config = make_config(tmp_path, receiver.url, rules=[
            r for r in rules(receiver.url) if r["name"] == "outbox"],
            encryption_keys=generate_key("alerts"))
        box = Outbox(config.outbox_path, key_ring=config.key_ring)
        box.append(new_entry_input(domain="payment", failure_type="X"))
        [record] = box.claim(1)
        box.release(record.seq, "RPCError: unavailable", retry_in=0)
        box.close()
        time.sleep(0.01)
        result = ActivityEnvironment().run(AlertActivities(engine, config).evaluate_alerts,
                                           EvaluateAlertsInput())
        assert [a.rule for a in result.alerts] == ["outbox"]
        [row] = [a for a in alert_rows(engine) if a["rule"] == "outbox"]
        assert row["details"]["depth"] == 1


def test_each_rule_fires_once_per_cooldown_and_records_the_alert(
        engine: Engine, tmp_path: Path) -> None:
    with webhook_receiver() as receiver:
        config = make_config(tmp_path, receiver.url)
        seed(engine, config)
        acts = AlertActivities(engine, config)
        env = ActivityEnvironment()
        first = env.run(acts.evaluate_alerts, EvaluateAlertsInput())
        raised = {a["rule"]: a for a in alert_rows(engine)}
        assert sorted(raised) == ["hot-groups", "new-groups", "outbox", "review", "sla"]
        assert len(first.alerts) == 5 and all(a["status"] == "pending" for a in raised.values())
        assert {a.rule: a.webhooks for a in first.alerts}["new-groups"] == 2

        # What each alert says: what, how many, since when, and a link.
        assert raised["new-groups"]["title"].startswith("New failure group in payment: "
                                                        "PG_TIMEOUT E42: order <n> timed out")
        assert raised["new-groups"]["count"] == 3
        assert raised["new-groups"]["details"]["last_hour"] == 3
        assert raised["new-groups"]["details"]["open"] == 3
        assert raised["new-groups"]["link"].startswith("http://console.example/groups/")
        assert raised["hot-groups"]["count"] == 3 and "/min" in raised["hot-groups"]["title"]
        assert raised["sla"]["subject"] == "domain:payment" and raised["sla"]["count"] == 1
        assert datetime.fromisoformat(raised["sla"]["since"]) < datetime.now(UTC) - timedelta(
            hours=1)
        assert raised["review"]["count"] == 1
        assert raised["review"]["link"] == "http://console.example/?status=requires_review"
        assert raised["outbox"]["details"]["depth"] == 1

        # Within the cooldown nothing new is raised; undelivered ones are offered again.
        again = env.run(acts.evaluate_alerts, EvaluateAlertsInput())
        assert len(alert_rows(engine)) == 5
        assert {a.alert_id for a in again.alerts} == {a.alert_id for a in first.alerts}

        for alert in first.alerts:
            for index in range(alert.webhooks):
                sent = env.run(acts.deliver_alert, DeliverAlertInput(
                    alert_id=alert.alert_id, rule=alert.rule, webhook_index=index))
                assert sent.status_code == 200
            env.run(acts.finish_alert, FinishAlertInput(alert_id=alert.alert_id,
                                                        delivered=True, attempts=1))
        assert {a["status"] for a in alert_rows(engine)} == {"delivered"}
        assert env.run(acts.evaluate_alerts, EvaluateAlertsInput()).alerts == []
        assert len(alert_rows(engine)) == 5

        # The generic JSON and the Slack-compatible bodies.
        json_bodies = receiver.bodies("/json")
        assert len(json_bodies) == 5
        body = next(b for b in json_bodies if b["rule"] == "new-groups")
        assert {"title", "count", "since", "link", "kind", "subject"} <= set(body)
        assert body["source"] == "temporal-dlq" and body["count"] == 3
        (slack,) = receiver.bodies("/slack")
        assert "New failure group" in slack["text"] and "<http://console.example/groups/" in \
            slack["text"]
        assert slack["blocks"][0]["text"]["type"] == "mrkdwn"
        assert "order <n>" not in slack["text"] and "order &lt;n&gt;" in slack["text"]

    # With no cooldown, the same situation raises its alerts again.
    with webhook_receiver() as receiver:
        config = make_config(tmp_path, receiver.url, rules=rules(receiver.url, cooldown=0))
        env.run(AlertActivities(engine, config).evaluate_alerts, EvaluateAlertsInput())
        assert len(alert_rows(engine)) == 10


def test_delivery_errors_retry_on_5xx_and_stop_on_4xx(engine: Engine, tmp_path: Path) -> None:
    with webhook_receiver([500, 404]) as receiver:
        config = make_config(tmp_path, receiver.url, rules=rules(receiver.url,
                                                                 only=("review",)))
        seed(engine, config)
        acts = AlertActivities(engine, config)
        env = ActivityEnvironment()
        (alert,) = env.run(acts.evaluate_alerts, EvaluateAlertsInput()).alerts
        call = DeliverAlertInput(alert_id=alert.alert_id, rule="review", webhook_index=0)
        with pytest.raises(ApplicationError) as err:
            env.run(acts.deliver_alert, call)
        assert not err.value.non_retryable and "HTTP 500" in str(err.value)
        assert receiver.url not in str(err.value)  # a webhook URL may be a secret
        with pytest.raises(ApplicationError) as err:
            env.run(acts.deliver_alert, call)
        assert err.value.non_retryable and "HTTP 404" in str(err.value)
        assert env.run(acts.deliver_alert, call).status_code == 200
        with pytest.raises(ApplicationError, match="not configured"):
            env.run(acts.deliver_alert, call.model_copy(update={"rule": "gone"}))
    # Nobody listening: retryable.
    with pytest.raises(ApplicationError) as err:
        env.run(acts.deliver_alert, call)
    assert not err.value.non_retryable and "unreachable" in str(err.value)


def test_a_failed_delivery_does_not_hold_the_cooldown(engine: Engine, tmp_path: Path) -> None:
    with webhook_receiver() as receiver:
        config = make_config(tmp_path, receiver.url, rules=rules(receiver.url,
                                                                 only=("review",)))
        seed(engine, config)
        acts = AlertActivities(engine, config)
        env = ActivityEnvironment()
        (alert,) = env.run(acts.evaluate_alerts, EvaluateAlertsInput()).alerts
        env.run(acts.finish_alert, FinishAlertInput(alert_id=alert.alert_id, delivered=False,
                                                    attempts=5, error="HTTP 500"))
        (retry,) = env.run(acts.evaluate_alerts, EvaluateAlertsInput()).alerts
        assert retry.alert_id != alert.alert_id
        statuses = sorted(a["status"] for a in alert_rows(engine))
        assert statuses == ["failed", "pending"]


def test_rules_are_checked_at_start_naming_the_rule_and_field() -> None:
    with pytest.raises(ValueError, match=r"alert rule 1 \('b'\): rule: kind 'group_rate' "
                                         r"needs 'threshold'"):
        parse_alert_rules('[{"name": "a", "kind": "outbox", "webhooks": [{"url": "http://x"}]},'
                          ' {"name": "b", "kind": "group_rate", '
                          '"webhooks": [{"url": "http://x"}]}]')
    with pytest.raises(ValueError, match=r"webhooks.0.url: must be an http"):
        parse_alert_rules([{"name": "a", "kind": "new_group", "webhooks": [{"url": "x"}]}])
    with pytest.raises(ValueError, match="webhooks: .*at least 1 item"):
        parse_alert_rules([{"name": "a", "kind": "new_group", "webhooks": []}])
    with pytest.raises(ValueError, match="must be unique: a"):
        parse_alert_rules([{"name": "a", "kind": "new_group", "webhooks": [{"url": "http://x"}]}]
                          * 2)
    with pytest.raises(ValueError, match="JSON list"):
        parse_alert_rules("{not json")
    with pytest.raises(ValueError, match="alerts_interval_seconds"):
        DLQConfig(alerts_interval_seconds=1)


# --- on the dev server ----------------------------------------------------------------------


async def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.2)


async def test_alerts_workflow_retries_a_500_and_records_the_delivery(
        engine: Engine, tmp_path: Path, client: Client) -> None:
    with webhook_receiver([500]) as receiver:
        config = make_config(tmp_path, receiver.url, task_queue=f"alerts-{uuid.uuid4().hex[:8]}",
                             rules=rules(receiver.url, only=("review", "sla")))
        seed(engine, config)
        async with build_worker(client, task_queue=config.task_queue, engine=engine,
                                config=config):
            result = await client.execute_workflow(
                "DLQAlertsWorkflow", AlertsInput(retry_initial_seconds=0.2),
                id=f"alerts-{uuid.uuid4().hex}", task_queue=config.task_queue,
                result_type=AlertsResult)
            assert result == AlertsResult(raised=2, delivered=2, failed=0)
            assert len(receiver.requests) == 3  # one answered 500, retried
            rows = {a["rule"]: a for a in alert_rows(engine)}
            assert {a["status"] for a in rows.values()} == {"delivered"}
            assert sorted(a["attempts"] for a in rows.values()) == [1, 2]
            assert all(a["delivered_at"] for a in rows.values())
            # The next run is inside the cooldown: nothing is sent.
            again = await client.execute_workflow(
                "DLQAlertsWorkflow", AlertsInput(), id=f"alerts-{uuid.uuid4().hex}",
                task_queue=config.task_queue, result_type=AlertsResult)
            assert again == AlertsResult() and len(receiver.requests) == 3


async def test_a_webhook_that_stays_down_is_recorded_as_failed(
        engine: Engine, tmp_path: Path, client: Client) -> None:
    with webhook_receiver([503, 503, 503]) as receiver:
        config = make_config(tmp_path, receiver.url, task_queue=f"alerts-{uuid.uuid4().hex[:8]}",
                             rules=rules(receiver.url, only=("review",)))
        seed(engine, config)
        async with build_worker(client, task_queue=config.task_queue, engine=engine,
                                config=config):
            result = await client.execute_workflow(
                "DLQAlertsWorkflow", AlertsInput(delivery_attempts=3, retry_initial_seconds=0.1),
                id=f"alerts-{uuid.uuid4().hex}", task_queue=config.task_queue,
                result_type=AlertsResult)
        assert result == AlertsResult(raised=1, delivered=0, failed=1)
        (row,) = alert_rows(engine)
        assert row["status"] == "failed" and row["attempts"] == 3 and "HTTP 503" in row["error"]
        assert receiver.url not in row["error"]


async def test_the_worker_schedule_runs_the_alerts_workflow(
        engine: Engine, tmp_path: Path, client: Client) -> None:
    with webhook_receiver() as receiver:
        queue = f"alerts-{uuid.uuid4().hex[:8]}"
        config = make_config(tmp_path, receiver.url, task_queue=queue,
                             rules=rules(receiver.url, only=("review",)))
        seed(engine, config)
        schedule_id = f"dlq-alerts-{queue}"
        async with build_worker(client, task_queue=queue, engine=engine, config=config):
            assert await ensure_alerts_schedule(client, config, schedule_id=schedule_id) == \
                "created"
            assert await ensure_alerts_schedule(client, config, schedule_id=schedule_id) == \
                "updated"
            handle = client.get_schedule_handle(schedule_id)
            described = await handle.describe()
            assert described.schedule.spec.intervals[0].every == timedelta(seconds=60)
            await handle.trigger()
            await _wait_for(lambda: [a["status"] for a in alert_rows(engine)] == ["delivered"])
            assert [b["rule"] for b in receiver.bodies("/json")] == ["review"]
        # Without rules the schedule goes away.
        bare = DLQConfig(home=str(tmp_path), task_queue=queue)
        assert await ensure_alerts_schedule(client, bare, schedule_id=schedule_id) == "deleted"
        assert await ensure_alerts_schedule(client, bare, schedule_id=schedule_id) == "absent"


async def test_the_worker_creates_the_schedule_at_start_and_its_runs_notify(
        tmp_path: Path, temporal_address: str, client: Client) -> None:
    from dlq._alert_schedule import ALERTS_SCHEDULE_ID
    from dlq._db import create_db_engine
    from dlq._worker import run_worker

    with webhook_receiver() as receiver:
        config = make_config(tmp_path, receiver.url, temporal_address=temporal_address,
                             task_queue=f"alerts-{uuid.uuid4().hex[:8]}",
                             database_url=f"sqlite:///{tmp_path}/worker.db",
                             maintenance_enabled=False, shutdown_grace=1.0,
                             rules=rules(receiver.url, only=("review",)))
        ready, stop = asyncio.Event(), asyncio.Event()
        running = asyncio.create_task(run_worker(config, ready=ready, stop=stop))
        try:
            await asyncio.wait_for(ready.wait(), 60)
            engine = create_db_engine(config.database_url)
            seed(engine, config)
            handle = client.get_schedule_handle(ALERTS_SCHEDULE_ID)
            described = await handle.describe()
            assert described.schedule.action.task_queue == config.task_queue  # type: ignore
            await handle.trigger()
            await _wait_for(lambda: [a["status"] for a in alert_rows(engine)] == ["delivered"])
            (body,) = receiver.bodies("/json")
            assert body["rule"] == "review" and body["count"] == 1
            engine.dispose()
        finally:
            stop.set()
            await asyncio.wait_for(running, 60)
            await ensure_alerts_schedule(client, DLQConfig(home=str(tmp_path)))
