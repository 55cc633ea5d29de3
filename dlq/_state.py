"""The entry state machine as pure functions.

The entry workflow calls these with ``workflow.now()`` and
``workflow.random()``; unit tests call them directly. Every transition bumps
``version`` and appends an audit event, so the SQL projection can apply
changes in order and skip stale ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dlq._fields import FAILURE_FIELDS
from dlq._messages import EntryInput
from dlq._models import CLOSED_STATUSES, AttemptRecord, AuditEvent, DLQStatus, EntryState
from dlq._patch import EDITABLE_FIELDS, apply_edit

MAX_BACKOFF_SECONDS = 3600.0
BACKOFF_FACTOR = 2.0
JITTER = 0.1  # +-10 % on every automatic attempt after the first
# The workflow keeps only the newest audit events; SQL keeps them all.
AUDIT_KEPT_IN_WORKFLOW = 100


class TransitionRejected(Exception):
    """A command is not allowed; ``error_type`` names the public error class."""

    def __init__(self, message: str, *, error_type: str = "DLQStateConflictError") -> None:
        super().__init__(message)
        self.error_type = error_type


def new_state(entry: EntryInput, *, workflow_id: str, now: datetime, rand: float) -> EntryState:
    """Build the state of a freshly captured entry (version 1, ``pending``)."""
    created_at = entry.created_at or now
    state = EntryState(
        id=entry.dlq_id,
        workflow_id=workflow_id,
        **entry.model_dump(include={*FAILURE_FIELDS, "retry_delay", "auto_replay",
                                    "replay_timeout", "payload_ref",
                                    "redacted_paths"}),
        max_retries=entry.max_retries,
        created_at=created_at,
        updated_at=created_at,
        last_seen_at=created_at,
        expires_at=created_at + timedelta(hours=entry.expiry_hours),
    )
    details: dict[str, Any] = {"recommended_action": entry.recommended_action}
    if entry.capture_mode:
        details["mode"] = entry.capture_mode
    _record(state, created_at, action="created", to_status=DLQStatus.PENDING, details=details)
    schedule_auto(state, now=created_at, rand=rand)
    return state


def is_closed(state: EntryState) -> bool:
    """Whether the entry reached a terminal status."""
    return state.status in CLOSED_STATUSES


def auto_enabled(state: EntryState) -> bool:
    """Whether the workflow schedules replays on its own for this entry."""
    return state.auto_replay and state.recommended_action == "replay"


# --- rules -------------------------------------------------------------------
# Each rule is written here once; models, the workflow and SQL readers use it.


def is_retryable(status: str, retry_count: int, max_retries: int) -> bool:
    """Whether a normal (non-forced) retry is allowed: ``pending`` with budget left."""
    return status == DLQStatus.PENDING and retry_count < max_retries


def auto_replay_due(state: EntryState, now: datetime) -> bool:
    """Whether the automatic replay that :func:`schedule_auto` set is due now."""
    return (state.next_auto_attempt_at is not None and now >= state.next_auto_attempt_at
            and is_retryable(state.status, state.retry_count, state.max_retries))


def can_expire(state: EntryState, now: datetime) -> bool:
    """Whether an open entry has reached ``expires_at``."""
    return (not is_closed(state) and state.expires_at is not None
            and now >= state.expires_at)


# --- gates -------------------------------------------------------------------


def check_retry(state: EntryState) -> None:
    """The cap gate: a normal retry needs ``pending`` and budget left.

    Raises:
        TransitionRejected: Otherwise.
    """
    if is_closed(state):
        raise TransitionRejected(f"entry {state.id} is {state.status}; it cannot be retried")
    if state.status == DLQStatus.REPLAYING:
        raise TransitionRejected(f"entry {state.id} has a replay attempt running")
    if not is_retryable(state.status, state.retry_count, state.max_retries):
        raise TransitionRejected(
            f"entry {state.id} has exhausted its replay attempts "
            f"({state.retry_count}/{state.max_retries}); use force_redrive"
        )


def check_force_redrive(state: EntryState, *, actor_id: str | None, reason: str) -> None:
    """Force-redrive needs an actor, a reason and an open, idle entry.

    Raises:
        TransitionRejected: ``ValueError`` for missing actor or reason,
            ``DLQStateConflictError`` for a closed or replaying entry.
    """
    if not (actor_id or "").strip():
        raise TransitionRejected("force_redrive requires actor_id", error_type="ValueError")
    if not (reason or "").strip():
        raise TransitionRejected("force_redrive requires a non-empty reason",
                                 error_type="ValueError")
    if is_closed(state):
        raise TransitionRejected(f"entry {state.id} is {state.status}; it cannot be redriven")
    if state.status == DLQStatus.REPLAYING:
        raise TransitionRejected(f"entry {state.id} has a replay attempt running")


RESOLVE_TARGETS = (DLQStatus.RESOLVED.value, DLQStatus.DISCARDED.value)


def check_edit(state: EntryState, *, actor: str | None, patch: dict[str, Any],
               max_bytes: int) -> None:
    """Edit before replay needs an actor, an open idle entry with inline data, a real change.

    Raises:
        TransitionRejected: ``ValueError`` for a missing actor or a bad or
            empty patch, ``DLQStateConflictError`` for a closed or replaying
            entry, ``DLQError`` for claim-checked data (kept in SQL, not editable).
    """
    if not (actor or "").strip():
        raise TransitionRejected("edit_data requires an actor", error_type="ValueError")
    if is_closed(state):
        raise TransitionRejected(f"entry {state.id} is {state.status}; its data cannot be "
                                 "edited")
    if state.status == DLQStatus.REPLAYING:
        raise TransitionRejected(f"entry {state.id} has a replay attempt running")
    if state.payload_ref:
        raise TransitionRejected(
            f"entry {state.id} keeps its data in SQL (a claim check: it was over "
            "DLQ_PAYLOAD_INLINE_BYTES when captured); such entries cannot be edited",
            error_type="DLQError")
    try:
        apply_edit(_editable(state), patch, max_bytes=max_bytes)
    except ValueError as err:
        raise TransitionRejected(str(err), error_type="ValueError") from None


def _editable(state: EntryState) -> dict[str, dict[str, Any]]:
    return {name: getattr(state, name) for name in EDITABLE_FIELDS}


def check_resolve(state: EntryState, *, status: str) -> None:
    """Resolve closes an open entry as ``resolved`` or ``discarded``.

    Raises:
        TransitionRejected: ``ValueError`` for another target status,
            ``DLQStateConflictError`` for an entry already closed.
    """
    if status not in RESOLVE_TARGETS:
        raise TransitionRejected(
            f"status must be one of {', '.join(RESOLVE_TARGETS)}, got {status!r:.100}",
            error_type="DLQInvalidInputError",
        )
    if is_closed(state):
        raise TransitionRejected(f"entry {state.id} is already {state.status}")


# --- transitions -------------------------------------------------------------


def _record(state: EntryState, now: datetime, *, action: str, to_status: DLQStatus,
            actor: str | None = None, reason: str = "", ticket_url: str | None = None,
            details: dict[str, Any] | None = None) -> None:
    state.audit_seq += 1
    state.audit.append(AuditEvent(
        seq=state.audit_seq, at=now, action=action, actor=actor, reason=reason,
        ticket_url=ticket_url, from_status=state.status if state.version else None,
        to_status=to_status, details=details or {},
    ))
    del state.audit[:-AUDIT_KEPT_IN_WORKFLOW]
    state.status = to_status
    state.version += 1
    state.updated_at = now
    if to_status in CLOSED_STATUSES:
        state.closed_at = now
        state.next_auto_attempt_at = None


def record_unprojected(state: EntryState, now: datetime, *, version: int, reason: str) -> None:
    """SQL refused the row at ``version`` for good: the entry is in Temporal, not in SQL.

    Not a transition (status and version stay): ``unprojected`` holds the
    reason until a later write succeeds, and a ``persist_rejected`` audit
    event records it (it reaches SQL with the next write that succeeds).
    """
    state.unprojected = f"v{version}: {reason}"
    state.audit_seq += 1
    state.audit.append(AuditEvent(
        seq=state.audit_seq, at=now, action="persist_rejected", reason=reason[:500],
        from_status=state.status, to_status=state.status, details={"version": version}))
    del state.audit[:-AUDIT_KEPT_IN_WORKFLOW]


def begin_attempt(state: EntryState, now: datetime, *, trigger: str, force: bool = False,
                  actor: str | None = None, reason: str = "",
                  ticket_url: str | None = None) -> int:
    """Acquire the entry for one attempt: ``replaying``, one unit of budget used.

    A forced attempt first grants a fresh budget. Returns the retry count
    before the acquire.
    """
    previous = state.retry_count
    if force:
        state.retry_count = 0
    state.retry_count += 1
    state.last_attempt_at = now
    state.next_auto_attempt_at = None
    _record(state, now, action="force_redrive" if force else "replay_started",
            to_status=DLQStatus.REPLAYING, actor=actor, reason=reason, ticket_url=ticket_url,
            details={"trigger": trigger, "attempt": state.retry_count,
                     "previous_retry_count": previous})
    return previous


def finish_attempt(state: EntryState, now: datetime, *, trigger: str, outcome: str,
                   error: str | None, duration_ms: float, previous_status: DLQStatus,
                   previous_retry_count: int, actor: str | None = None,
                   started_at: datetime | None = None, rand: float = 0.5) -> None:
    """Apply an attempt's outcome.

    ``success`` resolves the entry. A failure returns it to ``pending`` while
    budget is left and to ``requires_review`` at the cap. ``no_handler``
    consumes no budget: a manual attempt goes back to where it was, an
    automatic one parks the entry in ``requires_review``.
    """
    counted = outcome != "no_handler"
    if not counted:
        state.retry_count = previous_retry_count
    state.attempts.append(AttemptRecord(
        number=len(state.attempts) + 1, at=started_at or now, trigger=trigger, outcome=outcome,
        error=error, duration_ms=duration_ms, actor=actor, counted=counted,
    ))
    details = {"trigger": trigger, "outcome": outcome, "attempt": state.retry_count}
    if outcome == "success":
        state.resolved_at = now
        state.resolution_type = "replay"
        _record(state, now, action="replay_succeeded", to_status=DLQStatus.RESOLVED,
                actor=actor, details=details)
        return
    state.last_error = error
    if not counted:
        target = DLQStatus.REQUIRES_REVIEW if trigger == "auto" else previous_status
        _record(state, now, action="replay_skipped", to_status=target, actor=actor,
                reason=error or "", details=details)
    else:
        target = (DLQStatus.PENDING if state.retry_count < state.max_retries
                  else DLQStatus.REQUIRES_REVIEW)
        _record(state, now, action="replay_failed", to_status=target, actor=actor,
                reason=error or "", details=details)
    schedule_auto(state, now=now, rand=rand)


def record_occurrence(state: EntryState, now: datetime) -> None:
    """One more occurrence of a deduplicated failure.

    Not a transition (the status stays), so no audit event: a hot failure
    may recur thousands of times. The version still moves, so SQL follows.
    """
    state.occurrences += 1
    state.last_seen_at = now
    state.updated_at = now
    state.version += 1


def record_rejection(state: EntryState, now: datetime, *, signal: str, reason: str,
                     actor: str | None = None) -> None:
    """Record an ignored signal as a ``signal_rejected`` audit event.

    Not a transition: the status, ``updated_at`` and ``closed_at`` stay. The
    version moves so the event reaches SQL. ``reason`` and ``actor`` come
    already clipped (:mod:`dlq._signals`).
    """
    state.audit_seq += 1
    state.audit.append(AuditEvent(
        seq=state.audit_seq, at=now, action="signal_rejected", actor=actor, reason=reason,
        from_status=state.status, to_status=state.status, details={"signal": signal},
    ))
    del state.audit[:-AUDIT_KEPT_IN_WORKFLOW]
    state.version += 1


def check_target(state: EntryState, dlq_id: str | None) -> None:
    """A command names the entry it means; a later entry on the same workflow id is not it.

    Raises:
        TransitionRejected: If ``dlq_id`` is another entry (closed by now).
    """
    if dlq_id is not None and dlq_id != state.id:
        raise TransitionRejected(
            f"entry {dlq_id} is closed (its dedup key now belongs to entry {state.id})")


def resolve(state: EntryState, now: datetime, *, status: str, notes: str,
            resolution_type: str, actor: str | None = None) -> DLQStatus:
    """Close the entry as ``resolved`` or ``discarded``; returns the previous status."""
    previous = state.status
    state.resolved_at = now
    state.resolution_type = resolution_type
    state.resolution_notes = notes
    target = DLQStatus(status)
    _record(state, now, action="discard" if target == DLQStatus.DISCARDED else "resolve",
            to_status=target, actor=actor, reason=notes,
            details={"resolution_type": resolution_type})
    return previous


def edit_data(state: EntryState, now: datetime, *, actor: str | None, reason: str,
              patch: dict[str, Any], max_bytes: int) -> list[dict[str, Any]]:
    """Apply an edit before replay (checked by :func:`check_edit`); returns the diff.

    The data as captured is kept in ``original_data`` at the first edit. The
    status stays; the audit event ``edit_data`` carries the actor, the reason
    and the diff.
    """
    before = _editable(state)
    edited, diff = apply_edit(before, patch, max_bytes=max_bytes)
    if state.original_data is None:
        state.original_data = before
    for name, value in edited.items():
        setattr(state, name, value)
    state.data_edits += 1
    state.data_edited_at = now
    _record(state, now, action="edit_data", to_status=state.status, actor=actor, reason=reason,
            details={"diff": diff, "fields": sorted(edited), "edit": state.data_edits})
    return diff


def expire(state: EntryState, now: datetime) -> None:
    """Close an open entry whose ``expires_at`` has passed."""
    _record(state, now, action="expire", to_status=DLQStatus.EXPIRED,
            details={"expires_at": state.expires_at.isoformat() if state.expires_at else None})


# --- timing ------------------------------------------------------------------


def backoff_delay(retry_count: int, retry_delay: float, rand: float) -> float:
    """Seconds before automatic attempt number ``retry_count + 1``.

    The first waits exactly ``retry_delay``; later ones double, with +-10 %
    jitter from ``rand`` (``workflow.random().random()``), capped at one hour.
    """
    delay = retry_delay * BACKOFF_FACTOR ** retry_count
    if retry_count > 0:
        delay *= 1 + JITTER * (2 * rand - 1)
    return min(delay, MAX_BACKOFF_SECONDS)


def schedule_auto(state: EntryState, *, now: datetime, rand: float) -> None:
    """Set (or clear) when the next automatic attempt is due."""
    if auto_enabled(state) and is_retryable(state.status, state.retry_count,
                                            state.max_retries):
        delay = backoff_delay(state.retry_count, state.retry_delay, rand)
        state.next_auto_attempt_at = now + timedelta(seconds=delay)
    else:
        state.next_auto_attempt_at = None


def next_deadline(state: EntryState) -> datetime | None:
    """The earliest of expiry and the next automatic attempt, if any."""
    times = [t for t in (state.expires_at, state.next_auto_attempt_at) if t is not None]
    return min(times) if times else None
