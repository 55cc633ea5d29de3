"""Record the workflow histories that ``test_replay_histories.py`` replays.

``python -m tests.workflows.record_histories [--force]`` starts a Temporal dev
server and a DLQ worker process (:mod:`dlq._procs`, ``worker.py --handlers
tests.support.handlers``) in a temporary folder, drives representative
transitions of ``DLQEntryWorkflow``, ``BulkReplayWorkflow``,
``DLQMaintenanceWorkflow`` and ``DLQAlertsWorkflow`` (against a local webhook
receiver), checks that each ended where its name says, and
writes each history as JSON (``WorkflowHistory.to_json()``) to
``tests/workflows/histories/<release>/<name>.json``, ``<release>`` being the
project's version in ``pyproject.toml``.

Record once per release whose workflow code changed, commit the files, and
never re-record an older release: its files are what workflows started by that
release look like, and the current code must go on replaying them.
``--only SCENARIO`` records the scenarios of a workflow added within a release
(e.g. ``--only alerts_scenarios``) and leaves the other files as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig, workflow_id_for
from dlq._alert_messages import AlertsInput, AlertsResult
from dlq._alert_schedule import ALERTS_WORKFLOW
from dlq._connect import connect
from dlq._messages import BulkReplayInput, MaintenanceInput, MaintenanceResult
from dlq._procs import ROOT, DevServer, WorkerProcess
from dlq._temporal import MAINTENANCE_WORKFLOW, dedup_workflow_id
from tests.support.helpers import eventually, store, wait_status, with_config
from tests.support.webhook import webhook_receiver

HISTORIES = Path(__file__).resolve().parent / "histories"
TASK_QUEUE = "dlq-record"
# Continue-as-new is suggested after this many events (Temporal's default is
# thousands), so a dedup storm of a few hundred stores reaches it.
CAN_EVENTS = 120


def release() -> str:
    """The project's version (``pyproject.toml``)."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


class Recorder:
    """Drives the scenarios against one stack and writes their histories."""

    def __init__(self, client: Client, config: DLQConfig, out: Path) -> None:
        self.client, self.config, self.out = client, config, out
        self.services: list[AsyncDLQService] = []
        self.service = self.with_config()
        self.written: list[str] = []

    def with_config(self, **changes: object) -> AsyncDLQService:
        """A service on the same client, with some configuration changed."""
        service = AsyncDLQService(with_config(self.config, **changes), client=self.client)
        self.services.append(service)
        return service

    async def save(self, name: str, workflow_id: str, run_id: str | None = None) -> None:
        """Write the history of one run (the latest if ``run_id`` is None) once it closed."""
        handle = self.client.get_workflow_handle(workflow_id, run_id=run_id)
        if run_id is None:
            await asyncio.wait_for(handle.result(), timeout=120)
        history = await handle.fetch_history()
        (self.out / f"{name}.json").write_text(history.to_json() + "\n")
        self.written.append(name)
        print(f"  {name}: {len(history.events)} events ({workflow_id})", flush=True)

    async def entry(self, name: str, dlq_id: str, status: str) -> None:
        """Wait until the entry's row has ``status`` and its workflow closed, then save it."""
        await wait_status(self.service, dlq_id, status, timeout=60)
        await self.save(name, workflow_id_for(dlq_id))

    def signal(self, dlq_id: str, name: str, arg: object = None) -> Awaitable[None]:
        """Send a signal as an operator would with ``temporal workflow signal``."""
        handle = self.client.get_workflow_handle(workflow_id_for(dlq_id))
        return handle.signal(name, arg) if arg is not None else handle.signal(name)


