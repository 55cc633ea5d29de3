"""The ``dlq`` command line: every command, the exit-code table, and running from any folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlq import DLQConfig, DLQService, workflow_id_for
from dlq._cli import app
from dlq._cli._common import BAD_INPUT, CONFLICT, NOT_FOUND, REPLAY_FAILED, UNAVAILABLE
from dlq._temporal import dedup_workflow_id

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(config: DLQConfig, monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.startswith("DLQ_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DLQ_TEMPORAL_ADDRESS", config.temporal_address)
    monkeypatch.setenv("DLQ_TASK_QUEUE", config.task_queue)
    monkeypatch.setenv("DLQ_DATABASE_URL", config.database_url)
    monkeypatch.setenv("DLQ_OUTBOX_PATH", config.outbox_path)
    monkeypatch.setenv("USER", "cli-tester")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


def store(config: DLQConfig, domain: str, **kw) -> str:
    with DLQService(config) as svc:
        result = svc.store_failure(domain, kw.pop("failure_type", "PG_TIMEOUT"),
                                   recommended_action="manual_check",
                                   error_message="original failure", **kw)
    assert result.success
    return result.dlq_id


def one_line_error(out) -> str:
    lines = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out.output
    assert "Traceback" not in out.output
    return lines[0]


def test_entry_commands_and_their_exit_codes(cli, config: DLQConfig) -> None:
    pk = store(config, "t-fail")
    failed = cli("retry", workflow_id_for(pk))
    assert failed.exit_code == REPLAY_FAILED, failed.output
    assert "replay failed" in one_line_error(failed)
    cli("retry", pk)
    capped = cli("retry", pk)
    assert capped.exit_code == CONFLICT and "exhausted" in one_line_error(capped)
    no_reason = cli("force-redrive", pk, "--reason", " ")
    assert no_reason.exit_code == BAD_INPUT and "reason" in one_line_error(no_reason)
    edited = cli("edit", pk, "--set", "snapshot_data.fixed=true", "--set",
                 "request_data.note=by cli", "--reason", "test")
    assert edited.exit_code == 0, edited.output
    assert "snapshot_data.fixed" in edited.output
    forced = cli("force-redrive", pk, "--reason", "fixed", "--ticket-url", "https://t/9")
    assert forced.exit_code == REPLAY_FAILED  # t-fail always fails
    detail = json.loads(cli("show", pk, "--json").output)
    actions = {e["action"]: e for e in detail["audit_events"]}
    assert actions["replay_started"]["actor"] == "cli-tester"  # the OS user by default
    assert actions["edit_data"]["actor"] == "cli-tester"
    assert actions["force_redrive"]["ticket_url"] == "https://t/9"
    assert detail["snapshot_data"]["fixed"] is True and detail["original_data"]
    resolved = cli("resolve", pk, "--notes", "cli", "--actor", "alice")
    assert resolved.exit_code == 0
    assert json.loads(cli("show", pk, "--json").output)["audit_events"][-1]["actor"] == "alice"
    missing = cli("show", "nope")
    assert missing.exit_code == NOT_FOUND and "nope" in one_line_error(missing)
    other = store(config, "payment")
    batch = cli("resolve", other, "nope")
    assert batch.exit_code == NOT_FOUND and "1 of 2" in one_line_error(batch)
    bad = cli("edit", other)
    assert bad.exit_code == BAD_INPUT
    created = cli("create-test-entry", "--domain", "t-ok")
    assert created.exit_code == 0, created.output


def test_show_is_readable_at_80_columns(cli, config: DLQConfig,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    pk = store(config, "t-fail")
    cli("retry", pk)
    out = cli("show", pk)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert lines[1].startswith("pending  retries 1/2")  # status and budget first
    entry = json.loads(cli("show", pk, "--json").output)
    assert entry["created_at"] in out.output  # full timestamps, not cut
    trail = out.output.index("audit trail")
    positions = [out.output.index(f"#{e['seq']} {e['at']}", trail)
                 for e in entry["audit_events"]]
    assert positions == sorted(positions)  # the audit trail in order


def test_list_stats_facets_sla(cli, config: DLQConfig) -> None:
    kind = f"C{uuid.uuid4().hex[:8]}"
    ids = [store(config, "t-ok", failure_type=kind) for _ in range(3)]
    listed = cli("list", "--failure-type", kind, "--json")
    assert listed.exit_code == 0
    assert {r["id"] for r in json.loads(listed.output)["results"]} == set(ids)
    table = cli("list", "--failure-type", kind, "--status", "pending", "--page-size", "2")
    assert table.exit_code == 0 and "3 entries" in table.output and "--page 2" in table.output
    assert cli("list", "--status", "bogus").exit_code == BAD_INPUT
    stats = json.loads(cli("stats", "--json").output)
    assert stats["by_domain"]["t-ok"] >= 3
    assert cli("stats").exit_code == 0
    facets = json.loads(cli("facets", "--domain", "t-ok", "--json").output)
    assert facets["by_status"]["pending"] >= 3
    assert "pending" in cli("facets").output
    assert isinstance(json.loads(cli("sla", "--json").output), list)


def test_maintenance_commands(cli, config: DLQConfig) -> None:
    pk = store(config, "payment")
    cli("resolve", pk)
    stats = json.loads(cli("cleanup-stats", "--json").output)
    assert stats["closed"] >= 1
    dry = cli("archive", "--older-than-days", "0", "--dry-run")
    assert dry.exit_code == 0 and "would be archived" in dry.output
    assert cli("archive", "--older-than-days", "0", "--actor", "ops").exit_code == 0
    refused = cli("purge")
    assert refused.exit_code == BAD_INPUT and "never takes everything" in one_line_error(refused)
    assert "1 archived entries would be purged" in cli("purge", "--id", pk, "--dry-run").output
    purged = cli("purge", "--id", workflow_id_for(pk), "--reason", "cli test")
    assert purged.exit_code == 0 and "1 archived entries purged" in purged.output
    record = json.loads(cli("purges", "--json").output)
    mine = next(r for r in record if r["reason"] == "cli test")
    assert (mine["actor"], mine["count"]) == ("cli-tester", 1)
    detail = json.loads(cli("purges", mine["purge_id"], "--json").output)
    assert [e["id"] for e in detail["entries"]] == [pk]
    gone = cli("show", pk)
    assert gone.exit_code == NOT_FOUND and "purged" in one_line_error(gone)
    assert cli("purges", "nope").exit_code == NOT_FOUND


def test_redrive_ids_and_errors(cli, config: DLQConfig) -> None:
    kind = f"D{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        store(config, "t-ok", failure_type=kind)
    started = cli("redrive", "--failure-type", kind, "--reason", "cli")
    assert started.exit_code == 0, started.output
    bulk_id = started.output.split("bulk id ")[1].split(")")[0]
    deadline = time.monotonic() + 30
    while True:
        status = json.loads(cli("redrive-status", bulk_id, "--json").output)
        if status["status"] == "completed" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert (status["status"], status["succeeded"]) == ("completed", 2)
    assert cli("redrive-status", f"dlq-bulk-{bulk_id}").exit_code == 0
    ended = cli("redrive-control", bulk_id, "cancel")
    assert ended.exit_code == CONFLICT and "already ended" in one_line_error(ended)
    unknown = cli("redrive-status", "feedfacefeedfacefeedfacefeedface")
    assert unknown.exit_code == NOT_FOUND and "no bulk redrive" in one_line_error(unknown)
    assert cli("redrive-control", bulk_id, "stop").exit_code == BAD_INPUT


def test_dedup_workflow_id_works_everywhere(cli, config: DLQConfig) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    pk = store(config, "t-ok", failure_type="DUP", dedup_key=key)
    wid = dedup_workflow_id("t-ok", "DUP", key)
    assert json.loads(cli("show", wid, "--json").output)["id"] == pk
    assert cli("retry", wid).exit_code == 0


def _dlq(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlq", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_from_another_folder_outages_and_debug(base_configs: dict[str, DLQConfig], worker,
                                               tmp_path: Path, tmp_root: Path) -> None:
    # DLQ_HOME holds a SQLite read model: the session's SQLite one.
    config = base_configs["sqlite"]
    pk = store(config, "t-ok")
    base = {k: v for k, v in os.environ.items() if not k.startswith("DLQ_")}
    # The session's SQLite read model is DLQ_HOME/dlq.db: no database URL needed.
    env = {**base, "DLQ_HOME": str(tmp_root), "DLQ_TEMPORAL_ADDRESS": config.temporal_address,
           "DLQ_TASK_QUEUE": config.task_queue}
    shown = _dlq(["show", pk, "--json"], cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == pk
    empty = {**env, "DLQ_HOME": str(tmp_path / "nowhere")}
    no_schema = _dlq(["list"], cwd=tmp_path, env=empty)
    assert no_schema.returncode == UNAVAILABLE, no_schema.stderr
    assert "no DLQ schema" in no_schema.stderr and "Traceback" not in no_schema.stderr
    assert len(no_schema.stderr.strip().splitlines()) == 1
    db_down = {**env, "DLQ_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/none"}
    migrate = _dlq(["migrate"], cwd=tmp_path, env=db_down)
    assert migrate.returncode == UNAVAILABLE and "cannot reach" in migrate.stderr
    assert "Traceback" not in migrate.stderr
    temporal_down = {**env, "DLQ_TEMPORAL_ADDRESS": "127.0.0.1:9", "DLQ_STORE_TIMEOUT": "2"}
    retry = _dlq(["retry", pk], cwd=tmp_path, env=temporal_down)
    assert retry.returncode == UNAVAILABLE and "127.0.0.1:9" in retry.stderr
    assert "Traceback" not in retry.stderr
    debug = _dlq(["--debug", "list"], cwd=tmp_path, env=empty)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_serve_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    import asyncio
    import urllib.request

    from dlq._procs import free_port
    from dlq._serve_process import ServeProcess

    base = {k: v for k, v in os.environ.items() if not k.startswith("DLQ_")}
    env = {**base, "DLQ_HOME": str(tmp_path / "home")}
    assert _dlq(["migrate"], cwd=tmp_path, env=env).returncode == 0
    refused = _dlq(["serve", "--port", str(free_port())], cwd=tmp_path, env=env)
    assert refused.returncode == BAD_INPUT and "DLQ_API_TOKENS" in refused.stderr
    public = _dlq(["serve", "--insecure-local", "--host", "0.0.0.0"], cwd=tmp_path, env=env)
    assert public.returncode == BAD_INPUT and "127.0.0.1 only" in public.stderr
    bad_tokens = _dlq(["serve"], cwd=tmp_path, env={**env, "DLQ_API_TOKENS": "a:root:x"})
    assert bad_tokens.returncode == BAD_INPUT and "Traceback" not in bad_tokens.stderr
    serve = ServeProcess(port=free_port(), insecure_local=True, env=env,
                         log_path=tmp_path / "serve.log")
    serve.start()
    try:
        asyncio.run(serve.wait_ready(60))
        with urllib.request.urlopen(f"{serve.url}/api/stats") as answer:
            assert json.loads(answer.read())["total"] >= 0
    finally:
        serve.stop(10)
