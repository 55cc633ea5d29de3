"""Operator inputs at the boundary (issue 15): signals, commands, lists and filters.

Each reproduction runs on SQLite and PostgreSQL against the real dev server
and worker. After every signal case the entry's workflow must have no failed
workflow task, still answer its query, and still take a resolve.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from dlq import (
    AsyncDLQService,
    DLQCommandPendingError,
    DLQConfig,
    DLQError,
    DLQInvalidInputError,
    DLQUnavailableError,
    new_entry_input,
    workflow_id_for,
)
from dlq._checks import OPERATOR_TEXT_LIMITS
from dlq._messages import EntryResult
from dlq._models import EntryState
from tests.support.api import api_client, auth
from tests.support.helpers import eventually, store, wait_status

pytestmark = pytest.mark.integration

SIGNALS = ("retry", "force_redrive", "resolve", "edit_data", "expire")


async def assert_entry_healthy(client: Client, dlq_id: str) -> EntryState:
    """No failed workflow task in the entry's history, and its query answers."""
    handle = client.get_workflow_handle(workflow_id_for(dlq_id))
    failed = [e.event_id async for e in handle.fetch_history_events()
              if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert failed == [], f"workflow task failed at events {failed}"
    return await asyncio.wait_for(handle.query("get_state", result_type=EntryState), 10)


async def rejections(client: Client, dlq_id: str, at_least: int) -> list[Any]:
    """The entry's signal_rejected audit events, once there are ``at_least``."""
    handle = client.get_workflow_handle(workflow_id_for(dlq_id))

    async def probe() -> list[Any]:
        state = await handle.query("get_state", result_type=EntryState)
        return [e for e in state.audit if e.action == "signal_rejected"]

    return await eventually(probe, lambda found: len(found) >= at_least, timeout=15)


# --- signals ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SIGNALS)
async def test_a_signal_with_two_inputs_is_recorded_not_a_wedge(
        service: AsyncDLQService, client: Client, name: str) -> None:
    dlq_id = await store(service, "t-ok")
    handle = client.get_workflow_handle(workflow_id_for(dlq_id))
    # What `temporal workflow signal --input '{}' --input '{}'` sends.
    await handle.signal(name, args=[{}, {}])
    [event] = await rejections(client, dlq_id, 1)
    assert event.details == {"signal": name}
    if name == "expire":
        assert "expires at" in event.reason  # not due: ignored whatever the input
    else:
        assert f"{name} takes at most one input, got 2" == event.reason
    state = await assert_entry_healthy(client, dlq_id)
    assert state.status == "pending"
    # Still takes commands, and SQL has the rejection too.
    out = await service.resolve_entry(dlq_id, notes="after a bad signal", actor="ops")
    assert out["current_status"] == "resolved"
    entry = await service.get_entry(dlq_id)
    assert "signal_rejected" in [e["action"] for e in entry["audit_events"]]


@pytest.mark.parametrize(("name", "payload", "reason"), [
    ("retry", {"actr": "ops"}, "unknown key(s) actr"),
    ("resolve", {"note": "typo"}, "unknown key(s) note"),
    ("force_redrive", {"actor": "ops", "reason": "r", "ticket": "T-1"}, "unknown key(s) ticket"),
    ("retry", ["a", "list"], "retry input must be a JSON object, got list"),
    ("retry", 0, "retry input must be a JSON object, got int"),
    ("force_redrive", {"actor": 5, "reason": "r"}, "invalid input: actor"),
    ("resolve", {"status": "bogus"}, "status must be one of resolved, discarded"),
    ("force_redrive", {"actor": "ops"}, "force_redrive requires a non-empty reason"),
    ("resolve", {"notes": "n" * (OPERATOR_TEXT_LIMITS["notes"] + 1)},
     f"notes is {OPERATOR_TEXT_LIMITS['notes'] + 1} characters long; the limit is 4000"),
    ("retry", {"actor": "a\x00b"}, "actor contains a NUL character"),
])
async def test_a_signal_that_cannot_apply_is_rejected_in_the_audit_trail(
        service: AsyncDLQService, client: Client, name: str, payload: Any,
        reason: str) -> None:
    dlq_id = await store(service, "t-fail")
    await client.get_workflow_handle(workflow_id_for(dlq_id)).signal(name, payload)
    [event] = await rejections(client, dlq_id, 1)
    assert reason in event.reason and event.details == {"signal": name}
    actor = payload.get("actor") if isinstance(payload, dict) else None
    assert event.actor == (actor if isinstance(actor, str) and "\x00" not in actor else None)
    state = await assert_entry_healthy(client, dlq_id)
    assert (state.status, state.retry_count) == ("pending", 0)
    # The audit query names the rejection too (what an operator reads).
    text = await client.get_workflow_handle(workflow_id_for(dlq_id)).query(
        "audit_text", result_type=str)
    assert "signal_rejected" in text


async def test_huge_notes_by_signal_never_break_get_state(service: AsyncDLQService,
                                                          client: Client) -> None:
    dlq_id = await store(service, "t-fail")
    handle = client.get_workflow_handle(workflow_id_for(dlq_id))
    await handle.signal("resolve", {"notes": "x" * 1_500_000, "actor": "ops"})
    [event] = await rejections(client, dlq_id, 1)
    assert event.actor == "ops" and "limit is 4000" in event.reason
    state = await assert_entry_healthy(client, dlq_id)
    assert state.status == "pending" and state.resolution_notes == ""


async def test_actor_and_actor_id_are_one_key_on_every_command(service: AsyncDLQService,
                                                               client: Client) -> None:
    dlq_id = await store(service, "t-fail")
    handle = client.get_workflow_handle(workflow_id_for(dlq_id))
    # One at a time: a retry sent while a replay runs is rejected (one attempt at a time).
    await handle.signal("retry", {"actor_id": "ivy"})
    await eventually(lambda: service.get_entry(dlq_id), lambda e: e["retry_count"] == 1
                     and e["status"] == "pending")
    await handle.signal("retry", {"actor": "jon"})
    await wait_status(service, dlq_id, "requires_review")
    await handle.signal("force_redrive", {"actor": "kim", "reason": "fixed"})
    await eventually(lambda: service.get_entry(dlq_id), lambda e: e["retry_count"] == 1
                     and e["status"] == "pending")
    out = await service.force_redrive_entry(dlq_id, actor="lee", reason="again")
    assert out["retry_count"] == 1
    entry = await service.resolve_entry(dlq_id, actor="max")
    assert entry["current_status"] == "resolved"
    detail = await service.get_entry(dlq_id)
    by_action = [(e["action"], e["actor"]) for e in detail["audit_events"]
                 if e["action"] in ("replay_started", "force_redrive", "resolve")]
    assert by_action == [("replay_started", "ivy"), ("replay_started", "jon"),
                         ("force_redrive", "kim"), ("force_redrive", "lee"), ("resolve", "max")]
    await assert_entry_healthy(client, dlq_id)


# --- operator text limits and errors of commands --------------------------------------


async def test_an_update_with_an_unknown_key_is_refused_by_name(service: AsyncDLQService,
                                                                 client: Client) -> None:
    # As `temporal workflow update execute --name resolve --input ...` sends it.
    from temporalio.client import WorkflowUpdateFailedError

    dlq_id = await store(service, "t-fail")
    handle = client.get_workflow_handle(workflow_id_for(dlq_id))
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update("resolve", {"note": "typo for notes"})
    assert "unknown key(s) note" in str(err.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update("retry", {"actor": "a", "actor_id": "b"})
    assert "give one of them" in str(err.value.cause)
    state = await assert_entry_healthy(client, dlq_id)
    assert state.status == "pending"  # nothing applied


async def test_operator_text_over_its_limit_is_refused_before_sending(
        service: AsyncDLQService, client: Client) -> None:
    dlq_id = await store(service, "t-fail")
    calls = [
        ("notes", service.resolve_entry(dlq_id, notes="n" * 1_500_000)),
        ("actor", service.retry_entry(dlq_id, actor="a" * 201)),
        ("reason", service.force_redrive_entry(dlq_id, actor_id="ops", reason="r" * 2001)),
        ("ticket_url", service.force_redrive_entry(dlq_id, actor_id="ops", reason="r",
                                                   ticket_url="https://t/" + "x" * 1000)),
        ("resolution_type", service.resolve_entry(dlq_id, resolution_type="t" * 101)),
        ("reason", service.edit_entry_data(dlq_id, request_data={"a": 1}, actor="ops",
                                           reason="bad\x00")),
    ]
    for field, call in calls:
        with pytest.raises(DLQInvalidInputError, match=f"^{field} "):
            await call
    state = await assert_entry_healthy(client, dlq_id)
    assert (state.status, state.version, state.retry_count) == ("pending", 1, 0)
    assert issubclass(DLQInvalidInputError, ValueError)


async def test_bogus_resolve_status_is_a_dlq_error(service: AsyncDLQService) -> None:
    dlq_id = await store(service, "t-fail")
    with pytest.raises(DLQError, match="status must be one of resolved, discarded") as err:
        await service.resolve_entry(dlq_id, status="bogus")
    assert isinstance(err.value, ValueError)  # also a ValueError, as every bad argument
    assert (await service.get_entry(dlq_id))["status"] == "pending"


def test_http_answers_400_for_operator_text_and_202_for_pending(config: DLQConfig) -> None:
    from dlq import DLQService

    with DLQService(config) as svc:
        slow = svc.store_failure("t-slow", "SLOW", recommended_action="manual_check",
                                 snapshot_data={"sleep": 1.5}).dlq_id
        other = svc.store_failure("t-fail", "F", recommended_action="manual_check").dlq_id
    with api_client(config, command_timeout=0.5) as http:
        bad = http.post(f"/api/entries/{other}/resolve", json={"notes": "n" * 5000},
                        headers=auth("olga"))
        assert bad.status_code == 400
        assert bad.json()["type"] == "DLQInvalidInputError"
        assert "notes is 5000 characters long" in bad.json()["error"]
        pending = http.post(f"/api/entries/{slow}/retry", headers=auth("olga"))
        assert pending.status_code == 202, pending.text
        body = pending.json()
        # accepted is True unless the machine is too loaded to accept it within 0.5 s.
        assert (body["pending"], body["id"], body["command"]) == (True, slow, "retry")
        assert isinstance(body["accepted"], bool) and body["update_id"]
        assert "pending, not failed" in body["error"]
        # The console says so as "pending", not as an error.
        import re

        from tests.support.api import TOKENS

        http.headers.pop("Authorization", None)
        assert http.post("/login", data={"token": TOKENS["olga"][1]},
                         follow_redirects=False).status_code == 303
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', http.get("/").text)
        assert csrf is not None
        with DLQService(config) as svc:
            slower = svc.store_failure("t-slow", "SLOW", recommended_action="manual_check",
                                       snapshot_data={"sleep": 1.5}).dlq_id
        page = http.post(f"/entries/{slower}/retry", data={"csrf_token": csrf.group(1)})
        assert page.status_code == 200
        assert 'class="flash flash-pending"' in page.text and "pending, not failed" in page.text


async def test_a_slow_replay_is_pending_not_failed(config: DLQConfig, client: Client) -> None:
    # The handler outlives the command's bound (it times out at replay_timeout, 2 s).
    service = AsyncDLQService(replace(config, command_timeout=1.5), client=client)
    dlq_id = await store(service, "t-slow", snapshot_data={"sleep": 3})
    with pytest.raises(DLQCommandPendingError) as err:
        await service.retry_entry(dlq_id, actor="ops")
    assert err.value.accepted and err.value.command == "retry" and err.value.entry_id == dlq_id
    assert "will be applied" in str(err.value)
    # It was applied: exactly one attempt, as the error said.
    entry = await eventually(lambda: service.get_entry(dlq_id),
                             lambda e: e["status"] != "replaying" and e["attempts"])
    assert entry["retry_count"] == 1 and len(entry["attempts"]) == 1
    await service.close()


async def test_batch_and_throttled_replays_count_a_slow_retry_as_pending_not_failed(
        config: DLQConfig, client: Client) -> None:
    from dlq import AdaptiveThrottle

    service = AsyncDLQService(replace(config, command_timeout=1.0), client=client)
    try:
        slow = await store(service, "t-slow", snapshot_data={"sleep": 2.5})
        # Other tests' t-slow entries may be replayable too: each is as slow.
        stats = await service.replay(domain="t-slow", batch_size=50)
        assert stats.pending >= 1 and (stats.failed, stats.success) == (0, 0), stats
        assert any(e.startswith(slow) and "pending, not failed" in e for e in stats.errors)
        # Sent means applied: the one attempt runs.
        entry = await eventually(lambda: service.get_entry(slow),
                                 lambda e: e["status"] != "replaying" and e["attempts"])
        assert entry["retry_count"] == 1
        again = await store(service, "t-slow", snapshot_data={"sleep": 2.5})
        one = await service.replay_throttle_aware(again, AdaptiveThrottle())
        assert one.pending and not one.success, one
        # A bulk redrive's page reports it the same way (its own count, not "failed").
        from dlq._messages import BulkPageInput
        from dlq.activities.bulk import BulkActivities

        third = await store(service, "t-slow", snapshot_data={"sleep": 2.5})
        errors: list[str] = []
        page = BulkPageInput(bulk_id="b-pending", after="", limit=1, actor_id="ops",
                             reason="test")
        assert await BulkActivities(service)._replay(third, page, errors) == "pending"
        assert errors and "pending, not failed" in errors[0]
    finally:
        await service.close()


async def test_a_resolve_while_sql_is_locked_is_pending_then_applied(
        config: DLQConfig, client: Client, backend: str) -> None:
    """Issue 15, item 8: SQL locked; the resolve is applied, so it must not say it failed."""
    # Past the 5 s of the local persist, the workflow falls back to a regular
    # activity and the accepted update reaches history; the answer waits for SQL.
    service = AsyncDLQService(replace(config, command_timeout=9.0), client=client)
    dlq_id = await store(service, "t-fail")
    release = asyncio.Event()

    def hold_lock() -> None:
        if backend == "sqlite":
            import sqlite3

            conn = sqlite3.connect(config.database_url.removeprefix("sqlite:///"),
                                   isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
        else:
            import psycopg

            conn = psycopg.connect(config.database_url.replace("+psycopg", ""))
            conn.execute("LOCK TABLE dlq_entries IN ACCESS EXCLUSIVE MODE")
        locked.set()
        while not release.is_set():
            time.sleep(0.05)
        conn.rollback() if backend != "sqlite" else conn.execute("ROLLBACK")
        conn.close()

    import threading
    import time

    locked = threading.Event()
    holder = asyncio.ensure_future(asyncio.to_thread(hold_lock))
    await asyncio.to_thread(locked.wait, 10)
    try:
        with pytest.raises(DLQCommandPendingError) as err:
            await service.resolve_entry(dlq_id, notes="while locked", actor="ops")
        assert err.value.accepted and "SQL is behind" in str(err.value)
    finally:
        release.set()
        await holder
    entry = await wait_status(service, dlq_id, "resolved", timeout=40)
    assert entry["resolution_notes"] == "while locked"
    await assert_entry_healthy(client, dlq_id)
    await service.close()


async def test_no_worker_means_pending_and_applied_when_a_worker_comes(
        config: DLQConfig, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # An entry whose workflow runs on a task queue no worker polls (yet).
    queue = f"{config.task_queue}-later"
    entry = new_entry_input("t-fail", "F", recommended_action="manual_check", config=config)
    await client.start_workflow("DLQEntryWorkflow", entry, id=workflow_id_for(entry.dlq_id),
                                task_queue=queue)
    service = AsyncDLQService(replace(config, command_timeout=1.0, task_queue=queue),
                              client=client)
    with pytest.raises(DLQCommandPendingError) as err:
        await service.resolve_entry(entry.dlq_id, notes="no worker", actor="ops")
    assert not err.value.accepted and "no DLQ worker took it" in str(err.value)
    out = await service.resolve_entries_batch([entry.dlq_id], notes="no worker", actor="ops")
    assert (out["resolved"], out["failed"], out["pending"]) == (0, 0, 1)
    assert out["results"][0]["error_type"] == "DLQCommandPendingError"
    # The command line says the same, apart from what failed.
    cli_env(monkeypatch, replace(config, task_queue=queue), DLQ_COMMAND_TIMEOUT="1")
    from typer.testing import CliRunner

    from dlq._cli import app

    batch = await asyncio.to_thread(CliRunner().invoke, app, ["resolve", entry.dlq_id, "nope"])
    assert batch.exit_code == 3, batch.output
    assert "1 of 2 entries were not resolved; 1 pending: sent, not confirmed" in batch.output
    # A worker for that queue comes: the first resolve is applied, the second rejected.
    from dlq._db import create_db_engine, migrate
    from dlq._worker import build_worker

    engine = create_db_engine(config.database_url)
    migrate(engine)
    async with build_worker(client, task_queue=queue, engine=engine,
                            config=replace(config, task_queue=queue)):
        result = await asyncio.wait_for(
            client.get_workflow_handle(workflow_id_for(entry.dlq_id),
                                       result_type=EntryResult).result(), 30)
    assert result.status == "resolved" and result.resolution_notes == "no worker"
    engine.dispose()
    await service.close()


async def test_unreachable_temporal_is_dlq_unavailable_in_batch_results(
        config: DLQConfig) -> None:
    service = AsyncDLQService(replace(config, temporal_address="127.0.0.1:9", store_timeout=1.0))
    with pytest.raises(DLQUnavailableError):
        await service.resolve_entry("00000000-0000-4000-8000-000000000000")
    out = await service.resolve_entries_batch(["00000000-0000-4000-8000-000000000000"])
    assert out["results"][0]["error_type"] == "DLQUnavailableError"
    assert "_Unreachable" not in str(out)
    await service.close()


# --- batches, lists, filters and maintenance arguments --------------------------------


async def test_batch_resolve_reports_bad_ids_and_resolves_the_good_one(
        service: AsyncDLQService) -> None:
    good = await store(service, "t-fail")
    out = await service.resolve_entries_batch([None, 5, "", "a\x00b", good], actor="ops")  # type: ignore[list-item]
    assert (out["total"], out["resolved"], out["failed"], out["pending"]) == (5, 1, 4, 0)
    by_id = {r["id"]: r for r in out["results"]}
    assert by_id[good]["success"] and by_id[good]["current_status"] == "resolved"
    for bad in ("None", "5", "", "a\x00b"):
        assert by_id[bad]["error_type"] == "ValueError", by_id[bad]
    with pytest.raises(ValueError, match="pks must be a list of entry ids, got str"):
        await service.resolve_entries_batch("abc")  # type: ignore[arg-type]


def _created(year: int, offset_hours: int) -> datetime:
    from datetime import timezone

    return datetime(year, 1, 1, tzinfo=timezone(timedelta(hours=offset_hours)))


BAD_CALLS: list[tuple[str, Any, str]] = [
    ("user_id 2**70", lambda s: s.list_entries({"user_id": 2**70}), "filter 'user_id'"),
    ("created_before year 1 +14:00",
     lambda s: s.list_entries({"created_before": _created(1, 14)}), "filter 'created_before'"),
    ("created_after year 9999 -14:00",
     lambda s: s.list_entries({"created_after": "9999-12-31T23:00:00-14:00"}),
     "filter 'created_after'"),
    ("error_message 50 KB", lambda s: s.list_entries({"error_message": "é" * 50_000}),
     "filter 'error_message'"),
    ("NUL in a filter", lambda s: s.list_entries({"entity_id": "a\x00"}), "filter 'entity_id'"),
    ("NUL in error_message", lambda s: s.iter_entries({"error_message": "\x00"}),
     "filter 'error_message'"),
    ("NUL in an id", lambda s: s.get_entry("ab\x00cd"), "pk contains a NUL"),
    ("NUL in an id by id", lambda s: s.get_entry_by_id("ab\x00cd"), "dlq_id contains a NUL"),
    ("domain list", lambda s: s.get_pending_entries(domain=["a", "b"]), "domain must be a string"),
    ("failure_type int", lambda s: s.get_replayable_entries(failure_type=5),
     "failure_type must be a string"),
    ("limit 10**30", lambda s: s.get_pending_entries(limit=10**30), "limit must be within"),
    ("expired limit 10**30", lambda s: s.get_expired_entries(limit=10**30),
     "limit must be within"),
    ("archive 10**9 days", lambda s: s.archive_old_entries(10**9), "older_than_days"),
    ("count archived 10**9 days", lambda s: s.count_archived_older_than(10**9),
     "older_than_days"),
    ("force_redrive actor_id 5",
     lambda s: s.force_redrive_entry("00000000-0000-4000-8000-000000000000", actor_id=5,
                                     reason="r"), "actor_id must be a string"),
    ("facets domain 5", lambda s: s.get_facet_counts(domain=5), "domain must be a string"),
    ("facets status 5", lambda s: s.get_facet_counts(status=5), "status must be a string"),
    ("purge ids abc", lambda s: s.purge_archived(ids="abc"), "ids must be a list"),
    ("purge ids [None]", lambda s: s.purge_archived(ids=[None]), "ids[0]"),
    ("bulk rate nan", lambda s: s.bulk_replay(rate_per_second=float("nan"), actor_id="a",
                                              reason="r"), "rate_per_second"),
    ("bulk rate inf", lambda s: s.bulk_replay(rate_per_second=float("inf"), actor_id="a",
                                              reason="r"), "rate_per_second"),
    ("bulk rate negative", lambda s: s.bulk_replay(rate_per_second=-1.0, actor_id="a",
                                                   reason="r"), "rate_per_second"),
    ("bulk canary nan", lambda s: s.bulk_replay(canary_min_success=float("nan"), actor_id="a",
                                                reason="r"), "canary_min_success"),
]


@pytest.mark.parametrize(("call", "named"), [(c, n) for _, c, n in BAD_CALLS],
                         ids=[i for i, _, _ in BAD_CALLS])
async def test_bad_arguments_are_value_errors_naming_the_key(
        service: AsyncDLQService, call: Any, named: str) -> None:
    before = await service.get_stats()
    with pytest.raises(ValueError) as err:
        await call(service)
    assert named in str(err.value)
    after = await service.get_stats()
    assert after["by_status"] == before["by_status"]  # nothing written


async def test_a_page_beyond_the_last_is_empty(service: AsyncDLQService) -> None:
    await store(service, "t-fail")
    out = await service.list_entries(page=10**18)
    assert out["results"] == [] and out["page"] == 10**18 and out["total_count"] >= 1
    assert not out["has_next"] and out["has_previous"]


async def test_non_ascii_error_message_search_ignores_case(service: AsyncDLQService) -> None:
    marker = f"échec de la connexion {datetime.now(UTC).timestamp()}"
    result = await service.store_failure("t-fail", "F", recommended_action="manual_check",
                                         error_message=f"Le paiement: {marker}")
    for needle in (marker.upper(), marker, "ÉCHEC DE LA CONNEXION " + marker.split()[-1]):
        page = await service.list_entries({"error_message": needle})
        assert [r["id"] for r in page["results"]] == [result.dlq_id], needle
        walked = await service.iter_entries({"error_message": needle})
        assert [r["id"] for r in walked["results"]] == [result.dlq_id], needle


# --- the command line -------------------------------------------------------------------


def cli_env(monkeypatch: pytest.MonkeyPatch, config: DLQConfig, **extra: str) -> None:
    """The ``dlq`` command's environment: this config, nothing else from DLQ_*."""
    import os

    for name in list(os.environ):
        if name.startswith("DLQ_"):
            monkeypatch.delenv(name)
    for key in ("temporal_address", "task_queue", "database_url", "outbox_path"):
        monkeypatch.setenv(f"DLQ_{key.upper()}", str(getattr(config, key)))
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def test_cli_exit_codes_for_operator_input_and_pending(config: DLQConfig,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dlq import DLQService
    from dlq._cli import app
    from dlq._cli._common import BAD_INPUT, UNAVAILABLE

    cli_env(monkeypatch, config, DLQ_COMMAND_TIMEOUT="0.5")
    with DLQService(config) as svc:
        pk = svc.store_failure("t-fail", "F", recommended_action="manual_check").dlq_id
        slow = svc.store_failure("t-slow", "SLOW", recommended_action="manual_check",
                                 snapshot_data={"sleep": 1.5}).dlq_id
    runner = CliRunner()
    for args, line in [
        (["resolve", pk, "--notes", "n" * 5000],
         "DLQInvalidInputError: notes is 5000 characters long; the limit is 4000"),
        (["resolve", pk, "--status", "bogus"], "status must be one of resolved, discarded"),
        (["force-redrive", pk, "--reason", "r" * 2001], "reason is 2001 characters long"),
    ]:
        out = runner.invoke(app, args)
        assert out.exit_code == BAD_INPUT, out.output
        assert line in out.output and "Traceback" not in out.output
    out = runner.invoke(app, ["retry", slow])
    assert out.exit_code == UNAVAILABLE, out.output
    assert "pending, not failed" in out.output


async def test_unreachable_sql_is_dlq_unavailable_per_id(config: DLQConfig,
                                                         client: Client) -> None:
    # Temporal answers "no such workflow"; SQL, which would say whether the entry
    # ever existed, is down: unavailable, not a driver error, and not the whole batch.
    service = AsyncDLQService(
        replace(config, database_url="postgresql+psycopg://dlq@127.0.0.1:1/nowhere"),
        client=client)
    missing = "00000000-0000-4000-8000-00000000dead"
    with pytest.raises(DLQUnavailableError, match="cannot reach the SQL read model"):
        await service.retry_entry(missing)
    out = await service.resolve_entries_batch([missing, 5])  # type: ignore[list-item]
    assert [r["error_type"] for r in out["results"]] == ["DLQUnavailableError", "ValueError"]
    await service.close()


async def test_ids_with_nul_are_value_errors_everywhere(service: AsyncDLQService) -> None:
    for call, named in [
        (service.resolve_entry_id("dlq-dedup-ab\x00"), "id contains a NUL"),
        (service.find_purged_entry("a\x00"), "entry_id contains a NUL"),
        (service.get_purge("a\x00"), "purge_id contains a NUL"),
        (service.retry_entry("a\x00"), "pk contains a NUL"),
    ]:
        with pytest.raises(ValueError, match=named):
            await call


@pytest.mark.parametrize("name", ["retry", "force_redrive", "resolve", "edit_data"])
@pytest.mark.parametrize("args", [[{}, {}], [{"actor": 5}], ["text"], [{"actor": "a\x00"}]],
                         ids=["two", "wrong-type", "not-object", "nul"])
async def test_a_bad_update_is_refused_not_a_wedge(
        service: AsyncDLQService, client: Client, name: str, args: list[Any]) -> None:
    from temporalio.client import WorkflowUpdateFailedError

    dlq_id = await store(service, "t-fail")
    handle = client.get_workflow_handle(workflow_id_for(dlq_id))
    with pytest.raises(WorkflowUpdateFailedError):
        await asyncio.wait_for(handle.execute_update(name, args=args), 15)
    state = await assert_entry_healthy(client, dlq_id)
    assert (state.status, state.version) == ("pending", 1)
