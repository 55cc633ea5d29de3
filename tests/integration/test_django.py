"""``dlq.contrib.django`` in a real Django project (``tests/support/django_project``).

In this process with Django's test client (the app's service, ``settings.DLQ``,
the request context in both modes), and as real processes: gunicorn with
``--preload`` and sync workers, and the ``dlq_worker``, ``dlq_migrate`` and
``dlq_relay`` management commands.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

import dlq
from dlq import AsyncDLQService, DLQConfig
from dlq._blocking import use_config
from dlq._entry import new_entry_input
from dlq._outbox import Outbox
from dlq._procs import BIN, ROOT, ManagedProcess, free_port
from dlq._temporal import workflow_id_for
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration

PROJECT = "tests.support.django_project"
MANAGE = ROOT / "tests/support/django_project/manage.py"


def project_env(address: str, queue: str, folder: Path) -> dict[str, str]:
    """The environment of the test project: ``settings.DLQ`` reads ``TEST_DLQ_*``."""
    return {"TEST_DLQ_TEMPORAL_ADDRESS": address, "TEST_DLQ_TASK_QUEUE": queue,
            "TEST_DLQ_DATABASE_URL": f"sqlite:///{folder}/read.db",
            "TEST_DLQ_OUTBOX_PATH": str(folder / "outbox.db"),
            "DJANGO_SETTINGS_MODULE": f"{PROJECT}.settings"}


def read_service(address: str, queue: str, folder: Path, client: Client) -> AsyncDLQService:
    return AsyncDLQService(DLQConfig(temporal_address=address, task_queue=queue,
                                     database_url=f"sqlite:///{folder}/read.db"), client=client)


# --- in this process: Django's test client ------------------------------------------------


@pytest.fixture(scope="module")
def django_app(temporal_address: str, base_configs: dict[str, DLQConfig], worker: object,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[DLQConfig]:
    """Django set up in this process on the session worker's task queue and read model."""
    import django

    sqlite = base_configs["sqlite"]
    env = project_env(temporal_address, sqlite.task_queue, tmp_path_factory.mktemp("django"))
    env["TEST_DLQ_DATABASE_URL"] = sqlite.database_url
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # A DLQ_* variable must not be what configures the app.
    os.environ["DLQ_TASK_QUEUE"] = "not-from-settings"
    try:
        django.setup()
        yield sqlite
    finally:
        use_config(None)
        dlq.reset_dlq_service()
        os.environ.pop("DLQ_TASK_QUEUE")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_the_app_builds_the_service_from_settings_dlq(django_app: DLQConfig) -> None:
    service = dlq.get_dlq_service()
    assert service.config.task_queue == django_app.task_queue  # settings.DLQ, not DLQ_*
    assert service.config.store_timeout == 20 and service.config.maintenance_enabled is False
    dlq.reset_dlq_service()  # rebuilt from settings.DLQ, too
    assert dlq.get_dlq_service().config.task_queue == django_app.task_queue


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_view_stores_with_the_request_context(mode: str, django_app: DLQConfig) -> None:
    from django.test import Client as DjangoClient

    response = DjangoClient().post(f"/orders/o-{mode}/charge?mode={mode}",
                                   HTTP_X_REQUEST_ID=f"req-{mode}")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["dlq_id"], body
    service = dlq.get_dlq_service()
    entry = asyncio.run(eventually(lambda: asyncio.to_thread(service.get_entry, body["dlq_id"]),
                                   lambda e: e is not None, timeout=30))
    assert entry["metadata"]["request"] == {"method": "POST", "path": f"/orders/o-{mode}/charge",
                                            "request_id": f"req-{mode}"}
    assert entry["entity_id"] == f"o-{mode}"
    # The replay handler the project's shop app registered serves the entry.
    assert service.retry_entry(body["dlq_id"])["success"] is True


@pytest.mark.parametrize(("dlq_setting", "named"), [
    ({"TEMPORAL_ADRESS": "x:1"}, "TEMPORAL_ADRESS"),
    ({"MAX_REPLAY_ATTEMPTS": 0}, "max_replay_attempts"),
    ({"SLA_THRESHOLDS": {"payment": "soon"}}, "soon"),
    ("localhost:7233", "must be a dict"),
])
def test_bad_settings_are_refused_naming_what_is_wrong(dlq_setting: object, named: str,
                                                       django_app: DLQConfig) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from dlq.contrib.django import dlq_config

    with override_settings(DLQ=dlq_setting), pytest.raises(ImproperlyConfigured, match=named):
        dlq_config()


# --- real processes: gunicorn --preload, the management commands ---------------------------


def _manage(*args: str, env: dict[str, str], log: Path) -> ManagedProcess:
    return ManagedProcess(f"manage.py {args[0]}", [sys.executable, str(MANAGE), *args],
                          log_path=log, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                          cwd=ROOT)


def _post(url: str, request_id: str, timeout: float = 25) -> dict[str, object]:
    request = urllib.request.Request(url, method="POST", headers={"X-Request-ID": request_id})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


