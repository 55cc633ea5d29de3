"""``DLQEntryWorkflow``: one durable workflow per DLQ entry.

It holds the entry's status, retry budget, attempt history and audit trail,
drives automatic replays and expiry with timers, takes operator commands as
updates (with results) or signals (fire-and-forget) through one code path,
and projects its state to SQL through ``persist_entry`` (a local activity,
falling back to a regular one while SQL is slow or down). Transitions made
while a write runs are coalesced into the next one, and a replay whose
handler answers within ``TRANSIENT_VISIBLE_AFTER`` is projected once, with its
outcome, not first as ``replaying``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from dlq import _card
    from dlq import _state as sm
    from dlq._card import COMMAND_HELP
    from dlq._checks import command_problem
    from dlq._messages import (
        AuditRecord,
        CaptureInput,
        CaptureResult,
        EditDataInput,
        EditDataResult,
        EntryInput,
        EntryResult,
        ForceRedriveInput,
        ReplayHandlerInput,
        ReplayHandlerResult,
        ReplayResult,
        ResolveInput,
        ResolveResult,
        RetryInput,
    )
    from dlq._models import EntryState
    from dlq._redact import redact_command_text
    from dlq._signals import COMMAND_INPUTS, SIGNAL_PATCH, clip_reason, parse_signal
    from dlq.workflows.projection import EntryProjection

STATUS_KEY = SearchAttributeKey.for_keyword("DlqStatus")
DOMAIN_KEY = SearchAttributeKey.for_keyword("DlqDomain")
FAILURE_TYPE_KEY = SearchAttributeKey.for_keyword("DlqFailureType")
RETRY_COUNT_KEY = SearchAttributeKey.for_int("DlqRetryCount")

# A replay's transient ``replaying`` state is made visible (search attributes
# and SQL row) only if the handler is still running after this long: a fast
# replay is then projected once, with its outcome, instead of twice.
TRANSIENT_VISIBLE_AFTER = timedelta(seconds=1)
# A replay attempt runs at most once: a handler may not be idempotent, and a
# lost worker must count as one failed attempt, not a silent second call.
REPLAY_RETRY = RetryPolicy(maximum_attempts=1)

CONTINUING_AS_NEW = "ContinuingAsNew"
# Since this patch a rejected persist is recorded (unprojected) instead of
# falling back to, and failing in, the regular activity.
PERSIST_REJECTED_PATCH = "persist-rejected"
__all__ = ["COMMAND_INPUTS", "DLQEntryWorkflow"]


@workflow.defn(name="DLQEntryWorkflow")
class DLQEntryWorkflow(EntryProjection):
    """One DLQ entry.

    Commands: ``retry``, ``force_redrive``, ``resolve``, ``edit_data``.
    Queries: ``get_state``, ``audit``, ``audit_text``.
    """

    @workflow.init
    def __init__(self, input: EntryInput) -> None:
        info = workflow.info()
        self._state: EntryState = input.state or sm.new_state(
            input, workflow_id=info.workflow_id, now=workflow.now(),
            rand=workflow.random().random(),
        )
        self._lock = asyncio.Lock()
        self._wake = False
        self._draining = False
        # On continue-as-new everything carried over was already persisted.
        self._persisted_version = self._state.version if input.state else 0
        self._persisted_seq = self._state.audit_seq if input.state else 0
        self._persisted_edits = self._state.data_edits if input.state else 0
        # While True, the transient state of a running replay is not projected.
        self._holding_transient = False
        # Set after a local persist failed: persist as regular activities until
        # one succeeds, so a long SQL outage never holds the workflow task.
        self._sql_unhealthy = False

    @workflow.run
    async def run(self, input: EntryInput) -> EntryResult:
        """Wait for commands and timers until the entry is closed."""
        # Asked here, once per run, not where a rejection is caught: measured
        # with temporalio 1.35, a patch marker written right after a failed
        # local activity does not replay (the LA's result reaches the code in
        # a later activation than the marker is matched in).
        self._records_rejections = workflow.patched(PERSIST_REJECTED_PATCH)
        self._publish()
        persister = asyncio.create_task(self._persist_loop())
        while not sm.is_closed(self._state):
            deadline = sm.next_deadline(self._state)
            timeout = (deadline - workflow.now()).total_seconds() if deadline else None
            if timeout is None or timeout > 0:
                try:
                    await workflow.wait_condition(
                        lambda: self._wake or sm.is_closed(self._state), timeout=timeout,
                        timeout_summary="next auto-replay or expiry",
                    )
                except TimeoutError:
                    pass
            self._wake = False
            await self._on_timer()
            if workflow.info().is_continue_as_new_suggested() and not self._lock.locked():
                # Stop admitting occurrences, or a hot entry never gets quiet enough.
                self._draining = True
                await self._quiesce()
                persister.cancel()
                workflow.continue_as_new(EntryInput(**input.model_dump(exclude={"state"}),
                                                    state=self._state))
        await self._quiesce()
        persister.cancel()
        return _card.entry_result(self._state)

    # --- query ----------------------------------------------------------------

    @workflow.query(description=COMMAND_HELP["get_state"])
    def get_state(self) -> EntryState:
        """The entry's full state."""
        return self._state

    @workflow.query(description=COMMAND_HELP["audit"])
    def audit(self) -> list[AuditRecord]:
        """The audit trail the workflow keeps (the newest 100 events), oldest first."""
        return _card.audit_records(self._state)

    @workflow.query(description=COMMAND_HELP["audit_text"])
    def audit_text(self) -> str:
        """The audit trail as text, one event per line."""
        return _card.audit_text(self._state)

    # --- capture --------------------------------------------------------------

    @workflow.update(description=COMMAND_HELP["capture"])
    async def capture(self, input: CaptureInput) -> CaptureResult:
        """Sent with every store: returns once the entry's SQL row is readable.

        A capture under another ``dlq_id`` is a new occurrence of a
        deduplicated failure (update ids deduplicate client retries).
        """
        s = self._state
        if input.dlq_id != s.id and not sm.is_closed(s):
            sm.record_occurrence(s, workflow.now())
            self._publish()
        await self._flushed()
        return CaptureResult(dlq_id=s.id, status=s.status, version=s.version,
                             occurrences=s.occurrences)

    @capture.validator
    def validate_capture(self, input: CaptureInput) -> None:
        """Turn occurrences away while the entry continues as new (the client retries)."""
        if self._draining and input.dlq_id != self._state.id:
            # Rejected before anything is recorded; the client retries on the new run.
            raise ApplicationError("entry is continuing as new; retry the capture",
                                   type=CONTINUING_AS_NEW, non_retryable=True)

    # --- commands: updates ----------------------------------------------------

    @workflow.update(name="retry", description=COMMAND_HELP["retry"])
    async def retry(self, input: RetryInput) -> ReplayResult:
        """Replay now, within the budget (the cap gate)."""
        return await self._command("retry", input)

    @retry.validator
    def validate_retry(self, input: RetryInput) -> None:
        """Refuse a retry the entry's state does not allow, before history records it."""
        self._check_text(input)
        self._check("retry", input)

    @workflow.update(name="force_redrive", description=COMMAND_HELP["force_redrive"])
    async def force_redrive(self, input: ForceRedriveInput) -> ReplayResult:
        """Replay past the cap with a fresh budget (audited)."""
        return await self._command("force_redrive", input)

    @force_redrive.validator
    def validate_force_redrive(self, input: ForceRedriveInput) -> None:
        """Refuse a force-redrive the entry's state does not allow, before history records it."""
        self._check_text(input)
        self._check("force_redrive", input)

    @workflow.update(name="resolve", description=COMMAND_HELP["resolve"])
    async def resolve(self, input: ResolveInput) -> ResolveResult:
        """Close the entry as resolved or discarded."""
        return await self._command("resolve", input)

    @resolve.validator
    def validate_resolve(self, input: ResolveInput) -> None:
        """Refuse a resolve the entry's state does not allow, before history records it."""
        self._check_text(input)
        self._check("resolve", input)

    @workflow.update(name="edit_data", description=COMMAND_HELP["edit_data"])
    async def edit_data(self, input: EditDataInput) -> EditDataResult:
        """Edit ``request_data``/``snapshot_data`` before the next replay (audited with a diff)."""
        return await self._command("edit_data", input)

    @edit_data.validator
    def validate_edit_data(self, input: EditDataInput) -> None:
        """Refuse an edit the entry's state does not allow, before history records it."""
        self._check_text(input)
        self._check("edit_data", input)

    # --- commands: signals (same names, lenient input) -------------------------
    # Each takes any number of inputs of any JSON: a signal whose arity or
    # payload made its handler raise would fail every workflow task of the
    # entry from then on. What cannot be applied is recorded (signal_rejected).

    @workflow.signal(name="retry", description=COMMAND_HELP["retry"])
    async def retry_signal(self, *args: Any) -> None:
        """Fire-and-forget ``retry``; one that cannot be applied is recorded and ignored."""
        await self._signal("retry", args)

    @workflow.signal(name="force_redrive", description=COMMAND_HELP["force_redrive"])
    async def force_redrive_signal(self, *args: Any) -> None:
        """Fire-and-forget ``force_redrive``; one that cannot be applied is recorded and ignored."""
        await self._signal("force_redrive", args)

    @workflow.signal(name="resolve", description=COMMAND_HELP["resolve"])
    async def resolve_signal(self, *args: Any) -> None:
        """Fire-and-forget ``resolve``; one that cannot be applied is recorded and ignored."""
        await self._signal("resolve", args)

    @workflow.signal(name="edit_data", description=COMMAND_HELP["edit_data"])
    async def edit_data_signal(self, *args: Any) -> None:
        """Fire-and-forget ``edit_data``; one that cannot be applied is recorded and ignored."""
        await self._signal("edit_data", args)

    @workflow.signal(name="expire", description=COMMAND_HELP["expire"])
    async def expire_signal(self, *args: Any) -> None:
        """Maintenance safety net: expire now if ``expires_at`` has passed (input ignored)."""
        async with self._lock:
            s = self._state
            if not sm.can_expire(s, workflow.now()):
                self._reject("expire", f"entry is {s.status}, expires at "
                                       f"{s.expires_at.isoformat() if s.expires_at else '-'}",
                             None, strict=workflow.patched(SIGNAL_PATCH))
                return
            sm.expire(s, workflow.now())
            self._publish()

    # --- the one code path behind updates and signals --------------------------

    def _check_text(self, cmd: Any) -> None:
        # In update validators only (they do not run on replay); signals check
        # the same limits in parse_signal. Keeps get_state under Temporal's limit.
        problem = command_problem(cmd)
        if problem:
            raise ApplicationError(problem, type="DLQInvalidInputError", non_retryable=True)

    def _check(self, name: str, cmd: Any) -> None:
        try:
            sm.check_target(self._state, cmd.dlq_id)
            if name == "retry":
                sm.check_retry(self._state)
            elif name == "force_redrive":
                sm.check_force_redrive(self._state, actor_id=cmd.actor, reason=cmd.reason)
            elif name == "edit_data":
                sm.check_edit(self._state, actor=cmd.actor, patch=cmd.patch(),
                              max_bytes=cmd.max_bytes)
            else:
                sm.check_resolve(self._state, status=cmd.status)
        except sm.TransitionRejected as err:
            raise ApplicationError(str(err), type=err.error_type, non_retryable=True) from None

    async def _signal(self, name: str, args: tuple[Any, ...]) -> None:
        # Histories from before SIGNAL_PATCH replay with the lenient handling
        # they ran with (no arity or key checks, rejections only logged).
        strict = workflow.patched(SIGNAL_PATCH)
        parsed = parse_signal(name, args, strict=strict)
        if parsed.command is None:
            self._reject(name, parsed.problem or "invalid input", parsed.actor, strict=strict)
            return
        try:
            await self._command(name, parsed.command)
        except ApplicationError as err:
            self._reject(name, err.message, parsed.actor, strict=strict)
        except Exception as err:
            if not strict:
                raise
            # Never fail the workflow task over one signal: the entry must keep
            # answering queries and firing timers.
            self._reject(name, f"internal error ({type(err).__name__})", parsed.actor,
                         strict=strict)

    def _reject(self, name: str, reason: str, actor: str | None, *, strict: bool) -> None:
        """Ignore a signal; record why in the audit trail so operators see it in the entry."""
        workflow.logger.warning("ignored %s signal: %s", name, clip_reason(reason))
        if strict:
            # The reason names the signal, so the audit line reads on its own.
            audited = clip_reason(reason if reason.startswith(name) else f"{name}: {reason}")
            sm.record_rejection(self._state, workflow.now(), signal=name, reason=audited,
                                actor=actor)
            self._set_details()

    async def _command(self, name: str, cmd: Any) -> Any:
        # The Python client filters an operator's text already; a signal from
        # the Web UI or the temporal CLI did not pass through it. Filtered here
        # too, so no secret in a reason or notes reaches the state, the audit
        # trail or SQL (value rules only: pure, so replay recomputes the same).
        cmd = redact_command_text(cmd)
        self._check(name, cmd)
        async with self._lock:
            # Another command may have run while this one waited for the lock.
            self._check(name, cmd)
            if name == "resolve":
                result: Any = self._resolve(cmd)
            elif name == "edit_data":
                result = self._edit(cmd)
            else:
                force = name == "force_redrive"
                result = await self._attempt(
                    trigger="force" if force else cmd.trigger, force=force,
                    actor=cmd.actor, reason=cmd.reason,
                    ticket_url=cmd.ticket_url if force else None,
                )
        await self._flushed()
        if isinstance(result, ReplayResult) and result.error:
            raise ApplicationError(result.error, type="DLQReplayError", non_retryable=True)
        return result

    def _resolve(self, cmd: ResolveInput) -> ResolveResult:
        now = workflow.now()
        previous = sm.resolve(self._state, now, status=cmd.status, notes=cmd.notes,
                                  resolution_type=cmd.resolution_type, actor=cmd.actor)
        self._publish()
        return ResolveResult(success=True, id=self._state.id, previous_status=previous,
                             current_status=self._state.status, resolved_at=now, notes=cmd.notes)

    def _edit(self, cmd: EditDataInput) -> EditDataResult:
        s = self._state
        diff = sm.edit_data(s, workflow.now(), actor=cmd.actor, reason=cmd.reason,
                            patch=cmd.patch(), max_bytes=cmd.max_bytes)
        self._publish()
        return EditDataResult(success=True, id=s.id, status=s.status,
                              data_edits=s.data_edits, diff=diff)

    async def _attempt(self, *, trigger: str, force: bool = False, actor: str | None = None,
                       reason: str = "", ticket_url: str | None = None) -> ReplayResult:
        s = self._state
        previous_status = s.status
        previous_count = sm.begin_attempt(s, workflow.now(), trigger=trigger, force=force,
                                              actor=actor, reason=reason, ticket_url=ticket_url)
        # The transient ``replaying`` state stays out of SQL and search
        # attributes unless the handler is still running after a moment.
        self._holding_transient = True
        self._set_details()
        started = workflow.now()
        unexpected: str | None = None
        try:
            handler = workflow.start_activity(
                "run_replay_handler",
                ReplayHandlerInput(entry=s.to_data(), timeout=s.replay_timeout,
                                   payload_ref=s.payload_ref),
                result_type=ReplayHandlerResult,
                start_to_close_timeout=timedelta(seconds=s.replay_timeout + 30),
                retry_policy=REPLAY_RETRY,
                summary=f"replay {s.domain}/{s.failure_type} ({trigger})",
            )
            try:
                await workflow.wait_condition(
                    handler.done, timeout=TRANSIENT_VISIBLE_AFTER,
                    timeout_summary="show a slow replay as replaying")
            except TimeoutError:
                # A slow handler: operators and SQL must see the entry replaying.
                self._holding_transient = False
                self._publish()
            outcome = await handler
        except ActivityError as err:
            cause = err.cause or err
            unexpected = f"replay activity failed: {cause}"
            outcome = ReplayHandlerResult(
                outcome="error", error=unexpected,
                duration_ms=(workflow.now() - started).total_seconds() * 1000,
            )
        sm.finish_attempt(
            s, workflow.now(), trigger=trigger, outcome=outcome.outcome, error=outcome.error,
            duration_ms=outcome.duration_ms, previous_status=previous_status,
            previous_retry_count=previous_count, actor=actor, started_at=started,
            rand=workflow.random().random(),
        )
        self._holding_transient = False
        self._publish()
        if outcome.outcome == "no_handler":
            unexpected = outcome.error
        success = outcome.outcome == "success"
        return ReplayResult(
            success=success, id=s.id, retry_count=s.retry_count,
            previous_retry_count=previous_count, status=s.status,
            message=("replay succeeded" if success
                     else f"replay {outcome.outcome}: {outcome.error}; entry is {s.status}"),
            error=unexpected,
        )

    # --- timers -----------------------------------------------------------------

    async def _on_timer(self) -> None:
        async with self._lock:
            s = self._state
            now = workflow.now()
            if sm.can_expire(s, now):
                sm.expire(s, now)
                self._publish()
            elif sm.auto_replay_due(s, now):
                await self._attempt(trigger="auto")

    # --- projection --------------------------------------------------------------

    def _publish(self) -> None:
        """Make a transition visible: search attributes, current details, wake the loops."""
        s = self._state
        workflow.upsert_search_attributes([
            STATUS_KEY.value_set(str(s.status)),
            DOMAIN_KEY.value_set(s.domain),
            FAILURE_TYPE_KEY.value_set(s.failure_type),
            RETRY_COUNT_KEY.value_set(s.retry_count),
        ])
        self._set_details()
        self._wake = True

    def _set_details(self) -> None:
        # Current details are not a history event (the SDK answers the Web UI's
        # metadata query with them): cheap even for a transient state.
        workflow.set_current_details(_card.render_card(self._state, workflow.now()))

