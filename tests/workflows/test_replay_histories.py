"""Every checked-in workflow history replays on the current code without a determinism error.

``histories/<release>/<name>.json`` hold histories recorded by
``python -m tests.workflows.record_histories`` with the code of that release
(``WorkflowHistory.to_json()``). Workflows started by an older release may
still be running when a worker with this code picks them up, so a change to
the command sequence of ``DLQEntryWorkflow``, ``BulkReplayWorkflow``,
``DLQMaintenanceWorkflow`` or ``DLQAlertsWorkflow`` that breaks any of these
histories fails here (the fix is ``workflow.patched()``, not re-recording an
old release).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.workflow import NondeterminismError

from dlq import DLQConfig
from dlq._connect import replayer
from dlq._procs import ROOT
from dlq.workflows.alerts import DLQAlertsWorkflow
from dlq.workflows.bulk import BulkReplayWorkflow
from dlq.workflows.entry import DLQEntryWorkflow
from dlq.workflows.maintenance import DLQMaintenanceWorkflow
from tests.support.altered_workflows import PurgeFirstMaintenanceWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
FILES = sorted(HISTORIES.glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    """The history in ``path``, under the workflow id it was recorded with."""
    data = json.loads(path.read_text())
    started = data["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return WorkflowHistory.from_json(started.get("workflowId") or path.stem, data)


def test_the_current_release_has_recorded_histories() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    recorded = {p.stem for p in (HISTORIES / version).glob("*.json")}
    assert recorded, f"no histories in {HISTORIES / version}; run the recorder"
    types = {load(p).events[0].workflow_execution_started_event_attributes.workflow_type.name
             for p in FILES if p.parent.name == version}
    assert types == {"DLQEntryWorkflow", "BulkReplayWorkflow", "DLQMaintenanceWorkflow",
                     "DLQAlertsWorkflow"}


# The replayer a worker's hooks would give (data converter, interceptors, plugins).
CONFIG = DLQConfig(temporal_envconfig=False)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_checked_in_history_replays(path: Path) -> None:
    workflows = [DLQEntryWorkflow, BulkReplayWorkflow, DLQMaintenanceWorkflow, DLQAlertsWorkflow]
    # Raises on a nondeterminism error (or any other workflow task failure).
    await replayer(CONFIG, workflows).replay_workflow(load(path))


async def test_a_change_to_the_command_sequence_fails_the_replay() -> None:
    """The guard works: activities in another order, without workflow.patched, are caught."""
    history = load(HISTORIES / "0.1.0" / "maintenance_run.json")
    with pytest.raises(NondeterminismError):
        await replayer(CONFIG, [PurgeFirstMaintenanceWorkflow]).replay_workflow(history)