@pytest.fixture
async def gunicorn_stack(temporal_address: str, tmp_path: Path
                         ) -> Iterator[tuple[str, dict[str, str], Path]]:
    """``manage.py dlq_worker`` and gunicorn (--preload, two sync workers) on a fresh queue."""
    queue = f"dlq-django-{uuid.uuid4().hex[:6]}"
    env = project_env(temporal_address, queue, tmp_path)
    worker = _manage("dlq_worker", env=env, log=tmp_path / "worker.log")
    port = free_port()
    web = ManagedProcess("gunicorn", [
        str(BIN / "gunicorn"), "--preload", "--workers", "2", "--worker-class", "sync",
        "--bind", f"127.0.0.1:{port}", "--timeout", "30", f"{PROJECT}.wsgi:application",
    ], log_path=tmp_path / "gunicorn.log", env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT)
    try:
        worker.start()
        await worker.wait_polling(temporal_address, queue)
        web.start()
        await web.wait_until(lambda: _listening(port), timeout=30, what="listen")
        yield f"http://127.0.0.1:{port}", env, tmp_path
    finally:
        web.stop(10)
        worker.stop(30)
        assert worker.returncode == 0, worker.tail()  # the command shuts down gracefully


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_gunicorn_preload_async_stores_keep_the_request_context(
        gunicorn_stack: tuple[str, dict[str, str], Path], temporal_address: str,
        client: Client) -> None:
    base, env, folder = gunicorn_stack
    posts = [asyncio.to_thread(_post, f"{base}/orders/g-{n}/charge?mode=async", f"req-g-{n}")
             for n in range(12)]
    bodies = await asyncio.gather(*posts)
    assert all(b["success"] and b["dlq_id"] for b in bodies), bodies
    service = read_service(temporal_address, env["TEST_DLQ_TASK_QUEUE"], folder, client)
    try:
        for n, body in enumerate(bodies):
            entry = await eventually(lambda b=body: service.get_entry(b["dlq_id"]),
                                     lambda e: e is not None, timeout=60)
            assert entry["metadata"]["request"] == {
                "method": "POST", "path": f"/orders/g-{n}/charge", "request_id": f"req-g-{n}"}
        page = await service.list_entries({"domain": "shop"}, page=1, page_size=100)
        assert page["total_count"] == 12  # each recorded once
    finally:
        await service.close()


# The service was built in AppConfig.ready() in gunicorn's master, before the
# fork: the worker rebuilds its loop thread and client (dlq._fork).
async def test_gunicorn_preload_sync_store_from_a_forked_worker(
        gunicorn_stack: tuple[str, dict[str, str], Path], temporal_address: str,
        client: Client) -> None:
    base, env, folder = gunicorn_stack
    body = await asyncio.to_thread(_post, f"{base}/orders/s-1/charge?mode=sync", "req-s-1", 10)
    assert body["success"] is True and body["dlq_id"], body
    service = read_service(temporal_address, env["TEST_DLQ_TASK_QUEUE"], folder, client)
    try:
        entry = await service.get_entry(body["dlq_id"])  # read-your-writes: there already
        assert entry is not None
        assert entry["metadata"]["request"]["request_id"] == "req-s-1"
        assert (await service.retry_entry(body["dlq_id"]))["success"] is True
    finally:
        await service.close()


async def test_dlq_migrate_creates_the_schema(tmp_path: Path, temporal_address: str) -> None:
    env = project_env(temporal_address, "unused", tmp_path)
    out = subprocess.run([sys.executable, str(MANAGE), "dlq_migrate"], cwd=ROOT, text=True,
                         env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "DLQ schema at head on sqlite:///" in out.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "read.db") as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master")}
    assert {"dlq_entries", "alembic_version"} <= tables


async def test_dlq_relay_once_delivers_the_outbox(tmp_path: Path, temporal_address: str,
                                                  client: Client) -> None:
    queue = f"dlq-relay-{uuid.uuid4().hex[:6]}"
    env = project_env(temporal_address, queue, tmp_path)
    config = DLQConfig(task_queue=queue)
    entries = [new_entry_input("shop", "GATEWAY_TIMEOUT", config=config) for _ in range(3)]
    outbox = Outbox(env["TEST_DLQ_OUTBOX_PATH"])
    for entry in entries:
        outbox.append(entry)
    outbox.close()
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(MANAGE), "dlq_relay", "--once"], cwd=ROOT,
        text=True, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, capture_output=True,
        timeout=120)
    assert out.returncode == 0, out.stderr
    assert "delivered 3 outbox records" in out.stdout
    for entry in entries:
        handle = client.get_workflow_handle(workflow_id_for(entry.dlq_id))
        assert (await handle.describe()).task_queue == queue
        await handle.terminate("test cleanup")
    assert Outbox(env["TEST_DLQ_OUTBOX_PATH"]).stats().depth == 0
