"""No poison forever: outbox records Temporal refuses for good go to a visible quarantine.

Records are written to the outbox directly (bypassing the capture checks)
with a field Temporal will never take: over its 2 MiB payload limit, and
over the 4 MiB gRPC message limit. The relay delivers the good records
around them, quarantines the poison with Temporal's reason, and operators
see, inspect and delete it through the Python API and ``dlq outbox
quarantine``; ``get_capture_stats()["quarantined"]`` and ``dlq outbox stats``
count it.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from dlq import AsyncDLQService, DLQConfig, DLQEntryNotFoundError
from dlq._cli import app
from dlq._cli._common import NOT_FOUND
from dlq._entry import new_entry_input
from dlq._messages import EntryInput
from dlq._outbox import Outbox
from dlq._temporal import workflow_id_for

pytestmark = pytest.mark.integration


def _entries(config: DLQConfig, size: int) -> tuple[EntryInput, list[EntryInput]]:
    good = [new_entry_input("quarantine", "GOOD", config=config) for _ in range(2)]
    poison = new_entry_input("quarantine", "POISON", config=config).model_copy(
        update={"error_code": "C" * size})  # past any capture check: straight into the outbox
    return poison, good


@pytest.mark.parametrize("size", [3_000_000, 5_000_000], ids=["over-2MiB-payload",
                                                              "over-4MiB-grpc"])
async def test_a_record_temporal_refuses_is_quarantined_not_retried_forever(
        config: DLQConfig, client: Client, tmp_path: Path, size: int) -> None:
    config = replace(config, outbox_path=str(tmp_path / "outbox.db"))
    poison, good = _entries(config, size)
    outbox = Outbox(config.outbox_path)
    for entry in (good[0], poison, good[1]):
        outbox.append(entry)
    service = AsyncDLQService(config, client=client)
    try:
        delivered = await service.drain_outbox(timeout=60)
        assert delivered == 2
        stats = await service.get_capture_stats()
        assert stats["outbox_depth"] == 0 and stats["quarantined"] == 1, stats
        # The same count reaches Prometheus (dlq_outbox_quarantined, alert rules).
        assert _quarantined_gauge(outbox) == 1.0
        for entry in good:
            await client.get_workflow_handle(workflow_id_for(entry.dlq_id)).describe()

        [listed] = await service.list_quarantined()
        assert listed["dlq_id"] == poison.dlq_id and listed["failure_type"] == "POISON"
        assert listed["size_bytes"] > size and listed["attempts"] == 1
        assert "Temporal refused the record" in listed["reason"], listed["reason"]
        assert "CCCC" not in listed["reason"]  # the reason never carries the data
        shown = await service.get_quarantined(poison.dlq_id)
        assert shown["entry"]["error_code"] == "C" * size  # kept unchanged for inspection
        # Nothing left for the relay: a second drain touches nothing.
        assert await service.drain_outbox(timeout=5) == 0
        assert (await service.delete_quarantined(poison.dlq_id))["deleted"] is True
        with pytest.raises(DLQEntryNotFoundError):
            await service.get_quarantined(poison.dlq_id)
        assert (await service.get_capture_stats())["quarantined"] == 0
        assert _quarantined_gauge(outbox) == 0.0
    finally:
        await service.close()


@pytest.fixture
def cli(config: DLQConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.startswith("DLQ_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DLQ_TEMPORAL_ADDRESS", config.temporal_address)
    monkeypatch.setenv("DLQ_TASK_QUEUE", config.task_queue)
    monkeypatch.setenv("DLQ_DATABASE_URL", config.database_url)
    monkeypatch.setenv("DLQ_OUTBOX_PATH", str(tmp_path / "outbox.db"))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_operators_see_inspect_and_delete_quarantined_records_from_the_cli(
        cli, config: DLQConfig, tmp_path: Path) -> None:
    poison, good = _entries(config, 3_000_000)
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.append(poison)
    outbox.append(good[0])
    drained = cli("outbox", "drain", "--timeout", "60")
    assert drained.exit_code == 0, drained.output
    assert "delivered 1;" in drained.output and "1 quarantined" in drained.output

    stats = cli("outbox", "stats")
    assert stats.exit_code == 0 and "quarantined" in stats.output
    listed = cli("outbox", "quarantine", "list", "--json")
    assert listed.exit_code == 0, listed.output
    [record] = json.loads(listed.output)
    assert record["dlq_id"] == poison.dlq_id and "Temporal refused" in record["reason"]
    table = cli("outbox", "quarantine", "list")
    assert poison.dlq_id in table.output

    shown = cli("outbox", "quarantine", "show", poison.dlq_id, "--json")
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert detail["entry"]["error_code"].startswith("C" * 200)
    assert "3,000,000 characters; --full shows all" in detail["entry"]["error_code"]
    full = cli("outbox", "quarantine", "show", poison.dlq_id, "--json", "--full")
    assert json.loads(full.output)["entry"]["error_code"] == "C" * 3_000_000

    deleted = cli("outbox", "quarantine", "delete", poison.dlq_id)
    assert deleted.exit_code == 0 and "deleted" in deleted.output
    missing = cli("outbox", "quarantine", "show", poison.dlq_id)
    assert missing.exit_code == NOT_FOUND
    assert "Traceback" not in missing.output
    assert cli("outbox", "quarantine", "delete", poison.dlq_id).exit_code == NOT_FOUND
    assert "no quarantined outbox records" in cli("outbox", "quarantine", "list").output


def _quarantined_gauge(outbox: Outbox) -> float:
    """``dlq_outbox_quarantined`` as a scrape of this outbox reports it."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from dlq._exposition import DLQGaugeCollector

    registry = CollectorRegistry()
    registry.register(DLQGaugeCollector(None, outbox))
    text = generate_latest(registry).decode()
    [family] = [f for f in text_string_to_metric_families(text)
                if f.name == "dlq_outbox_quarantined"]
    return float(family.samples[0].value)
