"""``python worker.py`` as a real process: configuration from the environment, handler modules."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig, DLQReplayError
from dlq._procs import ROOT, WorkerProcess
from tests.support.helpers import store, with_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def worker_process(temporal_address: str, tmp_path_factory: pytest.TempPathFactory
                         ) -> AsyncIterator[DLQConfig]:
    queue = f"dlq-proc-{uuid.uuid4().hex[:6]}"
    folder = tmp_path_factory.mktemp("proc")
    url = f"sqlite:///{folder}/proc.db"
    env = {**os.environ, "DLQ_DATABASE_URL": url, "DLQ_OUTBOX_PATH": str(folder / "outbox.db"),
           "DLQ_HANDLER_MODULES": "tests.support.env_handlers",
           "DLQ_MAINTENANCE_ENABLED": "false", "PYTHONPATH": str(ROOT)}
    worker = WorkerProcess(address=temporal_address, task_queue=queue,
                           handlers=["tests.support.extra_handlers"],
                           log_path=folder / "worker.log", env=env, cwd=ROOT)
    try:
        await worker.restart()  # until it polls its task queue
        yield DLQConfig(temporal_address=temporal_address, task_queue=queue, database_url=url,
                        store_timeout=15)
    finally:
        worker.stop(20)


async def test_worker_imports_handler_modules_from_flag_and_env(worker_process: DLQConfig,
                                                                client: Client) -> None:
    service = AsyncDLQService(worker_process, client=client)
    for domain in ("t-cli-flag", "t-env-var"):
        dlq_id = await store(service, domain)
        assert (await service.retry_entry(dlq_id))["success"] is True, domain
    # The in-process test handlers are not registered in that process.
    unknown = await store(service, "t-ok")
    with pytest.raises(DLQReplayError, match="t-ok"):
        await service.retry_entry(unknown)


async def test_store_times_out_cleanly_without_a_worker(worker_process: DLQConfig,
                                                        client: Client) -> None:
    """With no worker on the task queue the workflow exists but the row is not confirmed."""
    config = with_config(worker_process, task_queue=f"nobody-{uuid.uuid4().hex[:6]}",
                         store_timeout=1.0)
    result = await AsyncDLQService(config, client=client).store_failure("payment", "X")
    assert result.success is False and result.dlq_id
    assert "was started but its SQL row was not confirmed" in result.error
    await client.get_workflow_handle(f"dlq-{result.dlq_id}").terminate("test cleanup")



async def test_command_without_a_worker_is_pending_within_its_bound(worker_process: DLQConfig,
                                                                    client: Client) -> None:
    """An operator command never hangs when no worker serves the entry, nor reports failure."""
    from dlq import DLQCommandPendingError
    from dlq._entry import new_entry_input

    queue = f"nobody-{uuid.uuid4().hex[:6]}"
    config = with_config(worker_process, task_queue=queue, command_timeout=1.0)
    entry = new_entry_input("payment", "X", config=config)
    handle = await client.start_workflow("DLQEntryWorkflow", entry, id=f"dlq-{entry.dlq_id}",
                                         task_queue=queue)
    try:
        with pytest.raises(DLQCommandPendingError, match="no DLQ worker took it within 1s"):
            await AsyncDLQService(config, client=client).retry_entry(entry.dlq_id)
    finally:
        await handle.terminate("test cleanup")
