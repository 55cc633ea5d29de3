"""Key rotation on a real dev server and worker: open entries keep running across a new key.

An entry is stored and replayed under key A; the worker and the service
restart with the ring B,A: the same entry replays again (its history holds
payloads of both keys) and new entries are sealed with B. After ``dlq keys
rotate`` (the read model re-encrypted), ring B alone reads everything from
SQL, while the old history's payloads still need A, and say so.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload

import dlq
from dlq import AsyncDLQService, DLQConfig, workflow_id_for
from dlq._codec import KEY_ID_KEY
from dlq._connect import connect
from dlq._db import create_db_engine, migrate
from dlq._errors import DLQKeyError
from dlq._keys import generate_key
from dlq._sql.rotation import reencrypt_read_model
from dlq._temporal import ensure_search_attributes
from dlq._worker import build_worker

pytestmark = pytest.mark.integration

KEY_A, KEY_B = generate_key("rot-a"), generate_key("rot-b")
MARK = "pelican-cobalt-"
seen: dict[str, list[dict[str, Any]]] = {}


@dlq.replay_handler("t-rot")
def record(entry: dlq.FailedOperationData) -> None:
    """Records the request data it was given; always fails, so the entry stays open."""
    seen.setdefault(entry.id, []).append(dict(entry.request_data))
    raise ValueError("still refused")


@asynccontextmanager
async def running(config: DLQConfig) -> AsyncIterator[AsyncDLQService]:
    """A worker and a service with ``config``'s key ring; both stop on exit."""
    engine = create_db_engine(config.database_url, key_ring=config.key_ring)
    migrate(engine)
    client = await connect(config)
    await ensure_search_attributes(client, config.namespace)
    service = AsyncDLQService(config, client=client)
    try:
        async with build_worker(client, task_queue=config.task_queue, engine=engine,
                                config=config):
            yield service
    finally:
        await service.close()
        engine.dispose()


def _key_ids(payloads: list[Payload]) -> set[str]:
    return {p.metadata[KEY_ID_KEY].decode() for p in payloads if KEY_ID_KEY in p.metadata}


async def test_open_entries_survive_a_new_key_and_rotation(tmp_path: Path,
                                                           temporal_address: str) -> None:
    base = DLQConfig(temporal_address=temporal_address, temporal_envconfig=False,
                     task_queue=f"dlq-rot-{uuid.uuid4().hex[:6]}",
                     database_url=f"sqlite:///{tmp_path}/read.db",
                     outbox_path=str(tmp_path / "outbox.db"), retry_delay=0.5,
                     store_timeout=15.0, replay_timeout=5.0, shutdown_grace=1.0,
                     maintenance_enabled=False, max_replay_attempts=5)
    under_a = dataclasses.replace(base, encryption_keys=KEY_A)
    under_ba = dataclasses.replace(base, encryption_keys=f"{KEY_B},{KEY_A}")
    only_b = dataclasses.replace(base, encryption_keys=KEY_B)

    async with running(under_a) as service:
        old = await service.store_failure("t-rot", "ROTATION", request_data={"v": MARK + "old"},
                                          recommended_action="manual_check")
        assert old.success and old.dlq_id
        assert (await service.retry_entry(old.dlq_id, actor="ops"))["success"] is False

    async with running(under_ba) as service:
        # The entry whose history is sealed with A replays under the new ring...
        assert (await service.retry_entry(old.dlq_id, actor="ops"))["success"] is False
        assert seen[old.dlq_id] == [{"v": MARK + "old"}] * 2
        # ...and new data is sealed with B.
        new = await service.store_failure("t-rot", "ROTATION", request_data={"v": MARK + "new"},
                                          recommended_action="manual_check")
        assert new.success and new.dlq_id
        client = await service.get_client()
        history = await client.get_workflow_handle(workflow_id_for(old.dlq_id)).fetch_history()
        payloads = [p for event in history.events for p in _payloads_of(event)]
        assert _key_ids(payloads) == {"rot-a", "rot-b"}
        engine = create_db_engine(under_ba.database_url, key_ring=under_ba.key_ring)
        result = reencrypt_read_model(engine=engine)
        engine.dispose()
        assert result.key_id == "rot-b" and result.rewritten["dlq_entries"] == 1

    reader = AsyncDLQService(only_b)
    try:
        for dlq_id, value in ((old.dlq_id, "old"), (new.dlq_id, "new")):
            entry = await reader.get_entry(dlq_id)
            assert entry is not None and entry["request_data"] == {"v": MARK + value}
        # The old history's first payloads stay sealed with A: only a ring with A reads them.
        start = next(p for event in history.events for p in _payloads_of(event))
        stranger = await connect(only_b)
        with pytest.raises(DLQKeyError, match="'rot-a', which is not in DLQ_ENCRYPTION_KEYS"):
            await stranger.data_converter.decode([start])
    finally:
        await reader.close()


def _payloads_of(event: Any) -> list[Payload]:
    """Every payload of a history event (inputs, results, update requests, metadata)."""
    found: list[Payload] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "metadata" in node and "data" in node and isinstance(node["metadata"], dict):
                found.append(json_format.ParseDict(node, Payload()))
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json_format.MessageToDict(event))
    return found
