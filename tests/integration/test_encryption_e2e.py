"""Encryption end to end: real dev server and worker, the outbox, SQLite and PostgreSQL.

Entries carrying distinctive marker values in their four data dicts (not
secret-shaped, so only encryption can hide them) are stored sync, async
(outbox) and deduplicated, one large enough for the claim check; they are
replayed and force-redriven. Then the bytes of every sink are scanned: the
SQLite files or a ``pg_dump``, the Temporal histories as ``temporal workflow
show -o json`` prints them without a codec, the outbox file and every log
record. No marker may appear, yet the replay handler received each one, the
reads return them, and the same ``temporal workflow show`` with
``--codec-endpoint`` pointed at ``dlq serve``'s codec server prints them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import dlq
from dlq import AsyncDLQService, workflow_id_for
from dlq._connect import connect
from dlq._errors import DLQKeyError
from dlq._keys import generate_key
from dlq._temporal import dedup_workflow_id
from tests.support.api import TOKENS
from tests.support.encrypted_stack import Stack, encrypted_stack
from tests.support.sinks import sql_bytes, sqlite_bytes, temporal_json
from tests.support.sql import PG_MISSING

pytestmark = pytest.mark.integration

PREFIX = "okapimarker"  # every marker starts with it: one search finds any leak
KEYS = generate_key("e2e")
VIEWER = TOKENS["vera"][1]

# What the t-enc handler received, per entry id: the four data dicts of each call.
received: dict[str, list[dict[str, Any]]] = {}


@dlq.replay_handler("t-enc")
def record_and_refuse(entry: dlq.FailedOperationData) -> None:
    """Records the data it was given; fails unless ``snapshot_data["ok"]``."""
    received.setdefault(entry.id, []).append({
        "snapshot_data": entry.snapshot_data, "request_data": entry.request_data,
        "response_data": entry.response_data, "metadata": entry.metadata})
    if not entry.snapshot_data.get("ok"):
        raise ValueError("downstream refused the replay")


def _data(tag: str, *, ok: bool = False, big: bool = False) -> dict[str, Any]:
    """Four data dicts, each holding a marker of its own."""
    mark = f"{PREFIX}-{tag}-{uuid.uuid4().hex[:8]}"
    request: dict[str, Any] = {"customer_note": f"{mark}-request"}
    if big:  # over payload_inline_bytes: the claim check keeps it in SQL
        request["lines"] = [f"{mark}-line-{i}" for i in range(300)]
    return {"snapshot_data": {"label": f"{mark}-snapshot", "ok": ok},
            "request_data": request, "response_data": {"echo": f"{mark}-response"},
            "metadata": {"trace_note": f"{mark}-metadata"}}


@pytest.fixture(params=["sqlite", "postgresql"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path, temporal_address: str,
                module_pg_url: str | None) -> AsyncIterator[Stack]:
    if request.param == "postgresql" and module_pg_url is None:
        pytest.fail(PG_MISSING)
    url = (f"sqlite:///{tmp_path}/read.db" if request.param == "sqlite" else module_pg_url)
    assert url is not None
    async with encrypted_stack(request.param, url, temporal_address=temporal_address,
                               tmp_path=tmp_path, keys=KEYS) as built:
        yield built


async def _wait_row(service: AsyncDLQService, dlq_id: str) -> dict[str, Any]:
    for _ in range(150):
        entry = await service.get_entry(dlq_id)
        if entry is not None:
            return entry
        await asyncio.sleep(0.1)
    raise AssertionError(f"entry {dlq_id} never reached SQL")


async def _store_everything(service: AsyncDLQService) -> tuple[dict[str, dict], list[str]]:
    """Store sync, async, dedup and claim-checked entries; return their data and workflow ids."""
    stored: dict[str, dict] = {}
    workflow_ids: list[str] = []
    for tag, kw in (("sync", {}), ("ok", {"ok": True}), ("big", {"big": True})):
        data = _data(tag, **kw)
        result = await service.store_failure("t-enc", "ENC_TEST", entity_id=f"order-{tag}",
                                             recommended_action="manual_check", **data)
        assert result.success, result.error
        stored[result.dlq_id] = data
        workflow_ids.append(workflow_id_for(result.dlq_id))
    key = f"dedup-{uuid.uuid4().hex[:8]}"
    data = _data("dedup")
    first = await service.store_failure("t-enc", "ENC_TEST", dedup_key=key,
                                        recommended_action="manual_check", **data)
    again = await service.store_failure("t-enc", "ENC_TEST", dedup_key=key,
                                        recommended_action="manual_check", **_data("dedup2"))
    assert first.success and again.dlq_id == first.dlq_id
    stored[first.dlq_id] = data
    workflow_ids.append(dedup_workflow_id("t-enc", "ENC_TEST", key))
    data = _data("async")
    queued = await service.store_failure("t-enc", "ENC_TEST", mode="async",
                                         recommended_action="manual_check", **data)
    assert queued.success and queued.dlq_id
    await service.drain_outbox(timeout=30)  # the background relay may have been first
    assert (await service.get_capture_stats())["outbox_depth"] == 0
    await _wait_row(service, queued.dlq_id)
    stored[queued.dlq_id] = data
    workflow_ids.append(workflow_id_for(queued.dlq_id))
    return stored, workflow_ids


def _temporal_show(stack: Stack, workflow_id: str, *codec: str) -> str:
    """The history as ``temporal workflow show -o json`` prints it, base64 fields decoded."""
    return temporal_json(stack.config.temporal_address, "workflow", "show", "--namespace",
                         stack.config.namespace, "-w", workflow_id,
                         *codec).decode("utf-8", "replace")


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


async def test_no_marker_in_any_sink_yet_handlers_reads_and_codec_see_them(
        stack: Stack, all_logs: pytest.LogCaptureFixture) -> None:
    service = stack.service
    stored, workflow_ids = await _store_everything(service)
    ids = list(stored)
    sync_id, ok_id, big_id, dedup_id, async_id = ids

    # Replays: one succeeds, the others fail; the sync entry is exhausted and force-redriven.
    assert (await service.retry_entry(ok_id, actor="ops"))["success"] is True
    for dlq_id in (big_id, dedup_id, async_id):
        assert (await service.retry_entry(dlq_id, actor="ops"))["success"] is False
    for _ in range(2):
        await service.retry_entry(sync_id, actor="ops")
    assert (await service.get_entry(sync_id))["status"] == "requires_review"
    redrive = await service.force_redrive_entry(sync_id, actor_id="ops", reason="e2e redrive")
    assert redrive["success"] is False

    # The handler received every marker, exactly as stored.
    for dlq_id, data in stored.items():
        assert received[dlq_id], dlq_id
        assert all(call == data for call in received[dlq_id])
    assert len(received[sync_id]) == 3

    # Reads return them decrypted: the service, by id and the API with a token.
    for dlq_id, data in stored.items():
        entry = await service.get_entry(dlq_id)
        by_id = await service.get_entry_by_id(dlq_id)
        assert entry is not None and by_id is not None
        assert {k: entry[k] for k in data} == data
        assert by_id.request_data == data["request_data"]
    base = stack.codec_url.removesuffix("/codec")
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answer = await http.get(f"/api/entries/{big_id}",
                                headers={"Authorization": f"Bearer {VIEWER}"})
        assert answer.status_code == 200
        assert answer.json()["request_data"] == stored[big_id]["request_data"]
        assert (await http.get(f"/api/entries/{big_id}")).status_code == 401

    # Every sink, as bytes: no marker (all of them listed if any leaks).
    sinks: dict[str, bytes] = {"sql": sql_bytes(stack.config),
                               "outbox": sqlite_bytes(Path(stack.config.outbox_path)),
                               "logs": "\n".join([all_logs.text, *(str(r.args) for r in
                                                                  all_logs.records)]).encode()}
    for wid in workflow_ids:
        sinks[f"history {wid}"] = history = _temporal_show(stack, wid).encode()
        assert b"binary/encrypted" in history, wid
    assert [name for name, content in sinks.items() if PREFIX.encode() in content] == []

    # A client whose ring lacks the key gets an error naming it.
    stranger = await connect(dataclasses.replace(stack.config,
                                                 encryption_keys=generate_key("other")))
    with pytest.raises(DLQKeyError, match="key 'e2e', which is not in DLQ_ENCRYPTION_KEYS"):
        await stranger.get_workflow_handle(workflow_id_for(sync_id)).query("get_state")

    # The codec server decodes them for the temporal CLI (with a token).
    codec = ["--codec-endpoint", stack.codec_url, "--codec-auth", f"Bearer {VIEWER}"]
    decoded = _temporal_show(stack, workflow_id_for(sync_id), *codec)
    assert "binary/encrypted" not in decoded
    for value in stored[sync_id].values():
        for text in value.values():
            if isinstance(text, str):
                assert text in decoded
