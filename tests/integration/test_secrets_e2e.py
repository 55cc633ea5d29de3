"""Redaction and encryption together, end to end, on SQLite and PostgreSQL (issue 10's proof).

One run with ``DLQ_ENCRYPTION_KEYS`` set and redaction on, with an allow list
keeping ``request_data.credentials.api_key`` (a secret-named path): more than a
hundred distinct secrets (passwords, bearer tokens, Luhn card numbers, API keys
under secret-named keys, JWTs, PEM keys) are stored sync, async (outbox and
relay) and deduplicated, one entry large enough for the claim check. Entries
are replayed automatically (one handler records what it got and succeeds, one
fails quoting more secrets), force-redriven with a reason quoting a secret and
resolved with notes holding a card number. Then:

* every redacted secret is in no sink, raw or decoded: the SQLite files or a
  ``pg_dump``, the Temporal histories (``temporal workflow show -o json``
  without a codec, and through the codec server), ``describe``, the outbox
  file, every log record of the process (client and worker), ``dlq show``, the
  handler's input, ``get_entry``, the HTTP API and the ``get_state`` query;
* every allowed value is in no sink's raw bytes, yet the handler received it,
  ``get_entry`` returns it and the codec endpoint decodes it;
* ``dlq show`` (with the key ring) prints ``[Filtered]`` and lists the
  redacted paths.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import dlq
from dlq._cli import app
from dlq._keys import generate_key
from dlq._procs import BIN
from tests.support.api import TOKENS
from tests.support.encrypted_stack import Stack, encrypted_stack
from tests.support.helpers import wait_status
from tests.support.sinks import (
    LogCapture,
    Secrets,
    capture_all_logs,
    sql_bytes,
    sqlite_bytes,
    temporal_json,
)
from tests.support.sql import PG_MISSING

pytestmark = pytest.mark.integration

FAILING, SUCCEEDING = "t-secrets", "t-secrets-ok"
ALLOWED_PATH = "request_data.credentials.api_key"
KEYS = generate_key("e2e-secrets")
VIEWER = TOKENS["vera"][1]

# What the handlers saw, by entity id, and the message the failing one raises.
received: dict[str, dict[str, Any]] = {}
handler_secrets: dict[str, str] = {}
_lock = threading.Lock()


def _record(entry: dlq.FailedOperationData) -> None:
    with _lock:
        received[entry.entity_id or ""] = entry.model_dump(mode="json")


@dlq.replay_handler(FAILING)
def leaky_handler(entry: dlq.FailedOperationData) -> None:
    """Records its input, then fails like a careless downstream: the message quotes secrets."""
    _record(entry)
    raise RuntimeError(handler_secrets[entry.entity_id or ""])


@dlq.replay_handler(SUCCEEDING)
def recording_handler(entry: dlq.FailedOperationData) -> None:
    """Records its input and succeeds."""
    _record(entry)


@pytest.fixture(params=["sqlite", "postgresql"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path, temporal_address: str,
                module_pg_url: str | None) -> AsyncIterator[Stack]:
    if request.param == "postgresql" and module_pg_url is None:
        pytest.fail(PG_MISSING)
    url = (f"sqlite:///{tmp_path}/read.db" if request.param == "sqlite" else module_pg_url)
    assert url is not None
    async with encrypted_stack(
            request.param, url, temporal_address=temporal_address, tmp_path=tmp_path,
            keys=KEYS, home=str(tmp_path), max_replay_attempts=2,
            redact_allow={FAILING: [ALLOWED_PATH], SUCCEEDING: [ALLOWED_PATH]}) as built:
        yield built


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    yield from capture_all_logs()


def _cli_output(stack: Stack, monkeypatch: pytest.MonkeyPatch, *args: str) -> bytes:
    """``dlq <args>`` as an operator with the key ring and the same redaction rules runs it."""
    for name in [n for n in os.environ if n.startswith("DLQ_")]:
        monkeypatch.delenv(name)
    cfg = stack.config
    for name, value in (("DLQ_TEMPORAL_ADDRESS", cfg.temporal_address),
                        ("DLQ_HOME", cfg.home), ("DLQ_DATABASE_URL", cfg.database_url),
                        ("DLQ_TASK_QUEUE", cfg.task_queue), ("DLQ_ENCRYPTION_KEYS", KEYS),
                        ("DLQ_REDACT_ALLOW", json.dumps({FAILING: [ALLOWED_PATH]})),
                        ("COLUMNS", "400")):
        monkeypatch.setenv(name, str(value))
    shown = CliRunner().invoke(app, list(args))
    assert shown.exit_code == 0, shown.output
    return shown.output.encode()


async def test_redacted_secrets_nowhere_allowed_values_only_encrypted(
        stack: Stack, logs: LogCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    service, cfg = stack.service, stack.config
    secrets = Secrets()
    ids: dict[str, str] = {}       # entity id -> dlq id
    allowed: dict[str, str] = {}   # entity id -> its allowed (unredacted, encrypted) value
    big: list[str] = []

    async def store(n: int, domain: str = FAILING, **kw: Any) -> None:
        entity = f"{cfg.task_queue}-{uuid.uuid4().hex[:8]}-{n}"
        handler_secrets[entity] = (
            f"vault rejected password={secrets.word('hpw')} with Bearer "
            f"{secrets.word('hbt')} for card {secrets.card()} ({secrets.jwt()})")
        fields = secrets.failure(n)
        if n == 0:  # over payload_inline_bytes: the claim check keeps the data in SQL
            big.append(entity)
            fields["request_data"]["lines"] = [f"filler line {i}" for i in range(400)]
        allowed[entity] = fields["request_data"]["credentials"]["api_key"]
        result = await service.store_failure(domain, "DECLINED", entity_id=entity,
                                             recommended_action="replay", **fields, **kw)
        assert result.success, result
        if result.dlq_id:
            ids[entity] = result.dlq_id

    for n in range(3):                                  # sync
        await store(n, mode="sync")
    await store(3, SUCCEEDING, mode="sync")             # replayed successfully
    for n in range(4, 7):                               # async: outbox, then the relay
        await store(n, mode="async")
    dedup_key = f"dup-{uuid.uuid4().hex}"
    for n in range(7, 10):                              # one deduplicated entry
        await store(n, mode="sync", dedup_key=dedup_key)
    await service.drain_outbox(timeout=30)
    assert (await service.get_capture_stats())["outbox_depth"] == 0

    # Automatic replays: two fail (quoting secrets), then the cap; one entry succeeds.
    ok_entity = next(e for e, pk in ids.items() if e.endswith("-3"))
    ok_id = ids[ok_entity]
    failing = sorted(set(ids.values()) - {ok_id})
    await wait_status(service, ok_id, "resolved", timeout=60)
    for pk in failing:
        await wait_status(service, pk, "requires_review", timeout=60)
    redriven, resolved = failing[0], failing[1]
    out = await service.force_redrive_entry(
        redriven, actor_id="ops", reason=f"retry with api_key={secrets.word('rsn')} "
                                         f"and Bearer {secrets.word('rbt')}")
    assert out["success"] is False
    await service.resolve_entry(resolved, notes=f"refunded card {secrets.card('-')}",
                                actor="ops")
    never = {s.encode() for s in secrets.values}
    assert len(never) >= 100
    values = {v.encode() for v in allowed.values()}
    stored = ids
    big_entity = big[0]
    primary = sorted(set(stored.values()))

    def leaks(sinks: dict[str, bytes], forbidden: set[bytes]) -> list[tuple[str, str]]:
        return [(s.decode()[:40], name) for s in forbidden for name, data in sinks.items()
                if s in data]

    # --- what was decoded for its readers: the allowed value, and no redacted secret ---
    decoded: dict[str, bytes] = {}
    for entity, data in received.items():
        if entity in allowed:
            assert data["request_data"]["credentials"]["api_key"] == allowed[entity]
            assert data["snapshot_data"]["user"]["password"] == "[Filtered]"
            decoded[f"handler input {entity}"] = json.dumps(data).encode()
    assert {stored[e] for e in received if e in stored} == set(primary)
    for entity, pk in stored.items():
        entry = await service.get_entry(pk)
        assert entry is not None
        if entry["entity_id"] == entity:  # a deduplicated store keeps the first entity
            assert entry["request_data"]["credentials"]["api_key"] == allowed[entity]
        assert "request_data.headers.Authorization" in entry["redacted_paths"]
        assert ALLOWED_PATH not in entry["redacted_paths"]
        decoded[f"get_entry {pk}"] = json.dumps(entry, default=str).encode()
        state = await stack.client.get_workflow_handle(entry["workflow_id"]).query("get_state")
        decoded[f"get_state {pk}"] = json.dumps(state, default=str).encode()
    assert b"[Filtered]" in decoded[f"get_entry {redriven}"]  # the redrive reason, too
    codec = ["--codec-endpoint", stack.codec_url, "--codec-auth", f"Bearer {VIEWER}"]
    for pk in primary:
        row = await service.get_entry(pk)
        assert row is not None
        wid = row["workflow_id"]
        through_codec = temporal_json(cfg.temporal_address, "workflow", "show", "--namespace",
                                      cfg.namespace, "-w", wid, *codec)
        assert b"binary/encrypted" not in through_codec
        assert b"[Filtered]" in through_codec
        entity = row["entity_id"]
        if entity != big_entity:  # claim-checked: its data is in SQL, not in the history
            assert allowed[entity].encode() in through_codec, "the codec did not decode it"
        decoded[f"codec history {wid}"] = through_codec
    for pk in (redriven, resolved):
        for args in (("show", pk), ("show", pk, "--json")):
            decoded[f"dlq {' '.join(args)}"] = shown = _cli_output(stack, monkeypatch, *args)
            assert b"[Filtered]" in shown
            assert b"request_data.headers.Authorization" in shown  # redacted_paths listed
    assert b"redacted at capture: " in decoded[f"dlq show {redriven}"]
    async with httpx.AsyncClient(base_url=stack.codec_url.removesuffix("/codec"),
                                 timeout=30) as http:
        answer = await http.get(f"/api/entries/{redriven}",
                                headers={"Authorization": f"Bearer {VIEWER}"})
    assert answer.status_code == 200, answer.text
    redriven_entity = answer.json()["entity_id"]
    assert answer.json()["request_data"]["credentials"]["api_key"] == allowed[redriven_entity]
    decoded["http entry"] = answer.content
    assert leaks(decoded, never) == []

    # --- the raw bytes of every sink: neither secrets nor the allowed values ----------
    raw: dict[str, bytes] = {"sql": sql_bytes(cfg),
                             "outbox": sqlite_bytes(Path(cfg.outbox_path))}
    for pk in primary:
        row = await service.get_entry(pk)
        assert row is not None
        wid = row["workflow_id"]
        raw[f"history {wid}"] = history = temporal_json(
            cfg.temporal_address, "workflow", "show", "--namespace", cfg.namespace, "-w", wid)
        assert b"binary/encrypted" in history, wid
        raw[f"describe {wid}"] = temporal_json(cfg.temporal_address, "workflow", "describe",
                                               "--namespace", cfg.namespace, "-w", wid)
        assert pk.encode() in raw["sql"], "the scan would be vacuous"
    raw["logs"] = "\n".join(logs.lines).encode()
    assert b"replay handler failed" in raw["logs"]
    assert leaks(raw, never) == [], "redacted secrets visible"
    assert leaks(raw, values) == [], "allowed values visible unencrypted"


async def test_notes_signalled_directly_are_redacted_everywhere_but_the_signal_itself(
        stack: Stack, logs: LogCapture) -> None:
    """An operator note sent with ``temporal workflow signal`` (no Python client, no codec).

    The signal's own history event holds what its sender typed, in the clear:
    only the sender can avoid that. What the workflow keeps (its state, the
    audit trail, the SQL projection, the log) must be redacted all the same.
    """
    service, cfg = stack.service, stack.config
    secrets = Secrets()
    result = await service.store_failure(FAILING, "DECLINED", recommended_action="manual_check",
                                         entity_id=f"signal-{uuid.uuid4().hex[:8]}",
                                         request_data={"note": "plain"})
    assert result.success and result.dlq_id
    pk = result.dlq_id
    notes = f"refunded card {secrets.card('-')} with password={secrets.word('npw')}"
    done = subprocess.run(
        [str(BIN / "temporal"), "workflow", "signal", "--address", cfg.temporal_address,
         "--namespace", cfg.namespace, "-w", dlq.workflow_id_for(pk), "--name", "resolve",
         "--input", json.dumps({"notes": notes, "actor": "ops"})],
        capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    entry = await wait_status(service, pk, "resolved", timeout=30)
    state = await stack.client.get_workflow_handle(dlq.workflow_id_for(pk)).query("get_state")
    sinks = {"get_entry": json.dumps(entry, default=str).encode(),
             "get_state": json.dumps(state, default=str).encode(),
             "sql": sql_bytes(cfg), "logs": "\n".join(logs.lines).encode()}
    assert b"[Filtered" in sinks["get_state"]  # the note is kept, filtered
    leaks = [(s, name) for s in set(secrets.values) for name, data in sinks.items()
             if s.encode() in data]
    assert leaks == []
