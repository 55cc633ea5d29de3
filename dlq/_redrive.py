"""Replaying many entries: the reference's batch replays and the durable bulk redrive.

These functions are :class:`~dlq.AsyncDLQService` methods (the façade binds
them); ``service`` is the instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from dlq._checks import check_int, check_limit, check_operator_text, check_rate, now
from dlq._entry import request_context
from dlq._errors import (
    DLQCommandPendingError,
    DLQEntryNotFoundError,
    DLQError,
    DLQStateConflictError,
    DLQUnavailableError,
)
from dlq._filters import parse_filters
from dlq._messages import BulkReplayInput, BulkReplayProgress
from dlq._results import DLQBatchReplayStats, DLQThrottleBatchReplayResult, DLQThrottleReplayResult
from dlq._temporal import BULK_WORKFLOW
from dlq._throttle import AdaptiveThrottle

if TYPE_CHECKING:
    from dlq._service import AsyncDLQService

__all__ = ["bulk_replay", "get_bulk_replay", "replay", "replay_all_throttle_aware",
           "replay_throttle_aware", "signal_bulk_replay", "wait_bulk_replay"]


async def replay(service: AsyncDLQService, domain: str | None = None, batch_size: int = 50,
                 request: Any = None) -> DLQBatchReplayStats:
    """Replay up to ``batch_size`` replayable entries (oldest first), one by one.

    Args:
        service: The service.
        domain: Only this domain.
        batch_size: How many entries at most.
        request: An HTTP request; its method and path are recorded as the actor.

    Returns:
        DLQBatchReplayStats: ``processed``, ``success``, ``failed``,
        ``skipped`` (changed state meanwhile) and ``errors``.
    """
    context = request_context(request)
    actor = f"{context.get('method', '')} {context.get('path', '')}".strip() or None
    stats = DLQBatchReplayStats()
    for entry in await service.get_replayable_entries(domain, limit=check_limit(batch_size)):
        stats.processed += 1
        try:
            out = await service.retry_entry_as(entry.id, actor=actor, reason="batch replay")
        except DLQStateConflictError:
            stats.skipped += 1
            continue
        except DLQCommandPendingError as err:
            stats.pending += 1
            stats.errors.append(f"{entry.id}: {err}")
            continue
        except DLQError as err:
            stats.failed += 1
            stats.errors.append(f"{entry.id}: {err}")
            continue
        if out["success"]:
            stats.success += 1
        else:
            stats.failed += 1
            stats.errors.append(f"{entry.id}: {out['message']}")
    return stats


async def replay_throttle_aware(service: AsyncDLQService, entry_id: str,
                                throttle: AdaptiveThrottle) -> DLQThrottleReplayResult:
    """Replay one entry if it is alive, has budget and the throttle grants a permit.

    Checked in this order: ``expires_at``, the retry budget, a throttle
    permit, then the replay itself. A refused permit returns
    ``retry_after`` and stores nothing new.
    """
    entry = await service.get_entry_by_id(entry_id)
    if entry is None:
        return DLQThrottleReplayResult(success=False, entry_id=entry_id,
                                       error=f"DLQ entry {entry_id} not found")
    if entry.expires_at and entry.expires_at <= now():
        return DLQThrottleReplayResult(success=False, entry_id=entry_id,
                                       error=f"entry expired at {entry.expires_at}")
    if not entry.can_retry:
        return DLQThrottleReplayResult(
            success=False, entry_id=entry_id,
            error=f"entry is {entry.status} with {entry.retry_count}/{entry.max_retries} "
                  "attempts used; not retryable")
    permit = throttle.acquire()
    if not hasattr(permit, "release"):
        return DLQThrottleReplayResult(success=False, entry_id=entry_id,
                                       error=f"throttled: {permit.reason}",
                                       retry_after=permit.retry_after)
    started = time.monotonic()
    try:
        out = await service.retry_entry(entry_id)
    except DLQError as err:
        permit.release(success=isinstance(err, DLQStateConflictError),
                       latency=time.monotonic() - started, error=str(err))
        return DLQThrottleReplayResult(success=False, entry_id=entry_id, error=str(err),
                                       pending=isinstance(err, DLQCommandPendingError))
    permit.release(success=out["success"], latency=time.monotonic() - started,
                   error=None if out["success"] else out["message"])
    return DLQThrottleReplayResult(success=out["success"], entry_id=entry_id,
                                   error=None if out["success"] else out["message"])


async def replay_all_throttle_aware(service: AsyncDLQService, throttle: AdaptiveThrottle,
                                    domain: str | None = None, batch_size: int = 10,
                                    max_entries: int = 100) -> DLQThrottleBatchReplayResult:
    """Replay replayable entries in batches, checking throttle health before each batch.

    Stops early on ``emergency`` with ``early_stop_reason``. Entries the
    throttle refuses are counted as ``skipped``.
    """
    result = DLQThrottleBatchReplayResult()
    entries = await service.get_replayable_entries(domain, limit=check_limit(max_entries))
    size = check_limit(batch_size)
    for start in range(0, len(entries), size):
        if throttle.health == "emergency":
            result.early_stop_reason = f"throttle in emergency after {result.total} entries"
            break
        outcomes = await asyncio.gather(*(replay_throttle_aware(service, e.id, throttle)
                                          for e in entries[start:start + size]))
        for out in outcomes:
            result.total += 1
            if out.success:
                result.succeeded += 1
            elif out.retry_after is not None:
                result.skipped += 1
            elif out.pending:
                result.pending += 1
            else:
                result.failed += 1
    return result


async def bulk_replay(service: AsyncDLQService, filters: dict[str, Any] | None = None, *,
                      rate_per_second: float | None = None, throttle: bool = True,
                      dry_run: bool = False, canary: int = 0, canary_min_success: float = 0.9,
                      actor_id: str | None = None, reason: str = "",
                      page_size: int = 50) -> dict[str, Any]:
    """Redrive every entry matching ``filters`` as a durable ``BulkReplayWorkflow``.

    The filter is resolved to a frozen set of ids when the redrive starts
    (later entries are not swept in). Without a ``status`` filter it takes
    the replayable entries (``pending`` with budget left).

    Args:
        service: The service.
        filters: As for :meth:`list_entries`.
        rate_per_second: Ceiling on replays per second (None: no ceiling).
        throttle: Adapt concurrency to the downstream's health (AIMD) and
            stop early on emergency.
        dry_run: Only report ``count``, a breakdown by domain and failure
            type, and a ``sample``; nothing changes.
        canary: Replay this many first; continue only if at least
            ``canary_min_success`` of them succeed.
        canary_min_success: Success ratio the canary needs, 0..1.
        actor_id: Who runs the redrive (recorded on every entry touched).
        reason: Why (recorded on every entry touched).
        page_size: Entries per page (progress is exact at page ends, and
            read from the page's heartbeats in between).

    Returns:
        The dry-run report, or ``{"workflow_id", "bulk_id", "total"}`` of
        the started redrive (follow it with :meth:`get_bulk_replay`).

    Raises:
        ValueError: Bad arguments, checked before anything starts.
    """
    parsed = parse_filters(filters)
    if rate_per_second is not None:
        rate_per_second = check_rate("rate_per_second", rate_per_second)
    if check_int("canary", canary) < 0:
        raise ValueError(f"canary must be >= 0, got {canary}")
    if (isinstance(canary_min_success, bool) or not isinstance(canary_min_success, int | float)
            or not 0 <= canary_min_success <= 1):
        raise ValueError(f"canary_min_success must be within 0..1, got {canary_min_success}")
    if not 1 <= check_int("page_size", page_size) <= 1000:
        raise ValueError(f"page_size must be within 1..1000, got {page_size}")
    check_operator_text(actor_id=actor_id, reason=reason)
    if not dry_run and not (actor_id or "").strip():
        raise ValueError("bulk_replay requires actor_id")
    if not dry_run and not (reason or "").strip():
        raise ValueError("bulk_replay requires a non-empty reason")
    repository = service.repository
    preview = await asyncio.to_thread(repository.bulk_breakdown, parsed)
    if dry_run:
        return {"dry_run": True, **preview}
    if canary > preview["count"]:
        raise ValueError(f"canary ({canary}) is larger than the set ({preview['count']})")
    bulk_id = uuid.uuid4().hex
    # The reason is recorded on every entry touched: filtered like any operator text.
    reason = service.config.redactor.text(reason)
    client = await service.get_client()
    # Freeze the set now, not in the workflow's first activity: an entry
    # stored after this call returns must never be swept in. (The workflow
    # keeps its freeze step for runs started without a frozen set.)
    total = await asyncio.to_thread(repository.freeze_bulk_set, bulk_id, parsed)
    try:
        handle = await client.start_workflow(
            BULK_WORKFLOW,
            BulkReplayInput(bulk_id=bulk_id, filters=filters or {}, actor_id=actor_id or "",
                            reason=reason, rate_per_second=rate_per_second, throttle=throttle,
                            canary=canary, canary_min_success=canary_min_success,
                            page_size=page_size,
                            # Already frozen: the workflow skips its own freeze step.
                            frozen=True, progress=BulkReplayProgress(
                                bulk_id=bulk_id, total=total, remaining=total)),
            id=f"dlq-bulk-{bulk_id}", task_queue=service.config.task_queue,
            static_summary=f"bulk redrive by {actor_id}: {reason[:100]}",
        )
    except BaseException:
        # Nothing half-started stays behind.
        await asyncio.to_thread(repository.drop_bulk_set, bulk_id)
        raise
    return {"workflow_id": handle.id, "bulk_id": bulk_id, "total": total}


@contextlib.contextmanager
def _bulk_errors(workflow_id: str, action: str) -> Iterator[None]:
    """Map Temporal's answers about a bulk redrive to the DLQ's public errors."""
    try:
        yield
    except RPCError as err:
        # Temporal answers NOT_FOUND for a closed workflow too; its message tells.
        if "completed" in err.message or "already finished" in err.message:
            raise DLQStateConflictError(f"bulk redrive {workflow_id} has already ended; it "
                                        f"accepts no {action}") from None
        if err.status == RPCStatusCode.NOT_FOUND:
            raise DLQEntryNotFoundError(f"no bulk redrive {workflow_id}") from None
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise DLQUnavailableError(f"cannot reach Temporal: {err.message}") from err
        raise DLQError(f"{action} of bulk redrive {workflow_id} failed: {err.message}") from err


def _running_page(progress: BulkReplayProgress, details: list[Any]) -> None:
    """Add the outcomes a running page heartbeated (not yet counted) to ``progress``."""
    if len(details) < 2 or not isinstance(details[0], dict) or not isinstance(details[1], dict):
        return  # a page of an older worker: its outcomes count when it ends
    if details[1].get("after") != progress.cursor:
        return  # the workflow counted that page meanwhile
    outcomes = [v for v in details[0].values() if isinstance(v, str)]
    progress.done += len(outcomes)
    progress.succeeded += outcomes.count("succeeded")
    progress.failed += outcomes.count("failed")
    progress.skipped += outcomes.count("skipped")
    progress.remaining = max(0, progress.total - progress.done)


async def get_bulk_replay(service: AsyncDLQService, workflow_id: str) -> BulkReplayProgress:
    """Progress of a bulk redrive, while it runs (also mid-page) and after it ended.

    ``workflow_id`` may be ``dlq-bulk-<hex>`` or the bare ``bulk_id``. The
    counts include the outcomes the running page has heartbeated so far.

    Raises:
        DLQEntryNotFoundError: No such bulk redrive.
    """
    workflow_id = service.bulk_workflow_id(workflow_id)
    client = await service.get_client()
    handle = client.get_workflow_handle(workflow_id, result_type=BulkReplayProgress)
    with _bulk_errors(workflow_id, "progress query"):
        # Described before the query: a page counted in between is then
        # recognised by its cursor and not counted twice.
        described = await handle.describe()
        if described.status == WorkflowExecutionStatus.COMPLETED:
            return await handle.result()
        progress = await handle.query("get_progress", result_type=BulkReplayProgress)
    if described.status != WorkflowExecutionStatus.RUNNING:
        progress.status = str(described.status.name).lower() if described.status else "unknown"
        return progress
    for pending in described.raw_description.pending_activities:
        if pending.activity_type.name == "replay_bulk_page" and pending.heartbeat_details:
            details = await client.data_converter.decode(
                list(pending.heartbeat_details.payloads))
            _running_page(progress, details)
    return progress


async def wait_bulk_replay(service: AsyncDLQService, workflow_id: str) -> BulkReplayProgress:
    """Wait for a bulk redrive to end and return its final progress.

    Raises:
        DLQEntryNotFoundError: No such bulk redrive.
        DLQError: The redrive's workflow failed or was terminated.
    """
    workflow_id = service.bulk_workflow_id(workflow_id)
    client = await service.get_client()
    with _bulk_errors(workflow_id, "wait"):
        try:
            return await client.get_workflow_handle(
                workflow_id, result_type=BulkReplayProgress).result()
        except WorkflowFailureError as err:
            raise DLQError(f"bulk redrive {workflow_id} did not complete: "
                           f"{err.cause or err}") from None


async def signal_bulk_replay(service: AsyncDLQService, workflow_id: str,
                             command: Literal["pause", "resume", "cancel"]) -> None:
    """Pause, resume or cancel a bulk redrive (acts within a second, also mid-page).

    Raises:
        ValueError: Another command.
        DLQEntryNotFoundError: No such bulk redrive.
        DLQStateConflictError: The redrive has already ended.
    """
    if command not in ("pause", "resume", "cancel"):
        raise ValueError(f"command must be pause, resume or cancel, got {command!r}")
    workflow_id = service.bulk_workflow_id(workflow_id)
    client = await service.get_client()
    with _bulk_errors(workflow_id, command):
        await client.get_workflow_handle(workflow_id).signal(command)
