"""Redaction end to end: seeded secrets never reach any sink, on SQLite and PostgreSQL.

Entries full of distinct secrets (passwords, bearer tokens, card numbers, API
keys under secret-named keys, JWTs, PEM keys) are stored through sync, async
(outbox and relay) and deduplicated stores; a replay handler fails with a
message quoting more secrets; entries are replayed automatically, force-redriven
and resolved with notes holding secrets. Then the bytes of every sink are
scanned: the SQL database file or a ``pg_dump``, the Temporal histories
(``temporal workflow show -o json``, payloads decoded), ``describe`` and the
``get_state`` query, the outbox file, every log record of the process (the
worker runs in it) and ``dlq show``. A value on the allow list reaches the
handler unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from typer.testing import CliRunner

import dlq
from dlq import AsyncDLQService, DLQConfig, workflow_id_for
from dlq._cli import app
from tests.support.api import TOKENS, api_client, auth
from tests.support.helpers import eventually, wait_status, with_config
from tests.support.sinks import LogCapture, Secrets, capture_all_logs, sql_bytes, temporal_json

pytestmark = pytest.mark.integration

DOMAIN = "t-vault"
ALLOWED_PATH = "request_data.credentials.api_key"
# What the handler saw, by entity id, and the secrets it quotes when it fails.
received: dict[str, dict[str, Any]] = {}
handler_secrets: dict[str, str] = {}
_lock = threading.Lock()


@dlq.replay_handler(DOMAIN)
def leaky_handler(entry: dlq.FailedOperationData) -> None:
    """Fails like a careless downstream: its message quotes credentials."""
    with _lock:
        received[entry.entity_id or ""] = entry.model_dump(mode="json")
    raise RuntimeError(handler_secrets[entry.entity_id or ""])


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    yield from capture_all_logs()


async def test_no_redacted_secret_reaches_any_sink(config: DLQConfig, client: Client,
                                                   tmp_path: Path, logs: LogCapture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = with_config(config, home=str(tmp_path), outbox_path=str(tmp_path / "outbox.db"),
                      redact_allow={DOMAIN: [ALLOWED_PATH]}, max_replay_attempts=2)
    secrets = Secrets()
    service = AsyncDLQService(cfg, client=client)
    ids: dict[str, str] = {}       # entity id -> dlq id
    allowed: dict[str, str] = {}   # entity id -> the allowed value
    try:
        async def store(n: int, **kw: Any) -> None:
            entity = f"{config.task_queue}-{uuid.uuid4().hex[:8]}-{n}"
            handler_secrets[entity] = (
                f"vault rejected password={secrets.word('hpw')} with Bearer "
                f"{secrets.word('hbt')} for card {secrets.card()} ({secrets.jwt()})")
            fields = secrets.failure(n)
            allowed[entity] = fields["request_data"]["credentials"]["api_key"]
            result = await service.store_failure(DOMAIN, "DECLINED", entity_id=entity,
                                                 recommended_action="replay", **fields, **kw)
            assert result.success, result
            if result.dlq_id:
                ids[entity] = result.dlq_id

        for n in range(4):                                  # sync
            await store(n, mode="sync")
        for n in range(4, 8):                               # async: outbox, then the relay
            await store(n, mode="async")
        dedup_key = f"dup-{uuid.uuid4().hex}"
        for n in range(8, 11):                              # one deduplicated entry
            await store(n, mode="sync", dedup_key=dedup_key)
        await service.drain_outbox(timeout=30)
        # Two automatic replays fail (the handler quotes secrets), then the cap.
        primary = sorted(set(ids.values()))
        for pk in primary:
            await wait_status(service, pk, "requires_review", timeout=60)
        redriven, resolved = primary[0], primary[1]
        out = await service.force_redrive_entry(
            redriven, actor_id="ops", reason=f"retry with api_key={secrets.word('rsn')} "
                                             f"and Bearer {secrets.word('rbt')}")
        assert out["success"] is False
        await service.resolve_entry(resolved, notes=f"refunded card {secrets.card('-')}",
                                    actor="ops")

        # --- the handler got the allowed value, and nothing else secret --------------
        for entity, data in received.items():
            if entity in allowed:
                assert data["request_data"]["credentials"]["api_key"] == allowed[entity]
                assert data["snapshot_data"]["user"]["password"] == "[Filtered]"
        assert {ids[e] for e in received if e in ids} == set(primary)
        entry = await service.get_entry(redriven)
        assert entry is not None
        assert "request_data.headers.Authorization" in entry["redacted_paths"]
        assert "error_message" in entry["redacted_paths"]
        assert ALLOWED_PATH not in entry["redacted_paths"]
        assert "[Filtered]" in (entry["last_error"] or "")
        by_id = await service.get_entry_by_id(redriven)
        assert by_id is not None and by_id.redacted_paths == entry["redacted_paths"]

        # --- the sinks --------------------------------------------------------------
        address = cfg.temporal_address
        sinks: dict[str, bytes] = {"sql": sql_bytes(cfg)}
        outbox = b"".join(p.read_bytes() for p in tmp_path.glob("outbox.db*"))
        sinks["outbox"] = outbox
        for pk in primary:
            row = await service.get_entry(pk)
            assert row is not None
            wid = row["workflow_id"]
            sinks[f"history {wid}"] = temporal_json(address, "workflow", "show", "-w", wid)
            sinks[f"describe {wid}"] = temporal_json(address, "workflow", "describe",
                                                      "-w", wid)
            state = await client.get_workflow_handle(wid).query("get_state")
            sinks[f"get_state {wid}"] = json.dumps(state, default=str).encode()
        for name in [n for n in os.environ if n.startswith("DLQ_")]:
            monkeypatch.delenv(name)
        for name, value in (("DLQ_TEMPORAL_ADDRESS", address), ("DLQ_HOME", str(tmp_path)),
                            ("DLQ_DATABASE_URL", cfg.database_url),
                            ("DLQ_TASK_QUEUE", cfg.task_queue), ("COLUMNS", "400")):
            monkeypatch.setenv(name, value)
        runner = CliRunner()
        for pk in (redriven, resolved):
            for args in (["show", pk], ["show", pk, "--json"]):
                shown = runner.invoke(app, args)
                assert shown.exit_code == 0, shown.output
                sinks[f"dlq {' '.join(args)}"] = shown.output.encode()
        with api_client(cfg) as http:
            answer = http.get(f"/api/entries/{redriven}", headers=auth("vera"))
            assert answer.status_code == 200, answer.text
            assert answer.json()["redacted_paths"] == entry["redacted_paths"]
            sinks["http entry"] = answer.content
            signed_in = http.post("/login", data={"token": TOKENS["vera"][1]},
                                  follow_redirects=False)
            assert signed_in.status_code == 303
            page = http.get(f"/entries/{redriven}")
            assert page.status_code == 200
            assert 'data-testid="redacted-paths"' in page.text
            assert "<code>request_data.headers.Authorization</code>" in page.text
            sinks["console entry page"] = page.content
        sinks["logs"] = "\n".join(logs.lines).encode()

        # The scan is not vacuous: each sink holds the entries, filtered.
        for name, data in sinks.items():
            # describe shows the summary and search attributes, not the data.
            if name != "logs" and not name.startswith("describe"):
                assert b"[Filtered]" in data, f"{name} holds no entry data"
        assert b"redacted at capture: snapshot_data.user.password" in sinks[f"dlq show {redriven}"]
        assert b"replay handler failed" in sinks["logs"]
        assert len(set(secrets.values)) >= 100

        leaks = [(secret, name) for secret in set(secrets.values)
                 for name, data in sinks.items() if secret.encode() in data]
        assert leaks == [], f"{len(leaks)} secrets visible, e.g. {leaks[:5]}"
    finally:
        await service.close()


async def test_a_signal_with_invalid_input_is_logged_without_its_input(
        service: AsyncDLQService, client: Client, caplog: pytest.LogCaptureFixture) -> None:
    result = await service.store_failure("t-ok", "PG_TIMEOUT", recommended_action="manual_check")
    assert result.success and result.dlq_id
    secret = f"pw{uuid.uuid4().hex[:12]}"  # short: pydantic would quote it whole
    handle = client.get_workflow_handle(workflow_id_for(result.dlq_id))
    with caplog.at_level(logging.WARNING):
        # Invalid: the notes (holding a secret) are not a string. Pydantic's
        # message would quote them as input_value.
        await handle.signal("resolve", {"notes": [secret]})

        async def warned() -> list[str]:
            return [r.getMessage() for r in caplog.records
                    if "ignored resolve signal" in r.getMessage()]

        messages = await eventually(warned, bool, timeout=10)
    assert "notes" in messages[0]
    assert secret not in caplog.text
    # The rejection is also in the audit trail, which does not quote the input either.
    state = await handle.query("get_state")
    rejected = [e for e in state["audit"] if e["action"] == "signal_rejected"]
    assert rejected and "notes" in rejected[-1]["reason"]
    assert secret not in str(state)


async def test_notes_sent_as_a_raw_signal_are_filtered_by_the_workflow(
        service: AsyncDLQService, client: Client) -> None:
    # As the Web UI or `temporal workflow signal` send it: no Python client filter.
    result = await service.store_failure("t-ok", "PG_TIMEOUT", recommended_action="manual_check")
    assert result.success and result.dlq_id
    token = f"Bearer sk{uuid.uuid4().hex}"
    handle = client.get_workflow_handle(workflow_id_for(result.dlq_id))
    await handle.signal("resolve", {"notes": f"refunded; used {token}", "actor": "ui"})

    async def resolved() -> dict[str, Any] | None:
        return await service.get_entry(result.dlq_id)

    row = await eventually(resolved, lambda r: r is not None and r["status"] == "resolved")
    assert row is not None
    state = await handle.query("get_state")
    assert token not in str(state) and token not in str(row)
    assert state["resolution_notes"].startswith("refunded; used ")
    assert "[Filtered]" in state["resolution_notes"] and "[Filtered]" in row["resolution_notes"]


async def test_an_edit_before_replay_is_redacted_like_a_capture(
        config: DLQConfig, client: Client, tmp_path: Path) -> None:
    cfg = with_config(config, home=str(tmp_path),
                      redact_allow={"t-ok": ["request_data.auth.api_key"]})
    service = AsyncDLQService(cfg, client=client)
    try:
        result = await service.store_failure(
            "t-ok", "PG_TIMEOUT", recommended_action="manual_check",
            request_data={"auth": {"api_key": "old-key"}, "note": "n"})
        assert result.success and result.dlq_id
        pk = result.dlq_id
        secret, token = f"pw-{uuid.uuid4().hex}", f"tok{uuid.uuid4().hex}X9"
        out = await service.edit_entry_data(
            pk, actor="ops", reason=f"new key, password={secret}",
            request_data={"auth": {"api_key": "new-key", "password": secret},
                          "note": f"Bearer {token}"})
        assert out["success"]
        entry = await service.get_entry(pk)
        assert entry is not None
        assert entry["request_data"] == {"auth": {"api_key": "new-key", "password": "[Filtered]"},
                                         "note": "Bearer [Filtered]"}
        text = json.dumps(entry)
        assert secret not in text and token not in text
        assert "password=[Filtered]" in text  # the edit's reason, in the audit trail
        history = temporal_json(cfg.temporal_address, "workflow", "show", "-w",
                                 entry["workflow_id"])
        assert secret.encode() not in history and token.encode() not in history
        assert b"new-key" in history  # allowed for this domain
    finally:
        await service.close()
