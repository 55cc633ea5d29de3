"""The recipes of docs/integrations.md run as written: FastAPI (async service), Celery prefork.

Each recipe is a file in ``docs/recipes/`` that the page shows verbatim (checked
here too), so what the docs say is what these tests run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from dlq import AsyncDLQService, DLQConfig
from dlq._procs import BIN, ROOT, ManagedProcess
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration

RECIPES = ROOT / "docs" / "recipes"
PAGE = ROOT / "docs" / "integrations.md"
REDIS_URL = "redis://127.0.0.1:6379/13"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["fastapi_app", "celery_tasks"])
def test_the_page_shows_each_recipe_verbatim(name: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert (RECIPES / f"{name}.py").read_text() in blocks


def dlq_environment(config: DLQConfig, tmp_path: Path) -> dict[str, str]:
    """``DLQ_*`` variables for the session worker's SQLite backend."""
    return {"DLQ_TEMPORAL_ADDRESS": config.temporal_address, "DLQ_TASK_QUEUE": config.task_queue,
            "DLQ_DATABASE_URL": config.database_url, "DLQ_OUTBOX_PATH": str(tmp_path / "o.db"),
            "DLQ_TEMPORAL_ENVCONFIG": "false", "DLQ_STORE_TIMEOUT": "20",
            "DLQ_AUTO_REPLAY": "false"}


@pytest.fixture
def sqlite_config(base_configs: dict[str, DLQConfig], worker: object) -> DLQConfig:
    return base_configs["sqlite"]


@pytest.fixture
def environment(sqlite_config: DLQConfig, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = dlq_environment(sqlite_config, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env


def test_fastapi_recipe_stores_async_with_the_request_context(
        environment: dict[str, str], sqlite_config: DLQConfig) -> None:
    from fastapi.testclient import TestClient

    recipe = load("fastapi_app")
    hook = f"wh-{uuid.uuid4().hex[:6]}"
    with TestClient(recipe.app) as http:  # runs the lifespan: service opened, then drained
        response = http.post(f"/webhooks/{hook}/deliver", headers={"X-Request-ID": "r-42"})
        assert response.status_code == 200
        body = response.json()
    assert body["delivered"] is False and body["dlq_id"]

    import asyncio

    async def check() -> dict:
        service = AsyncDLQService(sqlite_config)
        try:
            return await eventually(lambda: service.get_entry(body["dlq_id"]),
                                    lambda e: e is not None, timeout=30)
        finally:
            await service.close()

    entry = asyncio.run(check())
    assert entry["entity_id"] == hook and entry["domain"] == "webhook"
    assert entry["metadata"]["request"] == {"method": "POST",
                                            "path": f"/webhooks/{hook}/deliver",
                                            "request_id": "r-42"}


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


async def test_celery_prefork_recipe_stores_each_exhausted_task_once(
        environment: dict[str, str], sqlite_config: DLQConfig, tmp_path: Path) -> None:
    if not _redis_up():
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (the Celery recipe needs it)")
    queue = f"recipe-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, **environment, "CELERY_BROKER_URL": REDIS_URL,
           "PYTHONPATH": str(ROOT)}
    celery = ManagedProcess("celery", [
        str(BIN / "celery"), "-A", "celery_tasks", "worker", "--pool", "prefork",
        "--concurrency", "2", "--queues", queue, "--without-heartbeat", "--without-gossip",
        "--without-mingle", "--loglevel", "INFO"], log_path=tmp_path / "celery.log", env=env,
        cwd=RECIPES)
    os.environ["CELERY_BROKER_URL"] = REDIS_URL
    sys.path.insert(0, str(RECIPES))
    try:
        # Under the module name the worker imports (-A celery_tasks): tasks are named by it.
        recipe = importlib.import_module("celery_tasks")
        celery.start()
        await celery.wait_until(lambda: "ready." in celery.log_text(), timeout=60,
                                what="start its pool")
        skus = [f"sku-{queue}-{n}" for n in range(6)]
        for n, sku in enumerate(skus):
            recipe.sync_inventory.apply_async((sku, -n), queue=queue)
        service = AsyncDLQService(sqlite_config)
        try:
            page = await eventually(
                lambda: service.list_entries({"domain": "inventory"}, page=1, page_size=100),
                lambda p: {e["entity_id"] for e in p["results"]} >= set(skus), timeout=90,
                interval=0.5)
            mine = [e for e in page["results"] if e["entity_id"] in skus]
            assert len(mine) == len(skus)  # once each, after Celery's own two retries
            entry = await service.get_entry(mine[0]["id"])
            assert entry is not None and entry["error_code"] == "503"
            assert entry["request_data"]["task_id"]
        finally:
            await service.close()
        # The tasks ran in a prefork pool of two processes.
        assert "concurrency: 2 (prefork)" in celery.log_text()
    finally:
        celery.stop(20)
        sys.path.remove(str(RECIPES))
        sys.modules.pop("celery_tasks", None)
        os.environ.pop("CELERY_BROKER_URL", None)
