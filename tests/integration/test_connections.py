"""Secure connections and hooks, end to end against the dev server.

The dev server has no TLS options, so a TLS proxy written for the tests
(:mod:`tests.support.tls`) fronts it with a self-signed CA's certificate:

* mTLS from a ``temporal.toml`` profile: a worker process and a producer store
  and replay through it; a client without a certificate is refused;
* an API key from ``TEMPORAL_*`` variables: the proxy sees the bearer header
  on the producer's, the worker's and the ``dlq`` CLI's requests;
* hooks named once in ``DLQ_TEMPORAL_HOOKS`` reach the producer's client, its
  relay, the worker process and the CLI (a codec and an interceptor).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig, DLQSettings, workflow_id_for
from dlq._connect import connect
from dlq._procs import BIN, ROOT, WorkerProcess
from dlq._worker import build_worker
from tests.support.helpers import eventually, store
from tests.support.hooks import MARK
from tests.support.tls import PKI, TLSProxy, make_pki

pytestmark = pytest.mark.integration


@pytest.fixture
def no_temporal_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("TEMPORAL_", "DLQ_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no default temporal.toml


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return make_pki(tmp_path)


@pytest.fixture
async def mtls_proxy(temporal_address: str, pki: PKI) -> AsyncIterator[TLSProxy]:
    proxy = TLSProxy(upstream=temporal_address, pki=pki, require_client_cert=True)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def tls_proxy(temporal_address: str, pki: PKI) -> AsyncIterator[TLSProxy]:
    proxy = TLSProxy(upstream=temporal_address, pki=pki)
    await proxy.start()
    yield proxy
    await proxy.stop()


def _local_settings(tmp_path: Path, queue: str, **values: object) -> dict[str, object]:
    return dict(task_queue=queue, database_url=f"sqlite:///{tmp_path}/read.db",
                outbox_path=str(tmp_path / "outbox.db"), store_timeout=20,
                maintenance_enabled=False, **values)


async def test_mtls_from_a_toml_profile(no_temporal_env: None, mtls_proxy: TLSProxy, pki: PKI,
                                        temporal_address: str, tmp_path: Path) -> None:
    toml = tmp_path / "temporal.toml"
    tls = (f'server_ca_cert_path = "{pki.ca}"\nserver_name = "localhost"\n')
    toml.write_text(
        f'[profile.secure]\naddress = "{mtls_proxy.address}"\n[profile.secure.tls]\n{tls}'
        f'client_cert_path = "{pki.client_cert}"\nclient_key_path = "{pki.client_key}"\n'
        f'[profile.nocert]\naddress = "{mtls_proxy.address}"\n[profile.nocert.tls]\n{tls}')
    queue = f"dlq-mtls-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DLQ_TEMPORAL_ENVCONFIG": "true", "DLQ_TEMPORAL_PROFILE": "secure",
           "DLQ_TEMPORAL_CONFIG_FILE": str(toml), "DLQ_HANDLER_MODULES": "tests.support.handlers",
           "DLQ_DATABASE_URL": f"sqlite:///{tmp_path}/read.db", "PYTHONPATH": str(ROOT),
           "DLQ_OUTBOX_PATH": str(tmp_path / "worker-outbox.db"),
           "DLQ_MAINTENANCE_ENABLED": "false"}
    worker = WorkerProcess(address=mtls_proxy.address, task_queue=queue, env=env, cwd=ROOT,
                           log_path=tmp_path / "worker.log")
    config = DLQConfig.from_settings(DLQSettings(
        temporal_profile="secure", temporal_config_file=str(toml),
        **_local_settings(tmp_path, queue)))
    assert config.temporal_address == mtls_proxy.address  # from the profile
    service = AsyncDLQService(config)
    try:
        worker.start()
        # Probed on the plaintext server behind the proxy: the same task queue.
        await worker.wait_polling(temporal_address, queue)
        assert f"{mtls_proxy.address}/default (TLS, mTLS client certificate)" in \
            worker.log_text()
        dlq_id = await store(service, "t-ok")
        assert (await service.retry_entry(dlq_id))["success"] is True
    finally:
        await service.close()
        worker.stop(10)
    # The same proxy refuses a client that has no certificate.
    nocert = DLQConfig.from_settings(DLQSettings(temporal_profile="nocert",
                                                 temporal_config_file=str(toml)))
    with pytest.raises((RuntimeError, TimeoutError)):
        await asyncio.wait_for(connect(nocert), timeout=20)


async def test_api_key_and_tls_from_temporal_variables(
        no_temporal_env: None, tls_proxy: TLSProxy, pki: PKI, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    temporal_env = {"TEMPORAL_ADDRESS": tls_proxy.address, "TEMPORAL_API_KEY": "k-123",
                    "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(pki.ca),
                    "TEMPORAL_TLS_SERVER_NAME": "localhost"}
    for name, value in temporal_env.items():
        monkeypatch.setenv(name, value)
    queue = f"dlq-apikey-{uuid.uuid4().hex[:6]}"
    config = DLQConfig.from_settings(DLQSettings(**_local_settings(tmp_path, queue)))
    assert config.temporal_address == tls_proxy.address
    client = await connect(config)
    from dlq._db import create_db_engine, migrate

    engine = create_db_engine(config.database_url)
    migrate(engine)
    service = AsyncDLQService(config, client=client)
    try:
        async with build_worker(client, task_queue=queue, engine=engine, config=config):
            dlq_id = await store(service, "t-ok")
            # The operator CLI, in its own process, with the same variables.
            cli = await asyncio.to_thread(
                subprocess.run, [str(BIN / "dlq"), "retry", dlq_id], capture_output=True,
                text=True, timeout=120, cwd=tmp_path,
                env={**os.environ, "DLQ_TASK_QUEUE": queue,
                     "DLQ_DATABASE_URL": config.database_url})
            assert cli.returncode == 0, cli.stdout + cli.stderr
            assert "resolved" in cli.stdout
    finally:
        await service.close()
        engine.dispose()
    assert tls_proxy.authorizations() == {"Bearer k-123"}
    # Every request carried it (the worker's polls and the CLI's update included).
    paths = [v for n, v in tls_proxy.headers if n == ":path"]
    assert len(tls_proxy.authorizations()) == 1 and len(paths) == len(
        [v for n, v in tls_proxy.headers if n == "authorization"])
    assert any(p.endswith("/PollWorkflowTaskQueue") for p in paths)
    assert any(p.endswith("/UpdateWorkflowExecution") for p in paths)


async def test_hooks_reach_the_producer_its_relay_the_worker_and_the_cli(
        temporal_address: str, client: Client, tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    os.environ["HOOKS_CALL_LOG"] = str(calls)  # this process's interceptor logs here too
    queue = f"dlq-hooks-{uuid.uuid4().hex[:6]}"
    hooks = "tests.support.hooks:hooks"
    env = {**os.environ, "DLQ_TEMPORAL_HOOKS": hooks, "PYTHONPATH": str(ROOT),
           "DLQ_HANDLER_MODULES": "tests.support.handlers",
           "DLQ_DATABASE_URL": f"sqlite:///{tmp_path}/read.db",
           "DLQ_OUTBOX_PATH": str(tmp_path / "worker-outbox.db"),
           "DLQ_MAINTENANCE_ENABLED": "false"}
    worker = WorkerProcess(address=temporal_address, task_queue=queue, env=env, cwd=ROOT,
                           log_path=tmp_path / "worker.log")
    config = DLQConfig(temporal_address=temporal_address, temporal_envconfig=False,
                       temporal_hooks=(hooks,), **_local_settings(tmp_path, queue))
    service = AsyncDLQService(config)  # connects through dlq._connect: hooks applied
    try:
        await worker.restart()
        synced = await store(service, "t-ok", snapshot_data={"card": "tok-1"})
        queued = await service.store_failure("t-ok", "PG_TIMEOUT", mode="async")
        await eventually(lambda: service.get_entry(queued.dlq_id), lambda e: e is not None,
                         timeout=30)
        cli = await asyncio.to_thread(
            subprocess.run, [str(BIN / "dlq"), "retry", synced], capture_output=True, text=True,
            timeout=120, cwd=tmp_path,
            env={**env, "DLQ_TASK_QUEUE": queue, "DLQ_TEMPORAL_ADDRESS": temporal_address,
                 "DLQ_TEMPORAL_ENVCONFIG": "false"})
        assert cli.returncode == 0, cli.stdout + cli.stderr
        entry = await service.get_entry(synced)
        assert entry is not None and entry["status"] == "resolved"
        assert entry["snapshot_data"] == {"card": "tok-1"}  # the worker decoded it
    finally:
        await service.close()
        worker.stop(10)
        os.environ.pop("HOOKS_CALL_LOG")
    lines = [line.split(" ", 1) for line in calls.read_text().splitlines()]
    by_pid: dict[str, set[str]] = {}
    for pid, what in lines:
        by_pid.setdefault(pid, set()).add(what)
    me, worker_pid = str(os.getpid()), str(worker.runs[0].pid)
    assert "client update_with_start" in by_pid[me]  # the sync store
    assert "client start_workflow DLQEntryWorkflow" in by_pid[me]  # the relay's delivery
    assert "activity run_replay_handler" in by_pid[worker_pid]
    cli_pids = set(by_pid) - {me, worker_pid}
    assert any("client update retry" in by_pid[p] for p in cli_pids), by_pid
    # The codec ran: the history holds the marked payload, not the entry's JSON.
    history = await client.get_workflow_handle(workflow_id_for(synced)).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    payload = started.input.payloads[0]
    assert payload.metadata["encoding"] == MARK
    assert b"tok-1" not in payload.data