async def entry_scenarios(r: Recorder) -> None:
    """Every way an entry moves: replays, the cap, commands as updates and signals, expiry."""
    svc = r.service
    auto_ok = await store(svc, "t-ok", action="replay")
    await r.entry("entry_auto_replay_resolved", auto_ok, "resolved")

    flaky = await store(svc, "t-flaky", action="replay", snapshot_data={"succeed_on": 2})
    await r.entry("entry_auto_replay_fails_then_succeeds", flaky, "resolved")

    manual = await store(svc, "t-ok")
    assert (await svc.retry_entry(manual))["success"] is True
    await r.entry("entry_retry_update_resolved", manual, "resolved")

    by_signal = await store(svc, "t-async-ok")
    await r.signal(by_signal, "retry", {"actor": "ops@example.com"})
    await r.entry("entry_retry_signal_resolved", by_signal, "resolved")

    slow = await store(r.with_config(replay_timeout=10.0), "t-slow", snapshot_data={"sleep": 1.5})
    assert (await svc.retry_entry(slow))["success"] is True  # shown as replaying meanwhile
    await r.entry("entry_slow_replay_resolved", slow, "resolved")

    poison = await store(svc, "t-fail", action="replay")
    await wait_status(svc, poison, "requires_review", timeout=60)
    await svc.force_redrive_entry(poison, actor_id="ops", reason="recording",
                                  ticket_url="https://tickets.example.com/1")
    await wait_status(svc, poison, "requires_review", timeout=60)
    await r.signal(poison, "retry")  # the cap gate ignores it (audited)
    await svc.resolve_entry(poison, notes="poison pill", status="discarded")
    await r.entry("entry_poison_force_redrive_discarded", poison, "discarded")

    no_handler = await store(svc, "payment", action="replay")
    parked = await wait_status(svc, no_handler, "requires_review", timeout=60)
    await r.signal(no_handler, "force_redrive", {"actor_id": "ops", "reason": "recording"})
    await eventually(lambda: svc.get_entry(no_handler),
                     lambda e: len(e["attempts"]) > len(parked["attempts"]), timeout=60)
    await r.signal(no_handler, "resolve", "fixed by hand")  # a bare string is the notes
    await r.entry("entry_no_handler_force_redrive_signal_resolved", no_handler, "resolved")

    resolved = await store(svc, "payment")
    await svc.resolve_entry(resolved, notes="fixed upstream")
    await r.entry("entry_resolve_update", resolved, "resolved")

    odd = await store(svc, "payment")
    await r.signal(odd, "expire")  # not due yet: ignored
    await r.signal(odd, "retry", {"actor": ["not", "a", "string"]})  # invalid: ignored
    await r.signal(odd, "resolve", {"status": "discarded", "notes": "duplicate"})
    await r.entry("entry_ignored_signals_then_discard_signal", odd, "discarded")

    short = r.with_config(expiry_hours=2 / 3600)
    expired = await store(short, "payment")
    await r.entry("entry_expired", expired, "expired")

    with_retry = await store(short, "t-fail", action="replay")
    await r.entry("entry_failed_replays_then_expired", with_retry, "expired")


