"""Operator commands on one entry: retry, force-redrive, resolve (updates to its workflow).

These functions are :class:`~dlq.AsyncDLQService` methods (the façade binds
them); ``service`` is the instance.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from dlq._checks import check_resolve_status
from dlq._errors import ERROR_TYPES, DLQEntryNotFoundError, DLQError, DLQStateConflictError
from dlq._messages import (
    EditDataInput,
    EditDataResult,
    ForceRedriveInput,
    ReplayResult,
    ResolveInput,
    ResolveResult,
    RetryInput,
)
from dlq._patch import check_patch
from dlq._temporal import workflow_id_for

if TYPE_CHECKING:
    from dlq._service import AsyncDLQService

__all__ = ["edit_entry_data", "force_redrive_entry", "resolve_entries_batch", "resolve_entry",
           "retry_entry", "retry_entry_as"]

T = TypeVar("T")
# The reference's result keys (ReplayResult also carries an internal ``error``).
REPLAY_RESULT_KEYS = {"success", "id", "retry_count", "previous_retry_count", "status", "message"}


async def retry_entry(service: AsyncDLQService, pk: str, *,
                      actor: str | None = None) -> dict[str, Any]:
    """Retry one entry through its replay handler, within its budget.

    ``success`` means the replay handler succeeded, not that a counter moved.
    ``actor`` (who asked) is recorded in the audit trail.

    Returns:
        Dict with ``success``, ``id``, ``retry_count`` (after the attempt),
        ``previous_retry_count``, ``status`` and ``message``.

    Raises:
        DLQEntryNotFoundError: Unknown id (404).
        DLQStateConflictError: Entry closed, at its cap, or replaying (409).
        DLQReplayError: No handler is registered (no budget consumed), or
            the replay failed unexpectedly (500).
    """
    return await retry_entry_as(service, pk, actor=actor)


async def retry_entry_as(service: AsyncDLQService, pk: str, *, actor: str | None,
                         reason: str = "", trigger: Literal["manual", "bulk"] = "manual",
                         update_id: str | None = None) -> dict[str, Any]:
    """:meth:`retry_entry` on behalf of someone, recorded in the audit trail.

    Bulk redrives use it with ``trigger="bulk"`` and one ``update_id`` per
    (redrive, entry): Temporal runs an update id once, so a repeated call
    never replays twice.
    """
    result = await _update(
        service, pk, "retry",
        RetryInput(dlq_id=pk, actor=actor, reason=reason, trigger=trigger),
        ReplayResult, update_id=update_id)
    return result.model_dump(mode="json", include=REPLAY_RESULT_KEYS)


async def force_redrive_entry(service: AsyncDLQService, pk: str, *,
                              actor_id: str | None = None, reason: str = "",
                              ticket_url: str | None = None) -> dict[str, Any]:
    """Force-redrive an entry past the cap gate (audited operator override).

    Grants a fresh budget and replays now. A still-broken entry converges
    back to ``requires_review`` within ``max_replay_attempts`` attempts.

    Args:
        service: The service.
        pk: Entry id.
        actor_id: Acting operator (required, recorded in the audit trail).
        reason: Justification (required, recorded).
        ticket_url: Optional change or incident ticket (recorded).

    Returns:
        Dict mirroring :meth:`retry_entry`; ``retry_count`` is 1 under the
        fresh budget.

    Raises:
        ValueError: Missing ``actor_id`` or ``reason``.
        DLQEntryNotFoundError: Unknown id (404).
        DLQStateConflictError: Entry closed or replaying (409).
        DLQReplayError: No handler, or an unexpected replay failure (500).
    """
    if not (actor_id or "").strip():
        raise ValueError("force_redrive_entry requires actor_id")
    if not (reason or "").strip():
        raise ValueError("force_redrive_entry requires a non-empty reason")
    result = await _update(
        service, pk, "force_redrive",
        ForceRedriveInput(dlq_id=pk, actor=actor_id, reason=reason, ticket_url=ticket_url),
        ReplayResult,
    )
    return result.model_dump(mode="json", include=REPLAY_RESULT_KEYS)


async def resolve_entry(service: AsyncDLQService, pk: str, notes: str = "",
                        resolution_type: str = "manual",
                        status: str = "resolved", *, actor: str | None = None
                        ) -> dict[str, Any]:
    """Resolve an entry (``status`` is ``resolved`` or ``discarded``).

    ``actor`` (who resolved it) is recorded in the audit trail.

    Returns:
        Dict with ``success``, ``id``, ``previous_status``,
        ``current_status``, ``resolved_at`` (ISO) and ``notes``.

    Raises:
        ValueError: ``status`` is not ``resolved`` or ``discarded``.
        DLQEntryNotFoundError: Unknown id (404).
        DLQStateConflictError: Entry already closed (409).
    """
    check_resolve_status(status)
    result = await _update(
        service, pk, "resolve",
        ResolveInput(dlq_id=pk, notes=notes or "", resolution_type=resolution_type,
                     status=status, actor=actor),
        ResolveResult,
    )
    return result.model_dump(mode="json")


async def resolve_entries_batch(service: AsyncDLQService, pks: list[str],
                                resolution_type: str = "manual", status: str = "resolved",
                                notes: str = "", chunk_size: int | None = None, *,
                                actor: str | None = None) -> dict[str, Any]:
    """Resolve many entries in chunks; one bad id does not stop the rest.

    ``actor`` is recorded in each entry's audit trail.

    Returns:
        Dict with ``total``, ``resolved``, ``failed``, ``chunks`` and
        ``results`` (one per id: ``id``, ``success``, ``current_status``
        or ``error`` and ``error_type``).

    Raises:
        ValueError: ``status`` is invalid (checked before anything changes).
    """
    check_resolve_status(status)
    size = chunk_size or service.config.batch_size
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {size}")

    async def one(pk: str) -> dict[str, Any]:
        try:
            res = await resolve_entry(service, pk, notes, resolution_type, status, actor=actor)
            return {"id": pk, "success": True, "current_status": res["current_status"]}
        except DLQError as err:
            return {"id": pk, "success": False, "error": str(err),
                    "error_type": type(err).__name__}

    results: list[dict[str, Any]] = []
    chunks = 0
    for start in range(0, len(pks), size):
        chunks += 1
        results.extend(await asyncio.gather(*(one(pk) for pk in pks[start:start + size])))
    resolved = sum(r["success"] for r in results)
    return {"total": len(pks), "resolved": resolved, "failed": len(pks) - resolved,
            "chunks": chunks, "results": results}


async def edit_entry_data(service: AsyncDLQService, pk: str, *,
                          request_data: dict[str, Any] | None = None,
                          snapshot_data: dict[str, Any] | None = None,
                          actor: str | None = None, reason: str = "") -> dict[str, Any]:
    """Edit an entry's data before its next replay (audited, with the diff).

    ``request_data`` and ``snapshot_data`` are JSON merge patches (RFC 7396)
    on the entry's current data: objects merge, ``None`` (JSON ``null``)
    removes a key, anything else replaces. The entry workflow applies the
    edit, keeps the data as captured (``original_data``, shown by
    :meth:`get_entry`), records the diff, the actor and the reason in the
    audit trail, and the next replay gets the edited data. Entries whose
    data was claim-checked to SQL (over ``DLQ_PAYLOAD_INLINE_BYTES``) cannot
    be edited, nor can an edit make the data larger than that.

    Returns:
        Dict with ``success``, ``id``, ``status``, ``data_edits`` (how many
        edits so far) and ``diff`` (``path``, ``op``, ``old``, ``new``).

    Raises:
        ValueError: No actor, a malformed patch, an edit that changes
            nothing, or edited data over the inline limit.
        DLQEntryNotFoundError: Unknown id (404).
        DLQStateConflictError: Entry closed or replaying (409).
        DLQError: The entry's data is claim-checked (400).
    """
    if not (actor or "").strip():
        raise ValueError("edit_entry_data requires an actor")
    patch = check_patch({name: value for name, value in (("request_data", request_data),
                                                         ("snapshot_data", snapshot_data))
                         if value is not None})
    patch = await _redact_patch(service, pk, patch)
    result = await _update(
        service, pk, "edit_data",
        EditDataInput(dlq_id=pk, actor=actor, reason=reason or "",
                      max_bytes=service.config.payload_inline_bytes, **patch),
        EditDataResult)
    return result.model_dump(mode="json")


async def _update(service: AsyncDLQService, pk: str, name: str, arg: Any,
                  result_type: type[T], *, update_id: str | None = None) -> T:
    """Send the update ``name`` to the entry's workflow and map what goes wrong to DLQ errors."""
    if not isinstance(pk, str) or not pk:
        raise DLQEntryNotFoundError(f"DLQ entry {pk!r} not found")
    # An operator's reason or notes may quote a secret; they are filtered
    # before they reach the history, the audit trail and SQL.
    arg = _redact_text_fields(service, arg)
    client = await service.get_client()
    # Bounded: with no worker polling, an update would otherwise wait forever.
    bound = service.config.command_timeout

    async def send(workflow_id: str) -> T:
        return await asyncio.wait_for(
            client.get_workflow_handle(workflow_id).execute_update(
                name, arg, id=update_id, result_type=result_type),
            timeout=bound)

    try:
        try:
            return await send(workflow_id_for(pk))
        except RPCError as err:
            # Entries with a dedup key live under a shared workflow id; SQL knows it.
            detail = (await service.get_entry(pk) if err.status == RPCStatusCode.NOT_FOUND
                      else None)
            if not detail or detail["workflow_id"] == workflow_id_for(pk):
                raise
            return await send(detail["workflow_id"])
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise DLQError(f"{name} of entry {pk} got no answer within {bound:g}s; is a DLQ "
                       f"worker running on task queue {service.config.task_queue!r}?") from None
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            raise ERROR_TYPES.get(cause.type or "", DLQError)(cause.message) from None
        raise DLQError(f"{name} failed for entry {pk}: {cause or err}") from None
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND and "completed" not in err.message:
            raise DLQError(f"{name} failed for entry {pk}: {err.message}") from err
    # The workflow is gone or closed: SQL says whether the entry ever existed.
    detail = await service.get_entry(pk)
    if detail is None:
        raise DLQEntryNotFoundError(f"DLQ entry {pk} not found")
    raise DLQStateConflictError(f"entry {pk} is {detail['status']}; it accepts no {name}")


def _redact_text_fields(service: AsyncDLQService, arg: Any) -> Any:
    """``arg`` with its ``reason`` and ``notes`` (the operator's free text) filtered."""
    redactor = service.config.redactor
    changed = {}
    for name in ("reason", "notes"):
        value = getattr(arg, name, None)
        if isinstance(value, str) and (new := redactor.text(value)) != value:
            changed[name] = new
    return arg.model_copy(update=changed) if changed else arg


async def _redact_patch(service: AsyncDLQService, pk: str,
                        patch: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """An edit's data crosses the same redaction as a capture (the entry's allow list applies)."""
    redactor = service.config.redactor
    if not redactor.enabled:
        return patch
    try:
        entry = await service.get_entry_by_id(pk) if isinstance(pk, str) and pk else None
    except Exception:  # noqa: BLE001 - SQL unreadable: no domain, so only "*" is allowed
        entry = None
    # Without the entry's domain only the "*" allow list applies: filtering
    # too much is the safe side.
    domain = entry.domain if entry is not None else ""
    # None (a merge patch's "remove this key") stays None under every rule.
    return {name: redactor.data(value, field=name, domain=domain)
            for name, value in patch.items()}
