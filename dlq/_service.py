"""The client side: ``AsyncDLQService`` and its blocking twin ``DLQService``."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from dlq._config import DLQConfig
from dlq._db import create_db_engine
from dlq._entry import new_entry_input, request_context
from dlq._errors import ERROR_TYPES, DLQEntryNotFoundError, DLQError, DLQStateConflictError
from dlq._filters import decode_cursor, encode_cursor, parse_filters
from dlq._outbox import Outbox
from dlq._relay import Relay
from dlq._repository import PAYLOAD_FIELDS, FailedOperationRepository, SQLModelRepository
from dlq._state import RESOLVE_TARGETS
from dlq._temporal import (
    BULK_WORKFLOW,
    ENTRY_WORKFLOW,
    MAINTENANCE_WORKFLOW,
    SEARCH_ATTRIBUTES,
    connect,
    entry_workflow_id,
    workflow_id_for,
)
from dlq._throttle import AdaptiveThrottle
from dlq._types import (
    BulkReplayInput,
    BulkReplayProgress,
    CaptureInput,
    CaptureResult,
    CleanupStats,
    DLQBatchReplayStats,
    DLQEntryResult,
    DLQStatus,
    DLQThrottleBatchReplayResult,
    DLQThrottleReplayResult,
    EntryInput,
    FailedOperationData,
    ForceRedriveInput,
    MaintenanceInput,
    MaintenanceResult,
    ReplayResult,
    ResolveInput,
    ResolveResult,
    RetryInput,
)

__all__ = ["AsyncDLQService", "DLQService", "get_dlq_service", "reset_dlq_service",
           "store_to_dlq"]

log = logging.getLogger("dlq")
T = TypeVar("T")
DEDUP_IN_FLIGHT = 8
REPLAY_RESULT_KEYS = ("success", "id", "retry_count", "previous_retry_count", "status", "message")


class AsyncDLQService:
    """Dead-letter queue operations as coroutines, for asyncio code.

    Every entry is a ``DLQEntryWorkflow`` on Temporal; reads come from the SQL
    read model.

    Args:
        config: Configuration; read from ``DLQ_*`` variables if None.
        repository: Read side of the SQL store; the SQLModel one on
            ``config.database_url`` if None.
        client: A connected Temporal client using the pydantic data
            converter; connected lazily from ``config`` if None.
    """

    def __init__(self, config: DLQConfig | None = None,
                 repository: FailedOperationRepository | None = None, *,
                 client: Client | None = None) -> None:
        self.config = config or DLQConfig.from_settings()
        self._repository = repository
        self._client = client
        self._engine: Any = None
        self._outbox: Outbox | None = None
        self._relay: Relay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._dedup_gates: dict[str, list[Any]] = {}

    # --- plumbing -------------------------------------------------------------

    @property
    def is_enabled(self) -> bool:
        """Whether the DLQ is enabled."""
        return self.config.enabled

    @property
    def repository(self) -> FailedOperationRepository:
        """The SQL read side (created on first use)."""
        if self._repository is None:
            self._engine = create_db_engine(self.config.database_url)
            self._repository = SQLModelRepository(self._engine)
        return self._repository

    async def get_client(self) -> Client:
        """The Temporal client, connected on first use within ``store_timeout``."""
        if self._client is None:
            try:
                self._client = await asyncio.wait_for(
                    connect(self.config.temporal_address, self.config.namespace),
                    timeout=self.config.store_timeout,
                )
            except (TimeoutError, RuntimeError) as err:
                raise _Unreachable() from err
        return self._client

    async def close(self) -> None:
        """Stop the relay and release the SQL engine this service created."""
        if self._relay_task is not None:
            self._relay_task.cancel()
            # Bounded, and without swallowing a cancel aimed at the caller itself.
            await asyncio.wait({self._relay_task}, timeout=5)
            self._relay_task = None
        if self._engine is not None:
            self._engine.dispose()

    # --- store ----------------------------------------------------------------

    async def store_failure(
        self,
        domain: str,
        failure_type: str,
        entity_type: str | None = None,
        entity_id: str | None = None,
        user_id: int | None = None,
        error_code: str = "",
        error_message: str = "",
        snapshot_data: dict[str, Any] | None = None,
        request_data: dict[str, Any] | None = None,
        response_data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        next_action_hint: str = "",
        recommended_action: str = "",
        request: Any = None,
        mode: Literal["sync", "async"] | None = None,
        *,
        dedup_key: str | None = None,
    ) -> DLQEntryResult:
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
            request: An HTTP request object; its method, path and request id
                are kept in ``metadata["request"]``.
            mode: ``"sync"``: wait for the workflow and the SQL row.
                ``"async"``: append to the local outbox and return at once
                with the id the entry will have; a relay delivers it.
                None: ``"async"`` if ``DLQ_OUTBOX_ENABLED``, else ``"sync"``;
                always ``"sync"`` with a ``request``.
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
            ValueError: Naming the invalid field (nothing is written), or
                ``mode="async"`` together with a ``request``.
        """
        ready = self._admit(domain, failure_type, entity_type, entity_id, user_id, error_code,
                            error_message, snapshot_data, request_data, response_data, metadata,
                            next_action_hint, recommended_action, request, mode,
                            dedup_key=dedup_key)
        if isinstance(ready, DLQEntryResult):
            return ready
        return await self._store(ready)

    def _admit(self, domain: str, failure_type: str, entity_type: str | None = None,
               entity_id: str | None = None, user_id: int | None = None, error_code: str = "",
               error_message: str = "", snapshot_data: dict[str, Any] | None = None,
               request_data: dict[str, Any] | None = None,
               response_data: dict[str, Any] | None = None,
               metadata: dict[str, Any] | None = None, next_action_hint: str = "",
               recommended_action: str = "", request: Any = None,
               mode: Literal["sync", "async"] | None = None, *, dedup_key: str | None = None,
               start_relay: bool = True) -> DLQEntryResult | EntryInput:
        """The part of :meth:`store_failure` that needs no event loop (any thread).

        Validates and builds the entry; answers at once when the DLQ is
        disabled or the store is async (appended to the outbox). Otherwise
        returns the entry, for a sync store.
        """
        if mode not in (None, "sync", "async"):
            raise ValueError(f"mode must be 'sync', 'async' or None, got {mode!r}")
        if mode == "async" and request is not None:
            raise ValueError("mode='async' cannot take a request object (it may not be shared "
                             "across threads); use mode='sync' or drop request")
        if not self.is_enabled:
            return DLQEntryResult(success=False, error="DLQ disabled")
        if mode is None:
            mode = "async" if self.config.outbox_enabled and request is None else "sync"
        entry = new_entry_input(
            domain, failure_type, entity_type, entity_id, user_id, error_code, error_message,
            snapshot_data, request_data, response_data, metadata, next_action_hint,
            recommended_action, request, config=self.config, dedup_key=dedup_key,
        )
        if mode == "async":
            return self._enqueue(entry, start_relay=start_relay)
        return entry

    # --- outbox ------------------------------------------------------------------

    @property
    def outbox(self) -> Outbox:
        """The local outbox (``config.outbox_path``), opened on first use."""
        if self._outbox is None:
            self._outbox = Outbox(self.config.outbox_path)
        return self._outbox

    def _enqueue(self, entry: EntryInput, error: str | None = None, *,
                 start_relay: bool = True) -> DLQEntryResult:
        """Keep ``entry`` in the outbox; ``error`` set means this is a sync fallback.

        ``start_relay=False``: the caller makes sure the relay runs (the
        blocking API starts it on its own loop thread, not the caller's).
        """
        try:
            self.outbox.append(entry)
        except Exception as err:  # noqa: BLE001 - report, never raise to the caller
            log.error("DLQ outbox append failed for %s: %r", entry.dlq_id, err)
            lost = f"outbox append failed: {type(err).__name__}: {err}"
            return DLQEntryResult(success=False, error=f"{error}; {lost}" if error else lost)
        if start_relay:
            self.start_relay()
        elif self._relay is not None:
            self._relay.notify()
        if error is None:
            return DLQEntryResult(success=True,
                                  dlq_id=None if entry.dedup_key else entry.dlq_id)
        return DLQEntryResult(success=False, dlq_id=entry.dlq_id,
                              error=f"{error}; kept in the outbox for the relay",
                              fallback_path=str(self.outbox.path))

    def _get_relay(self) -> Relay:
        if self._relay is None:
            self._relay = Relay(self.outbox, self.deliver, batch_size=100, ready=self.get_client)
        return self._relay

    def start_relay(self) -> Relay:
        """Run the relay for this service's outbox on the running loop (idempotent)."""
        relay = self._get_relay()
        task = self._relay_task
        if task is None or task.done():
            try:
                self._relay_task = asyncio.get_running_loop().create_task(relay.run())
            except RuntimeError:  # no running loop: a drain will happen later
                pass
        relay.notify()
        return relay

    async def drain_outbox(self, *, timeout: float | None = None) -> int:
        """Deliver every outbox record now (for operators); returns how many."""
        return await self._get_relay().drain(timeout=timeout)

    async def deliver(self, entry: EntryInput) -> None:
        """Make sure the entry's workflow exists (idempotent; what the relay calls)."""
        client = await self.get_client()
        entry = await self._claim_check(entry)
        if entry.dedup_key:
            # An occurrence must reach the open entry: the capture update counts it.
            await asyncio.wait_for(self._capture(client, entry), timeout=self.config.store_timeout)
            return
        try:
            await asyncio.wait_for(
                client.start_workflow(ENTRY_WORKFLOW, entry, **self._start_options(entry)),
                timeout=self.config.store_timeout)
        except WorkflowAlreadyStartedError:
            pass  # it exists and already closed: delivered

    async def _capture(self, client: Client, entry: EntryInput) -> CaptureResult:
        if not entry.dedup_key:
            return await self._capture_once(client, entry)
        # Temporal admits only a few in-flight updates per workflow (10 on the
        # dev server); beyond that it answers RESOURCE_EXHAUSTED and the SDK
        # backs off for seconds. Queue this process's occurrences of one hot
        # key here instead.
        wid = entry_workflow_id(entry)
        gate = self._dedup_gates.get(wid)
        if gate is None:
            gate = self._dedup_gates[wid] = [asyncio.Semaphore(DEDUP_IN_FLIGHT), 0]
        gate[1] += 1
        try:
            async with gate[0]:
                return await self._capture_once(client, entry)
        finally:
            gate[1] -= 1
            if gate[1] == 0:
                self._dedup_gates.pop(wid, None)

    async def _capture_once(self, client: Client, entry: EntryInput) -> CaptureResult:
        delay = 0.02
        while True:
            try:
                return await client.execute_update_with_start_workflow(
                    "capture", CaptureInput(dlq_id=entry.dlq_id),
                    start_workflow_operation=self._start_operation(entry),
                    id=f"capture-{entry.dlq_id}", result_type=CaptureResult,
                )
            except WorkflowUpdateFailedError as err:
                # A hot dedup entry about to continue as new turns occurrences
                # away for a moment; the new run takes them (callers bound us).
                cause = err.cause
                if not (isinstance(cause, ApplicationError)
                        and cause.type == "ContinuingAsNew"):
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def get_capture_stats(self) -> dict[str, Any]:
        """Outbox depth, oldest record age and relay errors, so a stuck relay is visible."""
        stats = await asyncio.to_thread(self.outbox.stats)
        relay = self._relay
        return {"outbox_path": str(self.outbox.path), "outbox_depth": stats.depth,
                "oldest_outbox_age_seconds": stats.oldest_age_seconds,
                "outbox_failing": stats.failing, "last_outbox_error": stats.last_error,
                "relay_running": bool(self._relay_task and not self._relay_task.done()),
                "relay_delivered": relay.delivered if relay else 0,
                "relay_errors": relay.errors if relay else 0}

    async def _claim_check(self, entry: EntryInput) -> EntryInput:
        """Move data too large for Temporal into SQL; the workflow gets a reference."""
        if entry.payload_ref or entry.data_bytes <= self.config.payload_inline_bytes:
            return entry
        data = {f: getattr(entry, f) for f in PAYLOAD_FIELDS}
        await asyncio.to_thread(self.repository.save_payload, entry.dlq_id, data)
        return entry.model_copy(update={**{f: {} for f in PAYLOAD_FIELDS},
                                        "payload_ref": entry.dlq_id})

    async def _store(self, entry: EntryInput) -> DLQEntryResult:
        wid = entry_workflow_id(entry)
        bound = self.config.store_timeout
        try:
            async with asyncio.timeout(bound):
                client = await self.get_client()
                captured = await self._capture(client, await self._claim_check(entry))
            return DLQEntryResult(success=True, dlq_id=captured.dlq_id)
        except WorkflowAlreadyStartedError:
            # A retried store of an entry whose workflow already closed.
            return DLQEntryResult(success=True, dlq_id=entry.dlq_id)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            # The SDK turns the timeout's cancellation into its own error.
            if await self._workflow_exists(wid):
                return self._enqueue(entry, error=(
                    f"entry workflow {wid} was started but its SQL row was not confirmed "
                    f"within {bound:g}s (is a DLQ worker running on task queue "
                    f"{self.config.task_queue!r}?)"))
            return self._enqueue(entry, error=(
                f"Temporal at {self.config.temporal_address} did not accept the entry "
                f"within {bound:g}s"))
        except _Unreachable as err:
            return self._enqueue(entry, error=(
                f"cannot reach Temporal at {self.config.temporal_address}: {err.__cause__}"))
        except Exception as err:  # noqa: BLE001 - the caller must never see a raise here
            log.warning("DLQ store of %s/%s failed: %r", entry.domain, entry.failure_type, err)
            return self._enqueue(entry, error=f"DLQ store failed: {type(err).__name__}: {err}")

    def _start_options(self, entry: EntryInput) -> dict[str, Any]:
        status, domain, failure_type, retries = SEARCH_ATTRIBUTES
        entity = f" {entry.entity_type}:{entry.entity_id}" if entry.entity_type else ""
        return dict(
            id=entry_workflow_id(entry),
            task_queue=self.config.task_queue,
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
            static_summary=f"{entry.domain}/{entry.failure_type}{entity}",
            static_details=(f"**{entry.error_code or 'error'}**: {entry.error_message[:500]}\n\n"
                            f"recommended action: {entry.recommended_action or '-'}"),
        )

    def _start_operation(self, entry: EntryInput) -> WithStartWorkflowOperation:
        return WithStartWorkflowOperation(ENTRY_WORKFLOW, entry, **self._start_options(entry))

    async def _workflow_exists(self, wid: str) -> bool:
        if self._client is None:
            return False
        try:
            # wait_for, not only rpc_timeout: the SDK retries a refused
            # connection for seconds, and this runs after the store's bound.
            await asyncio.wait_for(self._client.get_workflow_handle(wid).describe(
                rpc_timeout=timedelta(seconds=1)), timeout=1.0)
            return True
        except Exception:  # noqa: BLE001 - unknown means "not confirmed"
            return False

    async def create_test_entry(
        self,
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
        result = await self.store_failure(
            domain, ftype, entity_type=entity_type, entity_id=entity_id, user_id=user_id,
            error_code="TEST", error_message=error_message, snapshot_data=snapshot_data,
            request_data=request_data, response_data=response_data,
            metadata={**(metadata or {}), "test_entry": True, "created_by": created_by},
            recommended_action="manual_check", mode="sync",
        )
        return {"success": result.success, "dlq_id": result.dlq_id, "error": result.error,
                "domain": domain, "failure_type": ftype, "created_by": created_by}

    # --- entry operations -------------------------------------------------------

    async def retry_entry(self, pk: str) -> dict[str, Any]:
        """Retry one entry through its replay handler, within its budget.

        ``success`` means the replay handler succeeded, not that a counter moved.

        Returns:
            Dict with ``success``, ``id``, ``retry_count`` (after the attempt),
            ``previous_retry_count``, ``status`` and ``message``.

        Raises:
            DLQEntryNotFoundError: Unknown id (404).
            DLQStateConflictError: Entry closed, at its cap, or replaying (409).
            DLQReplayError: No handler is registered (no budget consumed), or
                the replay failed unexpectedly (500).
        """
        result = await self._update(pk, "retry", RetryInput(dlq_id=pk), ReplayResult)
        return result.model_dump(mode="json", include=set(REPLAY_RESULT_KEYS))

    async def retry_entry_as(self, pk: str, *, actor: str | None, reason: str = "",
                             trigger: Literal["manual", "bulk"] = "manual",
                             update_id: str | None = None) -> dict[str, Any]:
        """:meth:`retry_entry` on behalf of someone, recorded in the audit trail.

        Bulk redrives use it with ``trigger="bulk"`` and one ``update_id`` per
        (redrive, entry): Temporal runs an update id once, so a repeated call
        never replays twice.
        """
        result = await self._update(
            pk, "retry", RetryInput(dlq_id=pk, actor=actor, reason=reason, trigger=trigger),
            ReplayResult, update_id=update_id)
        return result.model_dump(mode="json", include=set(REPLAY_RESULT_KEYS))

    async def force_redrive_entry(self, pk: str, *, actor_id: str | None = None,
                                  reason: str = "",
                                  ticket_url: str | None = None) -> dict[str, Any]:
        """Force-redrive an entry past the cap gate (audited operator override).

        Grants a fresh budget and replays now. A still-broken entry converges
        back to ``requires_review`` within ``max_replay_attempts`` attempts.

        Args:
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
        result = await self._update(
            pk, "force_redrive",
            ForceRedriveInput(dlq_id=pk, actor_id=actor_id, reason=reason,
                              ticket_url=ticket_url),
            ReplayResult,
        )
        return result.model_dump(mode="json", include=set(REPLAY_RESULT_KEYS))

    async def resolve_entry(self, pk: str, notes: str = "", resolution_type: str = "manual",
                            status: str = "resolved") -> dict[str, Any]:
        """Resolve an entry (``status`` is ``resolved`` or ``discarded``).

        Returns:
            Dict with ``success``, ``id``, ``previous_status``,
            ``current_status``, ``resolved_at`` (ISO) and ``notes``.

        Raises:
            ValueError: ``status`` is not ``resolved`` or ``discarded``.
            DLQEntryNotFoundError: Unknown id (404).
            DLQStateConflictError: Entry already closed (409).
        """
        _check_resolve_status(status)
        result = await self._update(
            pk, "resolve",
            ResolveInput(dlq_id=pk, notes=notes or "", resolution_type=resolution_type,
                         status=status),
            ResolveResult,
        )
        return result.model_dump(mode="json")

    async def resolve_entries_batch(self, pks: list[str], resolution_type: str = "manual",
                                    status: str = "resolved", notes: str = "",
                                    chunk_size: int | None = None) -> dict[str, Any]:
        """Resolve many entries in chunks; one bad id does not stop the rest.

        Returns:
            Dict with ``total``, ``resolved``, ``failed``, ``chunks`` and
            ``results`` (one per id: ``id``, ``success``, ``current_status``
            or ``error`` and ``error_type``).

        Raises:
            ValueError: ``status`` is invalid (checked before anything changes).
        """
        _check_resolve_status(status)
        size = chunk_size or self.config.batch_size
        if size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {size}")

        async def one(pk: str) -> dict[str, Any]:
            try:
                res = await self.resolve_entry(pk, notes, resolution_type, status)
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

    async def get_entry(self, pk: str) -> dict[str, Any] | None:
        """Details of one entry: fields, attempts and audit events, or None."""
        return await asyncio.to_thread(self.repository.get_detail, pk)

    async def get_entry_by_id(self, dlq_id: str) -> FailedOperationData | None:
        """One entry as :class:`FailedOperationData`, or None."""
        return await asyncio.to_thread(self.repository.get, dlq_id)

    # --- replay (reference operations) and bulk redrive ---------------------------

    async def replay(self, domain: str | None = None, batch_size: int = 50,
                     request: Any = None) -> DLQBatchReplayStats:
        """Replay up to ``batch_size`` replayable entries (oldest first), one by one.

        Args:
            domain: Only this domain.
            batch_size: How many entries at most.
            request: An HTTP request; its method and path are recorded as the actor.

        Returns:
            DLQBatchReplayStats: ``processed``, ``success``, ``failed``,
            ``skipped`` (changed state meanwhile) and ``errors``.
        """
        actor = _request_actor(request)
        stats = DLQBatchReplayStats()
        for entry in await self.get_replayable_entries(domain, limit=_limit(batch_size)):
            stats.processed += 1
            try:
                out = await self.retry_entry_as(entry.id, actor=actor, reason="batch replay")
            except DLQStateConflictError:
                stats.skipped += 1
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

    async def replay_throttle_aware(self, entry_id: str,
                                    throttle: AdaptiveThrottle) -> DLQThrottleReplayResult:
        """Replay one entry if it is alive, has budget and the throttle grants a permit.

        Checked in this order: ``expires_at``, the retry budget, a throttle
        permit, then the replay itself. A refused permit returns
        ``retry_after`` and stores nothing new.
        """
        entry = await self.get_entry_by_id(entry_id)
        if entry is None:
            return DLQThrottleReplayResult(success=False, entry_id=entry_id,
                                           error=f"DLQ entry {entry_id} not found")
        if entry.expires_at and entry.expires_at <= _now():
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
            out = await self.retry_entry(entry_id)
        except DLQError as err:
            permit.release(success=isinstance(err, DLQStateConflictError),
                           latency=time.monotonic() - started, error=str(err))
            return DLQThrottleReplayResult(success=False, entry_id=entry_id, error=str(err))
        permit.release(success=out["success"], latency=time.monotonic() - started,
                       error=None if out["success"] else out["message"])
        return DLQThrottleReplayResult(success=out["success"], entry_id=entry_id,
                                       error=None if out["success"] else out["message"])

    async def replay_all_throttle_aware(self, throttle: AdaptiveThrottle,
                                        domain: str | None = None, batch_size: int = 10,
                                        max_entries: int = 100
                                        ) -> DLQThrottleBatchReplayResult:
        """Replay replayable entries in batches, checking throttle health before each batch.

        Stops early on ``emergency`` with ``early_stop_reason``. Entries the
        throttle refuses are counted as ``skipped``.
        """
        result = DLQThrottleBatchReplayResult()
        entries = await self.get_replayable_entries(domain, limit=_limit(max_entries))
        size = _limit(batch_size)
        for start in range(0, len(entries), size):
            if throttle.health == "emergency":
                result.early_stop_reason = f"throttle in emergency after {result.total} entries"
                break
            outcomes = await asyncio.gather(*(self.replay_throttle_aware(e.id, throttle)
                                              for e in entries[start:start + size]))
            for out in outcomes:
                result.total += 1
                if out.success:
                    result.succeeded += 1
                elif out.retry_after is not None:
                    result.skipped += 1
                else:
                    result.failed += 1
        return result

    async def bulk_replay(self, filters: dict[str, Any] | None = None, *,
                          rate_per_second: float | None = None, throttle: bool = True,
                          dry_run: bool = False, canary: int = 0,
                          canary_min_success: float = 0.9, actor_id: str | None = None,
                          reason: str = "", page_size: int = 50) -> dict[str, Any]:
        """Redrive every entry matching ``filters`` as a durable ``BulkReplayWorkflow``.

        The filter is resolved to a frozen set of ids when the redrive starts
        (later entries are not swept in). Without a ``status`` filter it takes
        the replayable entries (``pending`` with budget left).

        Args:
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
            page_size: Entries per page (pause and cancel act between pages).

        Returns:
            The dry-run report, or ``{"workflow_id", "bulk_id", "total"}`` of
            the started redrive (follow it with :meth:`get_bulk_replay`).

        Raises:
            ValueError: Bad arguments, checked before anything starts.
        """
        parsed = parse_filters(filters)
        if rate_per_second is not None and (isinstance(rate_per_second, bool)
                                            or rate_per_second <= 0):
            raise ValueError(f"rate_per_second must be > 0 or None, got {rate_per_second!r}")
        if _int("canary", canary) < 0:
            raise ValueError(f"canary must be >= 0, got {canary}")
        if not 0 <= canary_min_success <= 1:
            raise ValueError(f"canary_min_success must be within 0..1, got {canary_min_success}")
        if not 1 <= _int("page_size", page_size) <= 1000:
            raise ValueError(f"page_size must be within 1..1000, got {page_size}")
        if not dry_run and not (actor_id or "").strip():
            raise ValueError("bulk_replay requires actor_id")
        if not dry_run and not (reason or "").strip():
            raise ValueError("bulk_replay requires a non-empty reason")
        preview = await self._sql("bulk_breakdown", parsed)
        if dry_run:
            return {"dry_run": True, **preview}
        if canary > preview["count"]:
            raise ValueError(f"canary ({canary}) is larger than the set ({preview['count']})")
        bulk_id = uuid.uuid4().hex
        client = await self.get_client()
        # Freeze the set now, not in the workflow's first activity: an entry
        # stored after this call returns must never be swept in. (The workflow
        # keeps its freeze step for runs started without a frozen set.)
        total = await self._sql("freeze_bulk_set", bulk_id, parsed)
        try:
            handle = await client.start_workflow(
                BULK_WORKFLOW,
                BulkReplayInput(bulk_id=bulk_id, filters=filters or {}, actor_id=actor_id,
                                reason=reason, rate_per_second=rate_per_second,
                                throttle=throttle, canary=canary,
                                canary_min_success=canary_min_success, page_size=page_size,
                                # Already frozen: the workflow skips its own freeze step.
                                frozen=True, progress=BulkReplayProgress(
                                    bulk_id=bulk_id, total=total, remaining=total)),
                id=f"dlq-bulk-{bulk_id}", task_queue=self.config.task_queue,
                static_summary=f"bulk redrive by {actor_id}: {reason[:100]}",
            )
        except BaseException:
            await self._sql("drop_bulk_set", bulk_id)  # nothing half-started stays behind
            raise
        return {"workflow_id": handle.id, "bulk_id": bulk_id, "total": total}

    async def get_bulk_replay(self, workflow_id: str) -> BulkReplayProgress:
        """Progress of a bulk redrive (works while it runs and after it ended)."""
        client = await self.get_client()
        return await client.get_workflow_handle(workflow_id).query(
            "get_progress", result_type=BulkReplayProgress)

    async def wait_bulk_replay(self, workflow_id: str) -> BulkReplayProgress:
        """Wait for a bulk redrive to end and return its final progress."""
        client = await self.get_client()
        return await client.get_workflow_handle(workflow_id,
                                                result_type=BulkReplayProgress).result()

    async def signal_bulk_replay(self, workflow_id: str,
                                 command: Literal["pause", "resume", "cancel"]) -> None:
        """Pause, resume or cancel a bulk redrive (acts between pages)."""
        if command not in ("pause", "resume", "cancel"):
            raise ValueError(f"command must be pause, resume or cancel, got {command!r}")
        client = await self.get_client()
        await client.get_workflow_handle(workflow_id).signal(command)

    # --- lists and queries (SQL) -------------------------------------------------

    async def _sql(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self.repository, method), *args)

    async def list_entries(self, filters: dict[str, Any] | None = None, page: int = 1,
                           page_size: int = 20) -> dict[str, Any]:
        """One page of entries, newest first, with offset/limit done in SQL.

        A filter without ``status`` spans every status.

        Args:
            filters: Any of ``status`` (one or a list), ``domain``,
                ``failure_type``, ``entity_type``, ``entity_id``, ``user_id``,
                ``error_code``, ``created_after``, ``created_before`` (datetime
                or ISO string) and ``error_message`` (case-insensitive match).
            page: Page number, clamped to >= 1.
            page_size: Items per page, clamped to 1..100.

        Returns:
            Dict with ``results``, ``page``, ``page_size``, ``total_pages``,
            ``total_count``, ``has_next`` and ``has_previous``.

        Raises:
            ValueError: Naming an unknown filter key or a value of the wrong type.
        """
        return await asyncio.to_thread(self._list_entries, filters, page, page_size)

    def _list_entries(self, filters: dict[str, Any] | None = None, page: int = 1,
                      page_size: int = 20) -> dict[str, Any]:
        # Blocking body of list_entries; DLQService calls it on the caller's thread.
        parsed = parse_filters(filters)
        page, page_size = _int("page", page), _int("page_size", page_size)
        page, page_size = max(1, page), min(max(1, page_size), 100)
        rows, total = self.repository.list_page(parsed, (page - 1) * page_size, page_size)
        total_pages = math.ceil(total / page_size)
        return {"results": rows, "page": page, "page_size": page_size,
                "total_pages": total_pages, "total_count": total,
                "has_next": page < total_pages, "has_previous": page > 1}

    async def iter_entries(self, filters: dict[str, Any] | None = None, *,
                           cursor: str | None = None, limit: int = 100) -> dict[str, Any]:
        """Keyset pagination for deep traversal (newest first).

        Pass the returned ``next_cursor`` back to continue; entries stored
        meanwhile are newer than the cursor and never shift the traversal.

        Args:
            filters: As for :meth:`list_entries`.
            cursor: Opaque cursor from the previous call, None to start.
            limit: Entries per call, clamped to 1..1000.

        Returns:
            Dict with ``results`` and ``next_cursor`` (None at the end).

        Raises:
            ValueError: Bad filters, or a forged, altered or foreign cursor.
        """
        return await asyncio.to_thread(self._iter_entries, filters, cursor=cursor, limit=limit)

    def _iter_entries(self, filters: dict[str, Any] | None = None, *,
                      cursor: str | None = None, limit: int = 100) -> dict[str, Any]:
        # Blocking body of iter_entries; DLQService calls it on the caller's thread.
        parsed = parse_filters(filters)
        limit = min(max(1, _int("limit", limit)), 1000)
        after = (decode_cursor(cursor, filters=parsed, secret=self.config.cursor_key)
                 if cursor else None)
        rows = self.repository.list_after(parsed, after, limit)
        next_cursor = None
        if len(rows) == limit:
            last = rows[-1]
            next_cursor = encode_cursor(created_at=last["created_at"], entry_id=last["id"],
                                        filters=parsed, secret=self.config.cursor_key)
        return {"results": rows, "next_cursor": next_cursor}

    async def get_pending_entries(self, domain: str | None = None,
                                  failure_type: str | None = None,
                                  limit: int = 100) -> list[FailedOperationData]:
        """Pending entries, oldest first."""
        return await self._sql("find_open", [DLQStatus.PENDING.value], domain, failure_type,
                               False, _limit(limit))

    async def get_replayable_entries(self, domain: str | None = None,
                                     failure_type: str | None = None,
                                     limit: int = 100) -> list[FailedOperationData]:
        """Entries that can be replayed: ``pending`` and ``retry_count < max_retries``."""
        return await self._sql("find_open", [DLQStatus.PENDING.value], domain, failure_type,
                               True, _limit(limit))

    async def get_expired_entries(self, limit: int = 1000) -> list[FailedOperationData]:
        """Open entries whose ``expires_at`` has passed (normally their workflow expires them)."""
        return await self._sql("find_expired", _now(), _limit(limit))

    async def get_sla_breached_entries(self, limit: int = 1000) -> list[FailedOperationData]:
        """Open entries older than the SLA of their domain (``DLQ_SLA_THRESHOLDS``).

        Domains without a threshold use the ``*`` one; with no ``*``, they
        never breach.
        """
        return await self._sql("find_sla_breached", _now(), dict(self.config.sla_thresholds),
                               _limit(limit))

    async def get_stats(self) -> dict[str, Any]:
        """Counts by status and domain, oldest open entry age, replay success rate and
        entries stored in the last hour and day."""
        return await asyncio.to_thread(self._get_stats)

    def _get_stats(self) -> dict[str, Any]:
        return self.repository.stats(_now())

    async def get_facet_counts(self, *, status: str | None = None,
                               domain: str | None = None) -> dict[str, dict[str, int]]:
        """Faceted counts: ``by_status`` scoped by ``domain``, ``by_domain`` by ``status``.

        Zero-count buckets are dropped.

        Raises:
            ValueError: For an unknown status.
        """
        return await asyncio.to_thread(self._get_facet_counts, status=status, domain=domain)

    def _get_facet_counts(self, *, status: str | None = None,
                          domain: str | None = None) -> dict[str, dict[str, int]]:
        if status is not None:
            parse_filters({"status": status})
        return self.repository.facet_counts(status, domain)

    # --- maintenance ------------------------------------------------------------------

    async def expire_entries(self, *, dry_run: bool = False) -> int:
        """Safety net: expire open entries past ``expires_at`` that their workflow missed.

        Signals each entry's workflow to expire; a row whose workflow no longer
        runs (an orphan) is expired in SQL directly. Drains in batches of
        ``config.batch_size``.

        Args:
            dry_run: Only count what would be expired.

        Returns:
            How many entries were signalled or fixed (or would be).
        """
        now, after, handled = _now(), "", 0
        while True:
            ids = await self._sql("expired_entry_ids", now, after, self.config.batch_size)
            if not ids:
                return handled
            if dry_run:
                handled += len(ids)
            else:
                handled += sum(await asyncio.gather(*(self._expire_one(pk, now) for pk in ids)))
            after = ids[-1]

    async def _expire_one(self, pk: str, now: datetime) -> bool:
        client = await self.get_client()
        try:
            await client.get_workflow_handle(workflow_id_for(pk)).signal("expire")
            return True
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND and "completed" not in err.message:
                raise
        return await self._sql("mark_expired", pk, now)

    async def archive_old_entries(self, older_than_days: int = 30, *,
                                  dry_run: bool = False) -> int:
        """Archive closed entries (resolved, discarded, expired) closed over N days ago.

        Archived entries live only in SQL (their workflows are closed).

        Returns:
            How many entries were archived (or would be, with ``dry_run``).
        """
        days = _days("older_than_days", older_than_days)
        now = _now()
        return await self._sql("archive_closed", now - timedelta(days=days), now, dry_run)

    async def purge_archived(self, ids: list[str] | None = None,
                             older_than_days: int | None = None, *,
                             dry_run: bool = False) -> int:
        """Permanently delete archived entries and their audit events.

        Only ``archived`` entries are ever deleted. With both arguments, an
        entry must match both.

        Raises:
            ValueError: If neither ``ids`` nor ``older_than_days`` is given.
        """
        if ids is None and older_than_days is None:
            raise ValueError("purge_archived needs ids or older_than_days; refusing to purge all")
        cutoff = (None if older_than_days is None
                  else _now() - timedelta(days=_days("older_than_days", older_than_days)))
        return await self._sql("purge_archived", ids, cutoff, dry_run)

    async def count_archived_older_than(self, older_than_days: int) -> int:
        """How many archived entries are older than N days (a purge dry run)."""
        days = _days("older_than_days", older_than_days)
        return await self._sql("count_archived_older_than", _now() - timedelta(days=days))

    async def cleanup_old_entries(self, days_old: int = 30, *,
                                  dry_run: bool = False) -> dict[str, int]:
        """Expire what is overdue, then archive closed entries older than ``days_old``.

        Returns:
            ``{"expired": n, "archived": m}`` (what would change, with ``dry_run``).
        """
        expired = await self.expire_entries(dry_run=dry_run)
        archived = await self.archive_old_entries(days_old, dry_run=dry_run)
        return {"expired": expired, "archived": archived}

    async def get_cleanup_stats(self) -> CleanupStats:
        """Age-bucketed counts of what retention maintenance would do now."""
        counts = await self._sql("cleanup_counts", _now(), self.config.retention_days,
                                 self.config.purge_after_days)
        buckets = {name: counts.pop(name) for name in
                   ("lt_1d", "1d_7d", "7d_30d", "30d_90d", "gte_90d")}
        return CleanupStats(retention_days=self.config.retention_days,
                            purge_after_days=self.config.purge_after_days,
                            closed_by_age=buckets, **counts)

    async def run_maintenance(self, *, dry_run: bool = False) -> MaintenanceResult:
        """Run ``DLQMaintenanceWorkflow`` now (as the schedule does) and wait for its result."""
        client = await self.get_client()
        return await client.execute_workflow(
            MAINTENANCE_WORKFLOW,
            MaintenanceInput(retention_days=self.config.retention_days,
                             purge_after_days=self.config.purge_after_days, dry_run=dry_run),
            id=f"dlq-maintenance-manual-{uuid.uuid4().hex[:12]}",
            task_queue=self.config.task_queue, result_type=MaintenanceResult,
        )

    async def _update(self, pk: str, name: str, arg: Any, result_type: type[T], *,
                      update_id: str | None = None) -> T:
        if not isinstance(pk, str) or not pk:
            raise DLQEntryNotFoundError(f"DLQ entry {pk!r} not found")
        client = await self.get_client()
        # Bounded: with no worker polling, an update would otherwise wait forever.
        bound = self.config.command_timeout
        try:
            try:
                return await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(pk))
                                              .execute_update(name, arg, id=update_id,
                                                              result_type=result_type),
                                              timeout=bound)
            except RPCError as err:
                # Entries with a dedup key live under a shared workflow id; SQL knows it.
                detail = await self.get_entry(pk) if err.status == RPCStatusCode.NOT_FOUND else None
                if not detail or detail["workflow_id"] == workflow_id_for(pk):
                    raise
                return await asyncio.wait_for(client.get_workflow_handle(detail["workflow_id"])
                                              .execute_update(name, arg, id=update_id,
                                                              result_type=result_type),
                                              timeout=bound)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            raise DLQError(f"{name} of entry {pk} got no answer within {bound:g}s; is a DLQ "
                           f"worker running on task queue {self.config.task_queue!r}?") from None
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise ERROR_TYPES.get(cause.type or "", DLQError)(cause.message) from None
            raise DLQError(f"{name} failed for entry {pk}: {cause or err}") from None
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND and "completed" not in err.message:
                raise DLQError(f"{name} failed for entry {pk}: {err.message}") from err
        # The workflow is gone or closed: SQL says whether the entry ever existed.
        detail = await self.get_entry(pk)
        if detail is None:
            raise DLQEntryNotFoundError(f"DLQ entry {pk} not found")
        raise DLQStateConflictError(f"entry {pk} is {detail['status']}; it accepts no {name}")


class _Unreachable(DLQError):
    """Connecting to Temporal failed (the cause says why)."""

    def __str__(self) -> str:
        return f"cannot reach Temporal: {self.__cause__!r}"


def _now() -> datetime:
    return datetime.now(UTC)


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return value


def _limit(limit: Any) -> int:
    if _int("limit", limit) < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return limit


def _days(name: str, value: Any) -> int:
    if _int(name, value) < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _request_actor(request: Any) -> str | None:
    context = request_context(request)
    return f"{context.get('method', '')} {context.get('path', '')}".strip() or None


def _check_resolve_status(status: str) -> None:
    if status not in RESOLVE_TARGETS:
        raise ValueError(f"status must be one of {', '.join(RESOLVE_TARGETS)}, got {status!r}")


# --- the blocking flavour -----------------------------------------------------


class _LoopThread:
    """An event loop on a daemon thread, so blocking code can await coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="dlq-loop",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("DLQService called from its own loop; use AsyncDLQService")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


def _blocking(method: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """Turn an ``AsyncDLQService`` method into the same method, blocking."""

    @functools.wraps(method)
    def call(self: DLQService, *args: Any, **kwargs: Any) -> T:
        return self._loop.run(getattr(self.aio, method.__name__)(*args, **kwargs))

    return call


def _direct(method: Callable[..., Awaitable[T]], body: Callable[..., T]) -> Callable[..., T]:
    """The blocking twin of a SQL-only ``AsyncDLQService`` method, run on the caller's thread.

    A read of a fraction of a millisecond would otherwise wait for two thread
    hand-offs (to the loop thread, then to a worker thread), which cost more
    than the query on a busy machine. ``body`` is the same code the async
    method runs in its worker thread, so answers and errors are identical.
    """

    @functools.wraps(method)
    def call(self: DLQService, *args: Any, **kwargs: Any) -> T:
        return body(self.aio, *args, **kwargs)

    return call


class DLQService:
    """Dead Letter Queue Service: the blocking API for plain code.

    Works with no event loop (a Django view, a Celery task, a script): each
    call runs the matching :class:`AsyncDLQService` coroutine on a private
    event loop thread. Asyncio code should use ``AsyncDLQService`` directly.

    Example:
        >>> service = DLQService()
        >>> result = service.store_failure(domain="payment", failure_type="PG_TIMEOUT",
        ...                                error_message="Connection timed out")
        >>> if result.success:
        ...     print(f"Stored as DLQ entry {result.dlq_id}")

    Args:
        config: Configuration; read from ``DLQ_*`` variables if None.
        repository: Read side of the SQL store (the SQLModel one if None).
    """

    def __init__(self, config: DLQConfig | None = None,
                 repository: FailedOperationRepository | None = None) -> None:
        self.aio = AsyncDLQService(config, repository)
        self._loop = _LoopThread()
        self._relay_requested = False

    @property
    def config(self) -> DLQConfig:
        """The configuration."""
        return self.aio.config

    @property
    def is_enabled(self) -> bool:
        """Whether the DLQ is enabled."""
        return self.aio.is_enabled

    @property
    def repository(self) -> FailedOperationRepository:
        """The SQL read side."""
        return self.aio.repository

    @functools.wraps(AsyncDLQService.store_failure)
    def store_failure(self, *args: Any, **kwargs: Any) -> DLQEntryResult:  # noqa: D102
        # An async store is an outbox append: do it on the caller's thread (no
        # hand-off to the loop thread and back, which would cost more than the
        # append itself) and only wake the relay on the loop thread.
        ready = self.aio._admit(*args, **kwargs, start_relay=False)
        if isinstance(ready, EntryInput):
            return self._loop.run(self.aio._store(ready))
        task = self.aio._relay_task
        if ready.success and not self._relay_requested and (task is None or task.done()):
            self._relay_requested = True  # one wake-up of the loop thread, not one per call
            self._loop.loop.call_soon_threadsafe(self._start_relay)
        return ready

    def _start_relay(self) -> None:
        # On the loop thread. The flag stays set only if no relay task came of
        # it (nothing to retry until it runs); a relay that dies later is
        # restarted by the next store.
        self.aio.start_relay()
        self._relay_requested = self.aio._relay_task is None

    create_test_entry = _blocking(AsyncDLQService.create_test_entry)
    retry_entry = _blocking(AsyncDLQService.retry_entry)
    force_redrive_entry = _blocking(AsyncDLQService.force_redrive_entry)
    resolve_entry = _blocking(AsyncDLQService.resolve_entry)
    resolve_entries_batch = _blocking(AsyncDLQService.resolve_entries_batch)
    get_entry = _blocking(AsyncDLQService.get_entry)
    get_entry_by_id = _blocking(AsyncDLQService.get_entry_by_id)
    list_entries = _direct(AsyncDLQService.list_entries, AsyncDLQService._list_entries)
    iter_entries = _direct(AsyncDLQService.iter_entries, AsyncDLQService._iter_entries)
    get_pending_entries = _blocking(AsyncDLQService.get_pending_entries)
    get_replayable_entries = _blocking(AsyncDLQService.get_replayable_entries)
    get_expired_entries = _blocking(AsyncDLQService.get_expired_entries)
    get_sla_breached_entries = _blocking(AsyncDLQService.get_sla_breached_entries)
    get_stats = _direct(AsyncDLQService.get_stats, AsyncDLQService._get_stats)
    get_facet_counts = _direct(AsyncDLQService.get_facet_counts,
                               AsyncDLQService._get_facet_counts)
    expire_entries = _blocking(AsyncDLQService.expire_entries)
    archive_old_entries = _blocking(AsyncDLQService.archive_old_entries)
    purge_archived = _blocking(AsyncDLQService.purge_archived)
    count_archived_older_than = _blocking(AsyncDLQService.count_archived_older_than)
    cleanup_old_entries = _blocking(AsyncDLQService.cleanup_old_entries)
    get_cleanup_stats = _blocking(AsyncDLQService.get_cleanup_stats)
    run_maintenance = _blocking(AsyncDLQService.run_maintenance)
    drain_outbox = _blocking(AsyncDLQService.drain_outbox)
    retry_entry_as = _blocking(AsyncDLQService.retry_entry_as)
    replay = _blocking(AsyncDLQService.replay)
    replay_throttle_aware = _blocking(AsyncDLQService.replay_throttle_aware)
    replay_all_throttle_aware = _blocking(AsyncDLQService.replay_all_throttle_aware)
    bulk_replay = _blocking(AsyncDLQService.bulk_replay)
    get_bulk_replay = _blocking(AsyncDLQService.get_bulk_replay)
    wait_bulk_replay = _blocking(AsyncDLQService.wait_bulk_replay)
    signal_bulk_replay = _blocking(AsyncDLQService.signal_bulk_replay)
    get_capture_stats = _blocking(AsyncDLQService.get_capture_stats)

    def close(self) -> None:
        """Release the SQL engine and stop the private loop thread."""
        self._loop.run(self.aio.close())
        self._loop.close()

    def __enter__(self) -> DLQService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_service: DLQService | None = None
_service_lock = threading.Lock()


def get_dlq_service() -> DLQService:
    """The process-wide :class:`DLQService`, created from ``DLQ_*`` variables on first use."""
    global _service
    with _service_lock:
        if _service is None:
            _service = DLQService()
        return _service


def reset_dlq_service() -> None:
    """Close and forget the process-wide service (the next call builds a new one)."""
    global _service
    with _service_lock:
        if _service is not None:
            _service.close()
        _service = None


def store_to_dlq(
    domain: str,
    failure_type: str,
    entity_type: str | None = None,
    entity_id: str | None = None,
    user_id: int | None = None,
    error_code: str = "",
    error_message: str = "",
    snapshot_data: dict[str, Any] | None = None,
    request_data: dict[str, Any] | None = None,
    response_data: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    next_action_hint: str = "",
    recommended_action: str = "",
    request: Any = None,
    mode: Literal["sync", "async"] | None = None,
) -> DLQEntryResult:
    """Store a failure in the DLQ: a shortcut for ``get_dlq_service().store_failure(...)``.

    See :meth:`AsyncDLQService.store_failure` for the arguments and ``mode``.
    """
    return get_dlq_service().store_failure(
        domain, failure_type, entity_type, entity_id, user_id, error_code, error_message,
        snapshot_data, request_data, response_data, metadata, next_action_hint,
        recommended_action, request, mode,
    )