async def dedup_scenarios(r: Recorder) -> None:
    """Occurrences of one failure; a hot one continues as new."""
    svc = r.service
    key = f"order-{uuid.uuid4().hex[:8]}"
    results = await asyncio.gather(*(svc.store_failure("payment", "PG_TIMEOUT", dedup_key=key)
                                     for _ in range(10)))
    dlq_id = results[0].dlq_id
    assert all(x.success and x.dlq_id == dlq_id for x in results), results
    await svc.resolve_entry(dlq_id)
    await r.save("entry_dedup_occurrences_resolved",
                 dedup_workflow_id("payment", "PG_TIMEOUT", key))

    key = f"hot-{uuid.uuid4().hex[:8]}"
    wid = dedup_workflow_id("inventory", "STOCK_DECREMENT", key)
    runs: list[str] = []
    while len(runs) < 2:
        results = await asyncio.gather(*(svc.store_failure("inventory", "STOCK_DECREMENT",
                                                           dedup_key=key) for _ in range(25)))
        assert all(x.success for x in results), [x.error for x in results if not x.success]
        runs = [w.run_id async for w in r.client.list_workflows(f'WorkflowId="{wid}"')]
    await svc.resolve_entry(results[0].dlq_id)
    await r.save("entry_dedup_hot_last_run_resolved", wid)
    run_id: str | None = None
    while True:  # back along the chain of runs to the first
        history = await r.client.get_workflow_handle(wid, run_id=run_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            break
        run_id = started.continued_execution_run_id
    assert run_id, "the hot entry never continued as new"
    await r.save("entry_dedup_hot_first_run_continued_as_new", wid, run_id)


async def bulk_scenarios(r: Recorder) -> None:
    """Bulk redrives: completed, started unfrozen, paused/resumed/cancelled, canary stop."""
    svc = r.service
    ids = [await store(svc, "t-replay") for _ in range(6)]
    started = await svc.bulk_replay({"domain": "t-replay"}, actor_id="ops", reason="recording",
                                    page_size=2)
    assert (await svc.wait_bulk_replay(started["workflow_id"])).status == "completed"
    await r.save("bulk_replay_completed", started["workflow_id"])
    await r.entry("entry_bulk_redriven_resolved", ids[0], "resolved")

    for _ in range(4):
        await store(svc, "t-replay")
    bulk_id = uuid.uuid4().hex
    handle = await r.client.start_workflow(
        "BulkReplayWorkflow", BulkReplayInput(bulk_id=bulk_id, filters={"domain": "t-replay"},
                                              actor_id="ops", reason="recording", page_size=3),
        id=f"dlq-bulk-{bulk_id}", task_queue=r.config.task_queue)
    await handle.result()
    await r.save("bulk_replay_unfrozen_start_completed", handle.id)

    for _ in range(8):
        await store(svc, "t-ok")
    paced = await svc.bulk_replay({"domain": "t-ok"}, actor_id="ops", reason="recording",
                                  page_size=2, rate_per_second=2.0)
    wid = paced["workflow_id"]
    await svc.signal_bulk_replay(wid, "pause")
    await eventually(lambda: svc.get_bulk_replay(wid), lambda p: p.status == "paused",
                     timeout=60)
    await svc.signal_bulk_replay(wid, "resume")
    await eventually(lambda: svc.get_bulk_replay(wid), lambda p: p.done >= 4, timeout=60)
    await svc.signal_bulk_replay(wid, "cancel")
    assert (await svc.wait_bulk_replay(wid)).status == "cancelled"
    await r.save("bulk_replay_paused_resumed_cancelled", wid)

    for _ in range(4):
        await store(svc, "t-fail")
    canary = await svc.bulk_replay({"domain": "t-fail"}, actor_id="ops", reason="recording",
                                   canary=2, page_size=2)
    assert (await svc.wait_bulk_replay(canary["workflow_id"])).status == "stopped"
    await r.save("bulk_replay_canary_stopped", canary["workflow_id"])


async def maintenance_scenarios(r: Recorder) -> None:
    """A dry run and a real run of the maintenance workflow (as its schedule starts it)."""
    for name, dry_run in (("maintenance_dry_run", True), ("maintenance_run", False)):
        wid = f"dlq-maintenance-record-{uuid.uuid4().hex[:8]}"
        await r.client.execute_workflow(
            MAINTENANCE_WORKFLOW, MaintenanceInput(retention_days=r.config.retention_days,
                                                   purge_after_days=r.config.purge_after_days,
                                                   dry_run=dry_run),
            id=wid, task_queue=r.config.task_queue, result_type=MaintenanceResult)
        await r.save(name, wid)


# Alert rules of the recording worker: one domain's new groups go to a webhook that
# takes them, another's to one that answers 404 (a delivery that fails for good).
ALERT_DOMAINS = {"ok": "t-alert-ok", "gone": "t-alert-gone"}


def alert_rules(url: str) -> str:
    """``DLQ_ALERT_RULES`` of the recording worker."""
    import json

    return json.dumps([{"name": f"new-{kind}", "kind": "new_group", "domain": domain,
                        "webhooks": [{"url": f"{url}/{kind}"}]}
                       for kind, domain in ALERT_DOMAINS.items()])


async def alerts_scenarios(r: Recorder) -> None:
    """An evaluation that delivers, one whose webhook refuses, one inside the cooldown."""
    async def evaluate(name: str, expected: AlertsResult) -> None:
        wid = f"dlq-alerts-record-{uuid.uuid4().hex[:8]}"
        result = await r.client.execute_workflow(
            ALERTS_WORKFLOW, AlertsInput(retry_initial_seconds=0.2), id=wid,
            task_queue=r.config.task_queue, result_type=AlertsResult)
        assert result == expected, (name, result)
        await r.save(name, wid)

    await store(r.service, ALERT_DOMAINS["ok"])
    await evaluate("alerts_delivered", AlertsResult(raised=1, delivered=1))
    await evaluate("alerts_in_cooldown", AlertsResult())
    await store(r.service, ALERT_DOMAINS["gone"])
    await evaluate("alerts_webhook_refused", AlertsResult(raised=1, failed=1))


SCENARIOS: list[Callable[[Recorder], Awaitable[None]]] = [
    entry_scenarios, dedup_scenarios, bulk_scenarios, maintenance_scenarios, alerts_scenarios]


async def record(out: Path, only: list[str] | None = None) -> list[str]:
    """Run a stack in a temporary folder, drive the scenarios, write the histories to ``out``."""
    scenarios = [s for s in SCENARIOS if not only or s.__name__ in only]
    with (tempfile.TemporaryDirectory(prefix="dlq-record-") as tmp_name,
          webhook_receiver(by_path={"/gone": 404}) as receiver):
        tmp = Path(tmp_name)
        server = DevServer(log_path=tmp / "temporal.log", db_file=tmp / "temporal.db",
                           headless=True, log_level="error", extra_args=[
                               "--dynamic-config-value",
                               f"limit.historyCount.suggestContinueAsNew={CAN_EVENTS}"])
        config = DLQConfig(temporal_address=server.address, task_queue=TASK_QUEUE,
                           database_url=f"sqlite:///{tmp / 'dlq.db'}",
                           outbox_path=str(tmp / "outbox.db"), retry_delay=0.5,
                           replay_timeout=2.0, store_timeout=15.0, maintenance_enabled=False)
        env = {**os.environ, "DLQ_DATABASE_URL": config.database_url,
               "DLQ_OUTBOX_PATH": str(tmp / "worker-outbox.db"),
               "DLQ_MAINTENANCE_ENABLED": "false", "PYTHONPATH": str(ROOT),
               # The schedule would evaluate on its own too: not within the recording.
               "DLQ_ALERT_RULES": alert_rules(receiver.url),
               "DLQ_ALERTS_INTERVAL_SECONDS": "86400"}
        worker = WorkerProcess(address=server.address, task_queue=TASK_QUEUE,
                               handlers=["tests.support.handlers"], log_path=tmp / "worker.log",
                               env=env, cwd=ROOT)
        recorder: Recorder | None = None
        try:
            await server.restart()
            await worker.restart()
            recorder = Recorder(await connect(server.address), config, out)
            for scenario in scenarios:
                await scenario(recorder)
            worker.check_alive()
            return recorder.written
        except BaseException:
            print(f"--- worker log ---\n{worker.tail(60)}", file=sys.stderr)
            raise
        finally:
            for service in recorder.services if recorder else []:
                await service.close()
            worker.stop()
            server.stop()


def main() -> None:
    """Record into ``histories/<release>/`` (refusing to overwrite unless ``--force``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default=release(), help="folder name (default: version)")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    parser.add_argument("--only", default="", help="comma-separated scenario functions to "
                        "record (keeps the other files)")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - {s.__name__ for s in SCENARIOS})
    if unknown:
        raise SystemExit(f"unknown scenarios {unknown}; known: "
                         f"{', '.join(s.__name__ for s in SCENARIOS)}")
    out = HISTORIES / args.release
    if only:
        out.mkdir(parents=True, exist_ok=True)
        print(f"recording {', '.join(only)} into {out}", flush=True)
        written = asyncio.run(record(out, only))
        print(f"{len(written)} histories written to {out}")
        return
    if out.exists() and any(out.iterdir()) and not args.force:
        raise SystemExit(f"{out} already has histories; recorded histories of a release are "
                         "kept as they are (use --force while that release is unreleased)")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()
    print(f"recording into {out}", flush=True)
    written = asyncio.run(record(out))
    print(f"{len(written)} histories written to {out}")


if __name__ == "__main__":
    main()
