"""The `temporal` CLI, the blocking API and services that start entries themselves."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

import dlq
from dlq import DLQConfig, DLQService, workflow_id_for
from dlq._messages import EntryInput
from dlq._procs import BIN
from tests.support.handlers import calls
from tests.support.helpers import eventually, store, wait_status

pytestmark = pytest.mark.integration


def temporal_cli(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "temporal"), *args, "--address", address],
                          capture_output=True, text=True, timeout=60, check=True)


async def test_cli_signal_without_input_changes_the_sql_row(service: dlq.AsyncDLQService,
                                                            temporal_address: str) -> None:
    dlq_id = await store(service, "t-ok")
    await asyncio.to_thread(temporal_cli, temporal_address, "workflow", "signal",
                            "--workflow-id", workflow_id_for(dlq_id), "--name", "retry")
    entry = await wait_status(service, dlq_id, "resolved")
    assert entry["attempts"][0]["trigger"] == "manual"
    assert calls[dlq_id] == 1


async def test_cli_signal_with_json_input_and_query(service: dlq.AsyncDLQService,
                                                    temporal_address: str) -> None:
    dlq_id = await store(service, "payment")
    wid = workflow_id_for(dlq_id)
    await asyncio.to_thread(temporal_cli, temporal_address, "workflow", "signal",
                            "--workflow-id", wid, "--name", "resolve",
                            "--input", '{"notes": "fixed by hand", "actor": "ops"}')
    entry = await wait_status(service, dlq_id, "resolved")
    assert entry["resolution_notes"] == "fixed by hand"
    assert entry["audit_events"][-1]["actor"] == "ops"
    out = await asyncio.to_thread(temporal_cli, temporal_address, "workflow", "query",
                                  "--workflow-id", wid, "--name", "get_state", "--output", "json")
    assert json.loads(out.stdout)["queryResult"][0]["status"] == "resolved"


def test_blocking_service_from_plain_code(config: DLQConfig) -> None:
    with DLQService(config) as svc:
        result = svc.store_failure("t-fail", "PG_TIMEOUT", error_message="declined",
                                   recommended_action="manual_check")
        assert result.success
        out = svc.retry_entry(result.dlq_id)
        assert (out["success"], out["status"], out["retry_count"]) == (False, "pending", 1)
        entry = svc.get_entry(result.dlq_id)
        assert entry["retry_count"] == 1 and entry["last_error"].startswith("RuntimeError")
        test_entry = svc.create_test_entry("checkout", "SYNTHETIC", created_by="qa")
        assert test_entry["success"] and json.dumps(test_entry)
        stored = svc.get_entry_by_id(test_entry["dlq_id"])
        assert stored.domain == "checkout" and stored.metadata["created_by"] == "qa"
        assert stored.metadata["test_entry"] is True
        with pytest.raises(dlq.DLQEntryNotFoundError):
            svc.resolve_entry("missing")


def test_store_to_dlq_uses_the_environment(config: DLQConfig,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_TEMPORAL_ADDRESS", config.temporal_address)
    monkeypatch.setenv("DLQ_TASK_QUEUE", config.task_queue)
    monkeypatch.setenv("DLQ_DATABASE_URL", config.database_url)
    dlq.reset_dlq_service()
    try:
        result = dlq.store_to_dlq("webhook", "HTTP_410", entity_type="webhook",
                                  entity_id="wh-1", error_message="Gone")
        assert result.success
        assert dlq.get_dlq_service().get_entry(result.dlq_id)["domain"] == "webhook"
        assert dlq.get_dlq_service() is dlq.get_dlq_service()
    finally:
        dlq.reset_dlq_service()


async def test_service_starts_entry_from_its_own_client(service: dlq.AsyncDLQService,
                                                        client: Client) -> None:
    """A service that already uses Temporal starts the entry workflow itself."""
    entry = dlq.new_entry_input("payment", "PG_TIMEOUT", entity_type="order", entity_id="o-9",
                                error_message="timeout", config=service.config)
    await client.start_workflow(dlq.ENTRY_WORKFLOW, entry, id=workflow_id_for(entry.dlq_id),
                                task_queue=service.config.task_queue)
    stored = await wait_status(service, entry.dlq_id, "pending")
    assert stored["entity_id"] == "o-9"


@workflow.defn(sandboxed=False)
class CheckoutWorkflow:
    """A producer's own workflow that hands a failure to the DLQ as a child workflow."""

    @workflow.run
    async def run(self, args: list[str]) -> str:
        dlq_queue, dlq_id = args
        entry = EntryInput(dlq_id=dlq_id, domain="inventory", failure_type="STOCK_DECREMENT",
                           error_message="warehouse API 503", recommended_action="manual_check")
        await workflow.start_child_workflow(
            dlq.ENTRY_WORKFLOW, entry, id=workflow_id_for(dlq_id), task_queue=dlq_queue,
            # The entry must outlive the producer's workflow.
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )
        return dlq_id


