"""Operator commands on one entry: retry, force-redrive, resolve (updates to its workflow).

These functions are :class:`~dlq.AsyncDLQService` methods (the façade binds
them); ``service`` is the instance.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from temporalio.client import (
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from dlq._checks import check_entry_id, check_int, check_operator_text, check_resolve_status
from dlq._errors import (
    ERROR_TYPES,
    DLQCommandPendingError,
    DLQEntryNotFoundError,
    DLQError,
    DLQStateConflictError,
    DLQUnavailableError,
    as_public_error,
)
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
from dlq._redact import redact_command_text
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
    check_operator_text(actor=actor, reason=reason)
    if trigger not in ("manual", "bulk"):
        raise ValueError(f"trigger must be manual or bulk, got {trigger!r:.40}")
    result = await _update(
        service, pk, "retry",
        RetryInput(dlq_id=pk, actor=actor, reason=reason, trigger=trigger),
        ReplayResult, update_id=update_id)
    return result.model_dump(mode="json", include=REPLAY_RESULT_KEYS)


async def force_redrive_entry(service: AsyncDLQService, pk: str, *,
                              actor_id: str | None = None, reason: str = "",
                              ticket_url: str | None = None,
                              actor: str | None = None) -> dict[str, Any]:
    """Force-redrive an entry past the cap gate (audited operator override).

    Grants a fresh budget and replays now. A still-broken entry converges
    back to ``requires_review`` within ``max_replay_attempts`` attempts.

    Args:
        service: The service.
        pk: Entry id.
        actor_id: Acting operator (required, recorded in the audit trail).
        actor: The same, under the key every other command uses (give one).
        reason: Justification (required, recorded).
        ticket_url: Optional change or incident ticket (recorded).

    Returns:
        Dict mirroring :meth:`retry_entry`; ``retry_count`` is 1 under the
        fresh budget.

    Raises:
        ValueError: Missing ``actor_id`` or ``reason``, or text over its
            limit (:class:`DLQInvalidInputError`).
        DLQEntryNotFoundError: Unknown id (404).
        DLQStateConflictError: Entry closed or replaying (409).
        DLQReplayError: No handler, or an unexpected replay failure (500).
        DLQCommandPendingError: Sent, not confirmed in time (202).
    """
    if actor is not None and actor_id is not None and actor != actor_id:
        raise ValueError("give actor or actor_id, not two different ones")
    actor_id = actor_id if actor_id is not None else actor
    check_operator_text(actor_id=actor_id, reason=reason, ticket_url=ticket_url)
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
        DLQInvalidInputError: ``status`` is not ``resolved`` or
            ``discarded``, or a text is over its limit (a ``DLQError``,
            HTTP 400, and a ``ValueError``).
        DLQEntryNotFoundError: Unknown id (404).
        DLQStateConflictError: Entry already closed (409).
        DLQCommandPendingError: Sent, not confirmed in time (202).
    """
    check_resolve_status(status)
    check_operator_text(notes=notes or "", resolution_type=resolution_type, actor=actor)
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
        Dict with ``total``, ``resolved``, ``failed``, ``pending``, ``chunks``
        and ``results`` (one per id: ``id``, ``success``, ``current_status``
        or ``error`` and ``error_type``; ``pending`` True for a resolve sent
        but not confirmed in time, which is not counted as failed). A bad id
        (not a string, empty) is a ``ValueError`` in its own result.

    Raises:
        ValueError: ``pks`` is not a list of ids, or ``status``, ``notes``,
            ``actor`` or ``chunk_size`` is invalid (checked before anything changes).
    """
    if isinstance(pks, str | bytes) or not isinstance(pks, list | tuple):
        raise ValueError(f"pks must be a list of entry ids, got {type(pks).__name__}")
    check_resolve_status(status)
    check_operator_text(notes=notes or "", resolution_type=resolution_type, actor=actor)
    size = service.config.batch_size if chunk_size is None else check_int("chunk_size",
                                                                           chunk_size)
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {size}")

    async def one(pk: Any) -> dict[str, Any]:
        shown = pk if isinstance(pk, str) else repr(pk)[:60]
        try:
            res = await resolve_entry(service, check_entry_id(pk), notes, resolution_type,
                                      status, actor=actor)
            return {"id": shown, "success": True, "current_status": res["current_status"]}
        except DLQCommandPendingError as err:
            return {"id": shown, "success": False, "pending": True,
                    "accepted": err.accepted, "error": str(err),
                    "error_type": type(err).__name__}
        except (DLQError, ValueError) as err:
            return {"id": shown, "success": False, "error": str(err),
                    "error_type": type(err).__name__}
        except Exception as err:  # noqa: BLE001 - one id's failure never stops the rest
            # SQL or Temporal out of reach: a public error, never a driver's class.
            public = _public(service, err) or DLQError(
                f"resolve of entry {shown} failed unexpectedly ({type(err).__name__})")
            return {"id": shown, "success": False, "error": str(public),
                    "error_type": type(public).__name__}

    results: list[dict[str, Any]] = []
    chunks = 0
    for start in range(0, len(pks), size):
        chunks += 1
        results.extend(await asyncio.gather(*(one(pk) for pk in pks[start:start + size])))
    resolved = sum(r["success"] for r in results)
    pending = sum(bool(r.get("pending")) for r in results)
    return {"total": len(pks), "resolved": resolved, "failed": len(pks) - resolved - pending,
            "pending": pending, "chunks": chunks, "results": results}


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
    check_operator_text(actor=actor, reason=reason or "")
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
    """Send the update ``name`` to the entry's workflow and map what goes wrong to DLQ errors.

    Within ``command_timeout`` the command is confirmed (the result), or
    rejected (the workflow's error); past it, it is reported as pending
    (:class:`DLQCommandPendingError`), never as failed: it may still apply.
    """
    check_entry_id(pk, "pk")
    # An operator's reason or notes may quote a secret; they are filtered
    # before they reach the history, the audit trail and SQL.
    arg = redact_command_text(arg, service.config.redactor)
    client = await service.get_client()
    # Bounded: with no worker polling, an update would otherwise wait forever.
    bound = service.config.command_timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    # Our own id, so a pending command can be named (and a caller's id deduplicates).
    update_id = update_id or f"{name}-{uuid.uuid4().hex}"
    accepted = False

    async def send(workflow_id: str) -> T:
        nonlocal accepted
        handle = await asyncio.wait_for(
            client.get_workflow_handle(workflow_id).start_update(
                name, arg, id=update_id, result_type=result_type,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED),
            timeout=max(deadline - loop.time(), 0.01))
        accepted = True
        return await asyncio.wait_for(handle.result(),
                                      timeout=max(deadline - loop.time(), 0.01))

    try:
        try:
            return await send(workflow_id_for(pk))
        except RPCError as err:
            # Entries with a dedup key live under a shared workflow id; SQL knows it.
            detail = (await _sql_detail(service, pk) if err.status == RPCStatusCode.NOT_FOUND
                      else None)
            if not detail or detail["workflow_id"] == workflow_id_for(pk):
                raise
            return await send(detail["workflow_id"])
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise _pending(service, pk, name, update_id, accepted=accepted) from None
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            raise ERROR_TYPES.get(cause.type or "", DLQError)(cause.message) from None
        raise DLQError(f"{name} failed for entry {pk}: {cause or err}") from None
    except RPCError as err:
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise DLQUnavailableError(
                f"{name} of entry {pk} was not sent: cannot reach Temporal at "
                f"{service.config.temporal_address} ({err.message})") from None
        if err.status != RPCStatusCode.NOT_FOUND and "completed" not in err.message:
            raise DLQError(f"{name} failed for entry {pk}: {err.message}") from err
    # The workflow is gone or closed: SQL says whether the entry ever existed.
    detail = await _sql_detail(service, pk)
    if detail is None:
        raise DLQEntryNotFoundError(f"DLQ entry {pk} not found")
    raise DLQStateConflictError(f"entry {pk} is {detail['status']}; it accepts no {name}")


def _public(service: AsyncDLQService, err: BaseException) -> DLQError | None:
    return as_public_error(err, database_url=service.config.database_url,
                           temporal_address=service.config.temporal_address)


async def _sql_detail(service: AsyncDLQService, pk: str) -> dict[str, Any] | None:
    """The entry's SQL row; SQL out of reach is :class:`DLQUnavailableError`, not a driver error."""
    try:
        return await service.get_entry(pk)
    except Exception as err:
        public = _public(service, err)
        if public is None or public is err:
            raise
        raise public from err


def _pending(service: AsyncDLQService, pk: str, name: str, update_id: str, *,
             accepted: bool) -> DLQCommandPendingError:
    bound = service.config.command_timeout
    if accepted:
        why = (f"entry {pk}'s workflow accepted the {name} (it will be applied) but did not "
               f"confirm it within {bound:g}s: the replay is still running or SQL is behind")
    else:
        why = (f"the {name} of entry {pk} was sent but no DLQ worker took it within "
               f"{bound:g}s (is one polling task queue {service.config.task_queue!r}? is "
               "SQL slow?); Temporal holds it and a worker applies or rejects it when it "
               "gets to it")
    return DLQCommandPendingError(
        f"pending, not failed: {why}. Check `dlq show {pk}` before sending it again.",
        entry_id=pk, command=name, accepted=accepted, update_id=update_id)


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
