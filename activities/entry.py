"""Activities of ``DLQEntryWorkflow``: persistence and replay handlers."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from dlq import _metrics as metrics
from dlq import _sql as repo
from dlq._fingerprint import fingerprint, normalize_message
from dlq._handlers import HandlerRegistry
from dlq._handlers import registry as default_registry
from dlq._messages import PersistInput, PersistResult, ReplayHandlerInput, ReplayHandlerResult
from dlq._redact import Redactor, default_redactor

PERSIST_REJECTED = "PersistRejected"
# Errors about the values, not the database's health: DataError (PostgreSQL:
# NUL in text, out-of-range numbers), and what drivers raise while binding
# (sqlite3: OverflowError for an int beyond 64 bits).
_REFUSED_VALUES = (sa_exc.DataError, OverflowError)


class EntryActivities:
    """The entry workflow's I/O.

    Args:
        engine: Engine of the SQL read model.
        handlers: Replay handler registry (the global one by default).
        handler_executor: Pool for sync replay handlers.
        metrics: Count the ``dlq_*`` metrics of what these activities do
            (off when ``DLQ_METRICS_PORT`` is 0).
        grouping: Give new entries a fingerprint and count them in their
            failure group (``DLQ_GROUPING_ENABLED``).
        redactor: Filters secrets out of a failing handler's exception text
            before it is logged or recorded (the default rules if None).
    """

    def __init__(self, engine: Engine, *, handlers: HandlerRegistry | None = None,
                 handler_executor: Executor | None = None, metrics: bool = True,
                 grouping: bool = True, redactor: Redactor | None = None) -> None:
        self.engine = engine
        self.metrics = metrics
        self.grouping = grouping
        self.redactor = redactor or default_redactor()
        self.handlers = handlers or default_registry
        self.handler_executor = handler_executor or ThreadPoolExecutor(
            max_workers=32, thread_name_prefix="dlq-handler"
        )

    @activity.defn(name="persist_entry")
    def persist_entry(self, input: PersistInput) -> PersistResult:
        """Upsert the entry row and append audit events, in one transaction.

        The row changes only if ``input.state.version`` is newer than the
        stored one, so a late or repeated execution never moves it back.

        Raises:
            ApplicationError: ``PersistRejected`` (non-retryable) when SQL
                refuses the values themselves (out of range, a character
                the engine cannot store): retrying could never succeed, so
                the workflow records the entry as unprojected instead.
                Everything else (SQL down, locked) is retried.
        """
        try:
            return self._persist(input)
        except _REFUSED_VALUES as err:
            # The driver's own message (err.orig), never SQLAlchemy's, which
            # quotes the statement's parameters: the entry's data.
            cause = getattr(err, "orig", None) or err
            first = (str(cause).strip().splitlines() or [""])[0][:300]
            raise ApplicationError(
                f"SQL refused the row of entry {input.state.id} v{input.state.version}: "
                f"{type(cause).__name__}: {first}", type=PERSIST_REJECTED,
                non_retryable=True) from None

    def _persist(self, input: PersistInput) -> PersistResult:
        state = input.state
        with Session(self.engine) as session:
            if input.include_data and state.payload_ref:
                # The row gets the full data the workflow only references.
                payload = repo.load_payload(session=session, entry_id=state.payload_ref) or {}
                state = state.model_copy(update=payload)
            group = None
            if input.include_data and self.grouping:
                group = fingerprint(state.domain, state.failure_type, state.error_code,
                                    state.error_message)
                # The group row exists before the entry's insert trigger counts the entry.
                repo.ensure_group(session=session, fingerprint=group, domain=state.domain,
                                  failure_type=state.failure_type, error_code=state.error_code,
                                  message=normalize_message(state.error_message))
            applied = repo.upsert_entry(session=session, state=state,
                                        include_data=input.include_data,
                                        data_changed=input.data_changed, fingerprint=group)
            repo.append_audit_events(session=session, entry_id=input.state.id,
                                     events=input.events)
            session.commit()
        if self.metrics:
            if applied:
                # Counted only when this write moved the row: each event once.
                metrics.count_persisted_events(state.domain, state.failure_type, input.events)
            # Called outside an activity (a tool or test writing directly): no fallback.
            info = activity.info() if activity.in_activity() else None
            if info is not None and not info.is_local and info.attempt == 1:
                metrics.count_persist_fallback()
        return PersistResult(applied=applied, version=input.state.version)

    @activity.defn(name="run_replay_handler")
    async def run_replay_handler(self, input: ReplayHandlerInput) -> ReplayHandlerResult:
        """Run the handler registered for the entry and report its outcome.

        Looks up (domain, failure_type), then the domain-wide handler. Handler
        exceptions and timeouts are outcomes, not activity failures, so the
        workflow records them as attempts.
        """
        entry = input.entry
        if input.payload_ref:
            payload = await asyncio.to_thread(self._load_payload, input.payload_ref)
            if payload is None:
                return ReplayHandlerResult(
                    outcome="error", error=f"claim-checked data of {entry.id} is missing in SQL")
            entry = entry.model_copy(update=payload)
        handler = self.handlers.find(entry.domain, entry.failure_type)
        if handler is None:
            return ReplayHandlerResult(
                outcome="no_handler",
                error=f"no replay handler registered for ({entry.domain!r}, "
                      f"{entry.failure_type!r}) or domain {entry.domain!r}",
            )
        started = time.perf_counter()
        try:
            return await self._run_handler(handler, entry, input.timeout, started)
        finally:
            if self.metrics:
                metrics.observe_replay(time.perf_counter() - started)

    async def _run_handler(self, handler: Any, entry: Any, timeout: float,
                           started: float) -> ReplayHandlerResult:
        try:
            call: Awaitable[Any]
            if inspect.iscoroutinefunction(handler):
                call = handler(entry)
            else:
                loop = asyncio.get_running_loop()
                call = loop.run_in_executor(self.handler_executor, handler, entry)
            result = await asyncio.wait_for(call, timeout=timeout)
            if inspect.isawaitable(result):  # a sync callable that returned a coroutine
                await asyncio.wait_for(result, timeout=timeout)
        except TimeoutError:
            return ReplayHandlerResult(outcome="timeout",
                                       error=f"replay handler timed out after {timeout:g}s",
                                       duration_ms=_ms(started))
        except Exception as err:  # noqa: BLE001 - a failing handler is a normal outcome
            # The exception text may quote the data it failed on: it becomes
            # last_error (history, SQL, the Web UI card) only once filtered.
            error = self.redactor.text(f"{type(err).__name__}: {err}")
            activity.logger.info("replay handler failed for %s: %s", entry.id, error)
            return ReplayHandlerResult(outcome="failure", error=error, duration_ms=_ms(started))
        return ReplayHandlerResult(outcome="success", duration_ms=_ms(started))


    def _load_payload(self, entry_id: str) -> dict | None:
        with Session(self.engine) as session:
            return repo.load_payload(session=session, entry_id=entry_id)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