async def test_service_starts_entry_from_its_own_workflow(service: dlq.AsyncDLQService,
                                                          client: Client) -> None:
    queue = f"producer-{uuid.uuid4().hex[:6]}"
    dlq_id = dlq.new_dlq_id()
    async with Worker(client, task_queue=queue, workflows=[CheckoutWorkflow]):
        assert await client.execute_workflow(
            CheckoutWorkflow.run, [service.config.task_queue, dlq_id],
            id=f"checkout-{dlq_id}", task_queue=queue) == dlq_id
    stored = await wait_status(service, dlq_id, "pending")
    assert stored["domain"] == "inventory"
    # The parent closed; the abandoned entry lives on and takes commands.
    assert (await service.resolve_entry(dlq_id))["current_status"] == "resolved"


def _cli_env(config: DLQConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_TEMPORAL_ADDRESS", config.temporal_address)
    monkeypatch.setenv("DLQ_TASK_QUEUE", config.task_queue)
    monkeypatch.setenv("DLQ_DATABASE_URL", config.database_url)


def test_dlq_command_line(config: DLQConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dlq._cli import app

    _cli_env(config, monkeypatch)
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    created = runner.invoke(app, ["create-test-entry", "--domain", "t-fail"])
    assert created.exit_code == 0, created.output
    with DLQService(config) as svc:
        a = svc.store_failure("t-fail", "X", recommended_action="manual_check").dlq_id
        b = svc.store_failure("payment", "X", recommended_action="manual_check").dlq_id
    out = runner.invoke(app, ["retry", a])
    assert out.exit_code == 5 and "pending" in out.output  # the replay ran and failed
    runner.invoke(app, ["retry", a])
    conflict = runner.invoke(app, ["retry", a])
    assert conflict.exit_code == 9 and "DLQStateConflictError" in conflict.output
    missing = runner.invoke(app, ["force-redrive", a, "--actor", "ops", "--reason", " "])
    assert missing.exit_code == 2 and "reason" in missing.output
    forced = runner.invoke(app, ["force-redrive", a, "--actor", "ops", "--reason", "fixed"])
    assert forced.exit_code == 5, forced.output  # t-fail fails again
    shown = runner.invoke(app, ["show", a, "--json"])
    detail = json.loads(shown.output)
    assert [e["action"] for e in detail["audit_events"]].count("force_redrive") == 1
    batch = runner.invoke(app, ["resolve", b, "nope", "--notes", "cli"])
    assert batch.exit_code == 4 and "DLQEntryNotFoundError" in batch.output
    assert runner.invoke(app, ["show", "nope"]).exit_code == 4


async def test_current_details_follow_transitions(service: dlq.AsyncDLQService,
                                                  client: Client) -> None:
    from temporalio.api.sdk.v1 import WorkflowMetadata

    dlq_id = await store(service, "t-fail")
    await service.retry_entry(dlq_id)
    meta = await client.get_workflow_handle(workflow_id_for(dlq_id)).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert meta.current_details.startswith("### pending · retries 1 of 2 used")
    last_error = next(line for line in meta.current_details.splitlines()
                      if line.startswith("**Last error** (attempt 1, manual, "))
    assert "): RuntimeError\\: downstream refused" in last_error


async def test_cli_signal_edits_data_and_bad_edits_change_nothing(
        service: dlq.AsyncDLQService, temporal_address: str) -> None:
    dlq_id = await store(service, "payment", request_data={"amount": 1})
    wid = workflow_id_for(dlq_id)
    for bad in ('{"request_data": {"amount": 2}}',  # no actor: ignored (and audited)
                '{"actor": "ops", "metadata": {"x": 1}}'):  # not editable: ignored (audited)
        await asyncio.to_thread(temporal_cli, temporal_address, "workflow", "signal",
                                "--workflow-id", wid, "--name", "edit_data", "--input", bad)
    await asyncio.to_thread(temporal_cli, temporal_address, "workflow", "signal",
                            "--workflow-id", wid, "--name", "edit_data", "--input",
                            '{"actor": "ops", "request_data": {"amount": 3}}')
    entry = await eventually(lambda: service.get_entry(dlq_id), lambda e: e["data_edits"] == 1)
    assert entry["request_data"] == {"amount": 3}
    assert entry["original_data"]["request_data"] == {"amount": 1}
    # The bad edits changed nothing but the audit trail, which names why.
    assert [e["action"] for e in entry["audit_events"]] == [
        "created", "signal_rejected", "signal_rejected", "edit_data"]
    reasons = [e["reason"] for e in entry["audit_events"] if e["action"] == "signal_rejected"]
    assert "requires an actor" in reasons[0] and "unknown key(s) metadata" in reasons[1]
