"""Storing failures: validation, sync stores, the outbox fallback, claim checks, dedup.

These functions are :class:`~dlq.AsyncDLQService` methods (the façade binds
them); ``service`` is the instance.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from temporalio.client import (
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from dlq import _metrics as metrics
from dlq._boundary import check_entry
from dlq._breaker import answer_within, workflow_exists_by
from dlq._entry import build_entry
from dlq._entry_start import capture, claim_check, start_options
from dlq._errors import DLQUnavailableError
from dlq._fields import StoreArgs, takes_store_args
from dlq._messages import EntryInput
from dlq._quarantine import permanent_rejection
from dlq._redact import redact_text
from dlq._relay import Relay
from dlq._results import DLQEntryResult
from dlq._temporal import ENTRY_WORKFLOW, entry_workflow_id
from dlq._tracing import current_trace_context, delivery_span, store_span

if TYPE_CHECKING:
    from dlq._service import AsyncDLQService

__all__ = ["admit", "create_test_entry", "deliver", "drain_outbox", "enqueue",
           "get_capture_stats", "start_relay", "store_checked", "store_entry", "store_failure"]

log = logging.getLogger("dlq")


# The docstring documents the public signature that takes_store_args gives this.
async def _store_failure(service: AsyncDLQService, args: StoreArgs) -> DLQEntryResult:  # noqa: D417
    """Store a failed operation in the DLQ.

    With ``mode="sync"`` (the default) it returns once the entry's workflow
    exists and its SQL row is readable, with the real ``dlq_id``. If that
    does not happen within ``config.store_timeout`` seconds it returns
    ``success=False`` with an ``error`` saying why; it never hangs and
    never raises for an unreachable Temporal.

    Args:
        domain: Business domain (letters, digits, ``._-``; at most 100).
        failure_type: Specific failure type, e.g. ``PG_TIMEOUT`` (same rules).
        entity_type: Type of the related entity, e.g. ``order``.
        entity_id: Id of the related entity.
        user_id: Related user id.
        error_code: Error code from the external system.
        error_message: Human-readable error message.
        snapshot_data: State snapshot for recovery (JSON-serialisable).
        request_data: Original request payload (JSON-serialisable).
        response_data: External system response (JSON-serialisable).
        metadata: Additional debug context (JSON-serialisable).
        next_action_hint: Guidance for operators.
        recommended_action: ``replay`` enables automatic replay;
            anything else (``manual_check``...) waits for an operator.
        request: An HTTP request object (Django, Starlette/FastAPI, Flask...)
            or a dict already taken from one; its method, path and request
            id are copied into ``metadata["request"]`` on the calling thread,
            so any mode keeps them and the object is never shared.
        mode: ``"sync"``: wait for the workflow and the SQL row.
            ``"async"``: append to the local outbox and return at once
            with the id the entry will have; a relay delivers it.
            None: ``"async"`` if ``DLQ_OUTBOX_ENABLED``, else ``"sync"``;
            always ``"sync"`` with a ``request`` (the reference's rule).
        dedup_key: Groups repeats: while an entry with the same (domain,
            failure_type, dedup_key) is open, a store adds an occurrence
            to it (``occurrences``, ``last_seen_at``) and returns its id
            instead of creating a second entry. Async stores with a dedup
            key return ``dlq_id=None``: which entry they join is known
            only on delivery.

    Returns:
        DLQEntryResult with the outcome. When a sync store fails, the
        entry is kept in the outbox: ``dlq_id`` is set, ``fallback_path``
        names the outbox file and the relay delivers it later.

    Raises:
        ValueError: Naming the invalid field and the limit it breaks
            (docs/limits.md); nothing is written.
    """
    ready = admit(service, args)
    if isinstance(ready, DLQEntryResult):
        return ready
    return await store_checked(service, ready)


store_failure = takes_store_args(_store_failure)


def admit(service: AsyncDLQService, args: StoreArgs, *,
          run_relay: bool = True) -> DLQEntryResult | EntryInput:
    """The part of a store that needs no event loop (any thread).

    Validates and builds the entry; answers at once when the DLQ is
    disabled or the store is async (appended to the outbox). Otherwise
    returns the entry, for a sync store.

    Args:
        service: The service.
        args: The store's bound arguments.
        run_relay: Start the relay on the running loop after an append;
            False when the caller makes sure it runs (the blocking API
            starts it on its own loop thread, not the caller's).
    """
    fields, request, mode = args
    if mode not in (None, "sync", "async"):
        raise ValueError(f"mode must be 'sync', 'async' or None, got {mode!r}")
    if not service.is_enabled:
        return DLQEntryResult(success=False, error="DLQ disabled")
    if mode is None:
        mode = "async" if service.config.outbox_enabled and request is None else "sync"
    # The request's context becomes a plain dict here, on the caller's thread:
    # the request object itself never reaches the outbox, the relay or the loop thread.
    entry = build_entry(fields, request, config=service.config)
    entry.capture_mode = mode  # counted by the worker (dlq_entries_stored_total{mode})
    if mode == "async":
        entry.trace_context = current_trace_context(service.config.otel_enabled)
        return enqueue(service, entry, run_relay=run_relay)
    return entry


async def store_entry(service: AsyncDLQService, entry: EntryInput) -> DLQEntryResult:
    """Store an entry built by :func:`dlq.new_entry_input`, as a sync ``store_failure`` does.

    Returns once the entry's workflow exists and its SQL row is readable; on
    failure within ``config.store_timeout`` the entry is kept in the outbox
    (``success=False`` with ``fallback_path``). Storing the same entry again
    never makes a second one.

    Raises:
        ValueError: An entry built by hand that breaks a limit (docs/limits.md);
            nothing is written.
    """
    # An entry built by hand crosses the boundary check here (raises ValueError).
    check_entry(entry, max_data_bytes=service.config.payload_max_bytes)
    return await store_checked(service, entry)


async def store_checked(service: AsyncDLQService, entry: EntryInput) -> DLQEntryResult:
    """:func:`store_entry` of an entry the boundary check built (a store's own)."""
    if entry.capture_mode is None:
        entry = entry.model_copy(update={"capture_mode": "sync"})
    with store_span(entry, service.config.otel_enabled):  # DLQ_OTEL_ENABLED: the trace's store step
        return await _store_entry(service, entry)


async def _store_entry(service: AsyncDLQService, entry: EntryInput) -> DLQEntryResult:
    wid = entry_workflow_id(entry)
    bound = service.config.store_timeout
    address = service.config.temporal_address
    if service.breaker.is_open:
        # An earlier store found Temporal unreachable: do not wait for it again.
        return enqueue(service, entry, reason="unavailable",
                       error=service.breaker.short_circuit())
    # Asked before the bound runs out, so that telling "no worker" from "no
    # Temporal" afterwards costs next to nothing (the store returns within
    # store_timeout + 10 %); cancelled when the store succeeds in time.
    exists = asyncio.ensure_future(workflow_exists_by(service, wid, bound))
    try:
        async with asyncio.timeout(bound):
            client = await service.get_client()
            captured = await capture(service, client, await claim_check(service, entry))
        return DLQEntryResult(success=True, dlq_id=captured.dlq_id)
    except WorkflowAlreadyStartedError:
        # A retried store of an entry whose workflow already closed.
        return DLQEntryResult(success=True, dlq_id=entry.dlq_id)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        # The SDK turns the timeout's cancellation into its own error.
        if await answer_within(exists, bound * 0.04):
            return enqueue(service, entry, reason="unconfirmed", error=(
                f"entry workflow {wid} was started but its SQL row was not confirmed "
                f"within {bound:g}s (is a DLQ worker running on task queue "
                f"{service.config.task_queue!r}?)"))
        return _unreachable(service, entry, "timeout",
                            f"Temporal at {address} did not accept the entry within {bound:g}s")
    except DLQUnavailableError as err:
        return _unreachable(service, entry, "unavailable",
                            f"cannot reach Temporal at {address}: {err.__cause__}")
    except Exception as err:  # noqa: BLE001 - the caller must never see a raise here
        # An error's text may quote what it failed on: filtered before it is logged.
        error = redact_text(f"{type(err).__name__}: {err}")
        if isinstance(err, RPCError) and err.status == RPCStatusCode.UNAVAILABLE:
            return _unreachable(service, entry, "unavailable",
                                f"Temporal at {address} is unavailable: {error}")
        log.warning("DLQ store of %s/%s failed: %s", entry.domain, entry.failure_type, error)
        return enqueue(service, entry, reason="error", error=f"DLQ store failed: {error}")
    finally:
        exists.cancel()


def _unreachable(service: AsyncDLQService, entry: EntryInput, reason: str,
                 error: str) -> DLQEntryResult:
    service.trip_breaker(error)
    return enqueue(service, entry, reason=reason, error=error)


async def create_test_entry(
    service: AsyncDLQService,
    healing_domain: str | None = None,
    failure_type: str | None = None,
    user_id: int | None = None,
    entity_type: str | None = "test",
    entity_id: str | None = "",
    error_message: str = "Test failure for load testing",
    snapshot_data: dict[str, Any] | None = None,
    request_data: dict[str, Any] | None = None,
    response_data: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    created_by: str = "",
) -> dict[str, Any]:
    """Create a synthetic entry for debugging or load testing.

    A thin wrapper over ``store_failure(mode="sync")``, so the result is a
    real, retrievable entry on the production path.

    Returns:
        A JSON-safe dict with ``success``, ``dlq_id``, ``error``,
        ``domain``, ``failure_type`` and ``created_by``.
    """
    domain = healing_domain or "test"
    ftype = failure_type or "TEST_FAILURE"
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    result = await service.store_failure(
        domain, ftype, entity_type=entity_type, entity_id=entity_id, user_id=user_id,
        error_code="TEST", error_message=error_message, snapshot_data=snapshot_data,
        request_data=request_data, response_data=response_data,
        metadata={**(metadata or {}), "test_entry": True, "created_by": created_by},
        recommended_action="manual_check", mode="sync",
    )
    return {"success": result.success, "dlq_id": result.dlq_id, "error": result.error,
            "domain": domain, "failure_type": ftype, "created_by": created_by}


# --- the outbox and its relay ----------------------------------------------------------


def enqueue(service: AsyncDLQService, entry: EntryInput, error: str | None = None, *,
            reason: str = "error", run_relay: bool = True) -> DLQEntryResult:
    """Keep ``entry`` in the outbox; ``error`` set means this is a sync fallback.

    ``reason`` labels the fallback in ``dlq_store_failures_total``.
    """
    outbox = service.outbox
    if error is not None:
        metrics.count_store_failure(reason)
        entry.capture_mode = "fallback"
        entry.trace_context = current_trace_context(service.config.otel_enabled)
    try:
        outbox.append(entry)
    except Exception as err:  # noqa: BLE001 - report, never raise to the caller
        metrics.count_store_failure("outbox_append_failed")
        lost = redact_text(f"outbox append failed: {type(err).__name__}: {err}")
        log.error("DLQ %s for %s", lost, entry.dlq_id)
        return DLQEntryResult(success=False, error=f"{error}; {lost}" if error else lost)
    if run_relay:
        start_relay(service)
    elif service._relay is not None:
        service._relay.notify()
    if error is None:
        return DLQEntryResult(success=True, dlq_id=None if entry.dedup_key else entry.dlq_id)
    return DLQEntryResult(success=False, dlq_id=entry.dlq_id,
                          error=f"{error}; kept in the outbox for the relay",
                          fallback_path=str(outbox.path))




def _get_relay(service: AsyncDLQService) -> Relay:
    if service._relay is None:
        service._relay = Relay(service.outbox, service.deliver, batch_size=100,
                               ready=service.get_client, permanent=permanent_rejection)
    return service._relay


def start_relay(service: AsyncDLQService) -> Relay:
    """Run the relay for this service's outbox on the running loop (idempotent)."""
    relay = _get_relay(service)
    task = service._relay_task
    if task is None or task.done():
        try:
            service._relay_task = asyncio.get_running_loop().create_task(relay.run())
        except RuntimeError:  # no running loop: a drain will happen later
            pass
    relay.notify()
    return relay


async def drain_outbox(service: AsyncDLQService, *, timeout: float | None = None) -> int:
    """Deliver every outbox record now (for operators); returns how many."""
    return await _get_relay(service).drain(timeout=timeout)


async def get_capture_stats(service: AsyncDLQService) -> dict[str, Any]:
    """Outbox depth, oldest record age, relay errors, quarantined records and the breaker.

    So a stuck relay, a record Temporal refused for good (``quarantined``)
    and an outage this process noticed (``circuit_open``) are visible.
    """
    stats = await asyncio.to_thread(service.outbox.stats)
    relay = service._relay
    return {"outbox_path": str(service.outbox.path), "outbox_depth": stats.depth,
            "oldest_outbox_age_seconds": stats.oldest_age_seconds,
            "outbox_failing": stats.failing, "last_outbox_error": stats.last_error,
            "quarantined": stats.quarantined,
            "relay_running": service.relay_running,
            "relay_delivered": relay.delivered if relay else 0,
            "relay_errors": relay.errors if relay else 0, **service.breaker.snapshot()}


async def deliver(service: AsyncDLQService, entry: EntryInput) -> None:
    """Make sure the entry's workflow exists (idempotent; what the relay calls)."""
    # DLQ_OTEL_ENABLED: the delivery continues the storing caller's trace.
    with delivery_span(entry, service.config.otel_enabled):
        await _deliver(service, entry)


async def _deliver(service: AsyncDLQService, entry: EntryInput) -> None:
    client = await service.get_client()
    entry = await claim_check(service, entry)
    bound = service.config.store_timeout
    if entry.dedup_key:
        # An occurrence must reach the open entry: the capture update counts it.
        await asyncio.wait_for(capture(service, client, entry), timeout=bound)
        return
    try:
        await asyncio.wait_for(client.start_workflow(ENTRY_WORKFLOW, entry,
                                                     **start_options(service, entry)),
                               timeout=bound)
    except WorkflowAlreadyStartedError:
        pass  # it exists and already closed: delivered
