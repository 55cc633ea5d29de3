"""Starting an entry's workflow: update-with-start, the dedup gate, the claim check.

The Temporal half of a store (:mod:`dlq._capture` decides when; this does it).
These functions take the :class:`~dlq.AsyncDLQService` as ``service``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError

from dlq._card import static_details, static_summary
from dlq._fields import DATA_FIELDS
from dlq._messages import CaptureInput, CaptureResult, EntryInput
from dlq._temporal import ENTRY_WORKFLOW, SEARCH_ATTRIBUTES, entry_workflow_id

if TYPE_CHECKING:
    from dlq._service import AsyncDLQService

__all__ = ["capture", "claim_check", "start_options"]

# Temporal admits only a few in-flight updates per workflow (10 on the dev
# server); a process queues its occurrences of one hot dedup key beyond this.
DEDUP_IN_FLIGHT = 8


async def capture(service: AsyncDLQService, client: Client, entry: EntryInput) -> CaptureResult:
    """Update-with-start of the entry's workflow (a hot dedup key queued per process)."""
    if not entry.dedup_key:
        return await _capture_once(service, client, entry)
    # Beyond DEDUP_IN_FLIGHT updates on one workflow Temporal answers
    # RESOURCE_EXHAUSTED and the SDK backs off for seconds: queue this process's
    # occurrences of one hot key here instead.
    wid = entry_workflow_id(entry)
    gate = service._dedup_gates.get(wid)
    if gate is None:
        gate = service._dedup_gates[wid] = [asyncio.Semaphore(DEDUP_IN_FLIGHT), 0]
    gate[1] += 1
    try:
        async with gate[0]:
            return await _capture_once(service, client, entry)
    finally:
        gate[1] -= 1
        if gate[1] == 0:
            service._dedup_gates.pop(wid, None)


async def _capture_once(service: AsyncDLQService, client: Client,
                        entry: EntryInput) -> CaptureResult:
    delay = 0.02
    while True:
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            ENTRY_WORKFLOW, entry, **start_options(service, entry))
        try:
            return await client.execute_update_with_start_workflow(
                "capture", CaptureInput(dlq_id=entry.dlq_id), start_workflow_operation=start,
                id=f"capture-{entry.dlq_id}", result_type=CaptureResult,
            )
        except WorkflowUpdateFailedError as err:
            # A hot dedup entry about to continue as new turns occurrences
            # away for a moment; the new run takes them (callers bound us).
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == "ContinuingAsNew"):
                raise
        finally:
            # A store cut off by its bound leaves the SDK's start future failed and
            # unread: asyncio would log "Future exception was never retrieved".
            pending = getattr(start, "_workflow_handle", None)
            if isinstance(pending, asyncio.Future) and pending.done() and not pending.cancelled():
                pending.exception()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def claim_check(service: AsyncDLQService, entry: EntryInput) -> EntryInput:
    """Move data too large for Temporal into SQL; the workflow gets a reference."""
    if entry.payload_ref or entry.data_bytes <= service.config.payload_inline_bytes:
        return entry
    data = {f: getattr(entry, f) for f in DATA_FIELDS}
    await asyncio.to_thread(service.repository.save_payload, entry.dlq_id, data)
    return entry.model_copy(update={**{f: {} for f in DATA_FIELDS},
                                    "payload_ref": entry.dlq_id})


def start_options(service: AsyncDLQService, entry: EntryInput) -> dict[str, Any]:
    """Options of the entry workflow's start: id, reuse policies, search attributes, summary."""
    status, domain, failure_type, retries = SEARCH_ATTRIBUTES
    return dict(
        id=entry_workflow_id(entry),
        task_queue=service.config.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # A closed entry is never re-created by a late or repeated start;
        # a dedup key, though, opens a new entry once the last one closed.
        id_reuse_policy=(WorkflowIDReusePolicy.ALLOW_DUPLICATE if entry.dedup_key
                         else WorkflowIDReusePolicy.REJECT_DUPLICATE),
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(status, "pending"), SearchAttributePair(domain, entry.domain),
            SearchAttributePair(failure_type, entry.failure_type),
            SearchAttributePair(retries, 0),
        ]),
        static_summary=static_summary(entry),
        static_details=static_details(entry),
    )
