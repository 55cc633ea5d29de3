"""The outbox on the shared dev server: async stores, the relay, the drain command."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig, DLQService, workflow_id_for
from tests.support.helpers import eventually, visible_runs, with_config

pytestmark = pytest.mark.integration


async def test_async_stores_are_relayed_into_workflows_and_rows(config: DLQConfig,
                                                                client: Client,
                                                                tmp_path: Path) -> None:
    svc = AsyncDLQService(with_config(config, outbox_path=str(tmp_path / "o.db")), client=client)
    try:
        results = [await svc.store_failure("payment", "PG_TIMEOUT", entity_id=str(i),
                                           mode="async") for i in range(40)]
        assert all(r.success and r.dlq_id for r in results)

        async def stored() -> int:
            return sum([await svc.get_entry(r.dlq_id) is not None for r in results])

        assert await eventually(stored, lambda n: n == 40, timeout=30) == 40
        stats = await svc.get_capture_stats()
        assert stats["outbox_depth"] == 0 and stats["relay_delivered"] == 40
        assert stats["relay_running"]
    finally:
        await svc.close()


async def test_redelivery_never_makes_a_second_entry(config: DLQConfig, client: Client,
                                                     tmp_path: Path) -> None:
    from dlq._entry import new_entry_input
    from dlq._outbox import Outbox

    svc = AsyncDLQService(with_config(config, outbox_path=str(tmp_path / "o.db")), client=client)
    entry = new_entry_input("payment", "PG_TIMEOUT", config=svc.config)
    assert (await svc.store_entry(entry)).success
    await svc.resolve_entry(entry.dlq_id)
    wid = workflow_id_for(entry.dlq_id)
    first_run = (await client.get_workflow_handle(wid).describe()).run_id
    Outbox(tmp_path / "o.db").append(entry)  # e.g. a crash between start and delete
    assert await svc.drain_outbox(timeout=20) == 1
    # describe() is consistent at once: the latest run is still the first one.
    assert (await client.get_workflow_handle(wid).describe()).run_id == first_run
    assert (await svc.get_entry(entry.dlq_id))["status"] == "resolved"
    assert await visible_runs(client, wid) == 1
    await svc.close()


def test_outbox_command_line(config: DLQConfig, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dlq import DLQService
    from dlq._cli import app
    from dlq._entry import new_entry_input
    from dlq._outbox import Outbox

    outbox = tmp_path / "cli-outbox.db"
    entries = [new_entry_input("webhook", "HTTP_503", config=config) for _ in range(3)]
    for entry in entries:
        Outbox(outbox).append(entry)
    for key, value in {"DLQ_TEMPORAL_ADDRESS": config.temporal_address,
                       "DLQ_TASK_QUEUE": config.task_queue,
                       "DLQ_DATABASE_URL": config.database_url,
                       "DLQ_OUTBOX_PATH": str(outbox)}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    stats = runner.invoke(app, ["outbox", "stats"])
    assert stats.exit_code == 0 and "outbox_depth" in stats.output
    out = runner.invoke(app, ["outbox", "drain", "--timeout", "20"])
    assert out.exit_code == 0 and "delivered 3; 0 left" in out.output, out.output
    with DLQService(config) as svc:
        for entry in entries:
            assert asyncio.run(_wait_row(svc, entry.dlq_id))


async def _wait_row(svc, dlq_id: str) -> bool:
    return await eventually(lambda: asyncio.to_thread(svc.get_entry, dlq_id),
                            lambda e: e is not None, timeout=20) is not None



def test_blocking_async_store_appends_on_the_callers_thread_and_relays_from_its_loop(
        config: DLQConfig, tmp_path: Path) -> None:
    with DLQService(with_config(config, outbox_path=str(tmp_path / "b.db"))) as svc:
        appended_on: list[str] = []
        append = svc.aio.outbox.append

        def spy(entry):
            appended_on.append(threading.current_thread().name)
            append(entry)

        svc.aio.outbox.append = spy
        results = [svc.store_failure("webhook", "HTTP_503", entity_id=str(i), mode="async")
                   for i in range(5)]
        assert all(r.success and r.dlq_id for r in results)
        assert set(appended_on) == {threading.current_thread().name}
        for r in results:
            assert asyncio.run(_wait_row(svc, r.dlq_id))
        task = svc.aio._relay_task
        assert task is not None and task.get_loop() is svc._loop.loop
        assert svc.get_capture_stats()["outbox_depth"] == 0
