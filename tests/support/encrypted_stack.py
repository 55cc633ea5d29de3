"""An encrypting DLQ stack for end-to-end tests: client, worker and ``dlq serve`` on a real port.

The worker is built from the same configuration as the client (its key ring,
its redaction rules), unlike the session worker of tests/conftest.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig
from dlq._connect import connect
from dlq._db import create_db_engine, migrate
from dlq._http import create_app
from dlq._procs import free_port
from dlq._temporal import ensure_search_attributes
from dlq._worker import build_worker
from tests.support.api import API_TOKENS


@dataclass
class Stack:
    """What a test talks to: configuration, service, codec server's URL, encrypting client."""

    config: DLQConfig
    service: AsyncDLQService
    codec_url: str
    backend: str
    client: Client


class _Http:
    """``dlq serve``'s app (API and codec server) on a real port, on its own thread."""

    def __init__(self, config: DLQConfig) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "dlq serve did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@asynccontextmanager
async def encrypted_stack(backend: str, url: str, *, temporal_address: str, tmp_path: Path,
                          keys: str, **changes: Any) -> AsyncIterator[Stack]:
    """A migrated read model at ``url``, an encrypting client, its worker and ``dlq serve``.

    Args:
        backend: "sqlite" or "postgresql" (names the task queue and the stack).
        url: The read model's database URL.
        temporal_address: The dev server.
        tmp_path: Where the outbox file goes.
        keys: The key ring (``DLQ_ENCRYPTION_KEYS``).
        **changes: Further DLQConfig fields (redaction rules, replay limits...).
    """
    settings: dict[str, Any] = dict(
        temporal_address=temporal_address, temporal_envconfig=False,
        task_queue=f"dlq-enc-{backend}-{uuid.uuid4().hex[:6]}", database_url=url,
        outbox_path=str(tmp_path / "outbox.db"), encryption_keys=keys, api_tokens=API_TOKENS,
        retry_delay=0.5, store_timeout=15.0, replay_timeout=5.0, shutdown_grace=1.0,
        payload_inline_bytes=4096, maintenance_enabled=False)
    config = DLQConfig(**{**settings, **changes})
    engine = create_db_engine(url, key_ring=config.key_ring)
    migrate(engine)
    client = await connect(config)  # the encrypting client (and, through it, worker)
    await ensure_search_attributes(client, config.namespace)
    service = AsyncDLQService(config, client=client)
    try:
        with _Http(config) as base:
            async with build_worker(client, task_queue=config.task_queue, engine=engine,
                                    config=config):
                yield Stack(config, service, f"{base}/codec", backend, client)
    finally:
        await service.close()
        engine.dispose()
