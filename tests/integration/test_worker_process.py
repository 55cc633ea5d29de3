"""``python worker.py`` as a real process: configuration from the environment, handler modules."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig, DLQReplayError
from tests.support.helpers import store, with_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def worker_process(temporal_address: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[DLQConfig]:
    queue = f"dlq-proc-{uuid.uuid4().hex[:6]}"
    url = f"sqlite:///{tmp_path_factory.mktemp('proc')}/proc.db"
    env = {**os.environ, "DLQ_TEMPORAL_ADDRESS": temporal_address, "DLQ_TASK_QUEUE": queue,
           "DLQ_DATABASE_URL": url, "DLQ_HANDLER_MODULES": "tests.support.env_handlers",
           "DLQ_MAINTENANCE_ENABLED": "false", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "worker.py", "--handlers",
                             "tests.support.extra_handlers"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:  # wait for the worker's start-up line
            if "DLQ worker on" in line:
                break
        else:
            pytest.fail(f"worker exited with {proc.wait()}")
        yield DLQConfig(temporal_address=temporal_address, task_queue=queue, database_url=url,
                        store_timeout=15)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


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



async def test_command_without_a_worker_fails_within_its_bound(worker_process: DLQConfig,
                                                               client: Client) -> None:
    """An operator command never hangs when no worker serves the entry."""
    from dlq import DLQError
    from dlq._entry import new_entry_input

    queue = f"nobody-{uuid.uuid4().hex[:6]}"
    config = with_config(worker_process, task_queue=queue, command_timeout=1.0)
    entry = new_entry_input("payment", "X", config=config)
    handle = await client.start_workflow("DLQEntryWorkflow", entry, id=f"dlq-{entry.dlq_id}",
                                         task_queue=queue)
    try:
        with pytest.raises(DLQError, match="got no answer within 1s"):
            await AsyncDLQService(config, client=client).retry_entry(entry.dlq_id)
    finally:
        await handle.terminate("test cleanup")
