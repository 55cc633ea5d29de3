"""Unit tests of the pure entry state machine: every transition and every rejection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dlq import _state as sm
from dlq._messages import EntryInput
from dlq._models import DLQStatus, EntryState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make(recommended_action: str = "manual_check", **kw: object) -> EntryState:
    entry = EntryInput(dlq_id="e1", domain="payment", failure_type="PG_TIMEOUT",
                       recommended_action=recommended_action, created_at=T0,
                       retry_delay=60, expiry_hours=72, max_retries=2, **kw)
    return sm.new_state(entry, workflow_id="dlq-e1", now=T0, rand=0.5)


def at(status: DLQStatus, **kw: object) -> EntryState:
    state = make(**kw)
    state.status = status
    return state


def test_new_entry_is_pending_version_one_with_created_audit() -> None:
    s = make()
    assert (s.status, s.version, s.retry_count, s.max_retries) == ("pending", 1, 0, 2)
    assert s.expires_at == T0 + timedelta(hours=72)
    assert [e.action for e in s.audit] == ["created"]
    assert s.audit[0].from_status is None and s.audit[0].to_status == "pending"


def test_fractional_expiry_hours() -> None:
    entry = EntryInput(dlq_id="e2", domain="d", failure_type="f", created_at=T0,
                       expiry_hours=0.5)
    s = sm.new_state(entry, workflow_id="w", now=T0, rand=0.5)
    assert s.expires_at == T0 + timedelta(minutes=30)


def test_auto_replay_scheduled_only_for_replay_entries() -> None:
    assert make("replay").next_auto_attempt_at == T0 + timedelta(seconds=60)
    assert make("manual_check").next_auto_attempt_at is None
    assert make("replay", auto_replay=False).next_auto_attempt_at is None


# --- gates ---------------------------------------------------------------------

def test_retry_allowed_when_pending_with_budget() -> None:
    sm.check_retry(make())


@pytest.mark.parametrize("status", ["resolved", "discarded", "expired", "archived"])
def test_retry_rejected_on_closed(status: str) -> None:
    with pytest.raises(sm.TransitionRejected, match=status) as err:
        sm.check_retry(at(DLQStatus(status)))
    assert err.value.error_type == "DLQStateConflictError"


def test_retry_rejected_while_replaying() -> None:
    with pytest.raises(sm.TransitionRejected, match="running"):
        sm.check_retry(at(DLQStatus.REPLAYING))


def test_retry_rejected_at_cap_and_in_review() -> None:
    s = make()
    s.retry_count = 2
    with pytest.raises(sm.TransitionRejected, match="exhausted"):
        sm.check_retry(s)
    with pytest.raises(sm.TransitionRejected, match="exhausted"):
        sm.check_retry(at(DLQStatus.REQUIRES_REVIEW))


@pytest.mark.parametrize(("actor", "reason", "match"), [
    (None, "fixed", "actor_id"), ("  ", "fixed", "actor_id"), ("ops", "", "reason"),
    ("ops", "   ", "reason"),
])
def test_force_redrive_needs_actor_and_reason(actor: str | None, reason: str, match: str) -> None:
    with pytest.raises(sm.TransitionRejected, match=match) as err:
        sm.check_force_redrive(at(DLQStatus.REQUIRES_REVIEW), actor_id=actor, reason=reason)
    assert err.value.error_type == "ValueError"


@pytest.mark.parametrize("status", ["pending", "requires_review"])
def test_force_redrive_allowed_on_open_idle(status: str) -> None:
    sm.check_force_redrive(at(DLQStatus(status)), actor_id="ops", reason="root cause fixed")


@pytest.mark.parametrize("status", ["replaying", "resolved", "discarded", "expired", "archived"])
def test_force_redrive_rejected(status: str) -> None:
    with pytest.raises(sm.TransitionRejected) as err:
        sm.check_force_redrive(at(DLQStatus(status)), actor_id="ops", reason="x")
    assert err.value.error_type == "DLQStateConflictError"


@pytest.mark.parametrize("status", ["pending", "replaying", "requires_review"])
def test_resolve_allowed_on_open(status: str) -> None:
    sm.check_resolve(at(DLQStatus(status)), status="resolved")
    sm.check_resolve(at(DLQStatus(status)), status="discarded")


@pytest.mark.parametrize("status", ["resolved", "discarded", "expired", "archived"])
def test_resolve_rejected_on_closed(status: str) -> None:
    with pytest.raises(sm.TransitionRejected, match="already") as err:
        sm.check_resolve(at(DLQStatus(status)), status="resolved")
    assert err.value.error_type == "DLQStateConflictError"


@pytest.mark.parametrize("target", ["expired", "pending", "archived", ""])
def test_resolve_rejects_other_targets(target: str) -> None:
    with pytest.raises(sm.TransitionRejected, match="status must be one of") as err:
        sm.check_resolve(make(), status=target)
    # A DLQError (HTTP 400, as the reference says) that is also a ValueError.
    assert err.value.error_type == "DLQInvalidInputError"


# --- transitions ------------------------------------------------------------------

def attempt(s: EntryState, outcome: str, trigger: str = "manual", force: bool = False,
            error: str | None = "boom") -> int:
    previous_status = s.status
    prev = sm.begin_attempt(s, T0, trigger=trigger, force=force, actor="ops" if force else None,
                            reason="r" if force else "")
    assert s.status == "replaying"
    sm.finish_attempt(s, T0 + timedelta(seconds=1), trigger=trigger, outcome=outcome,
                      error=None if outcome == "success" else error, duration_ms=5,
                      previous_status=previous_status, previous_retry_count=prev,
                      started_at=T0, rand=0.5)
    return prev


def test_success_resolves() -> None:
    s = make()
    attempt(s, "success")
    assert (s.status, s.retry_count, s.resolution_type) == ("resolved", 1, "replay")
    assert s.resolved_at and s.closed_at and s.next_auto_attempt_at is None
    assert s.attempts[0].outcome == "success" and s.attempts[0].at == T0


def test_failures_go_pending_then_requires_review_at_cap() -> None:
    s = make()
    attempt(s, "failure")
    assert (s.status, s.retry_count, s.last_error) == ("pending", 1, "boom")
    attempt(s, "failure")
    assert (s.status, s.retry_count) == ("requires_review", 2)
    assert [a.counted for a in s.attempts] == [True, True]


def test_no_handler_manual_consumes_no_budget() -> None:
    s = make()
    attempt(s, "no_handler", error="no replay handler registered")
    assert (s.status, s.retry_count) == ("pending", 0)
    assert s.last_error == "no replay handler registered"
    assert s.attempts[-1].counted is False


def test_no_handler_auto_parks_in_requires_review() -> None:
    s = make("replay")
    attempt(s, "no_handler", trigger="auto", error="no replay handler registered")
    assert (s.status, s.retry_count) == ("requires_review", 0)
    assert s.next_auto_attempt_at is None


def test_force_redrive_grants_fresh_budget_and_reconverges() -> None:
    s = make("replay")
    attempt(s, "failure", "auto")
    attempt(s, "failure", "auto")
    assert s.status == "requires_review"
    prev = attempt(s, "failure", force=True)
    assert prev == 2 and s.retry_count == 1 and s.status == "pending"
    assert s.next_auto_attempt_at is not None  # auto replay resumes under the new budget
    attempt(s, "failure", "auto")
    assert (s.status, s.retry_count) == ("requires_review", 2)
    forced = [e for e in s.audit if e.action == "force_redrive"]
    assert forced and forced[0].actor == "ops" and forced[0].reason == "r"


def test_resolve_and_discard_and_expire() -> None:
    s = make()
    previous = sm.resolve(s, T0, status="resolved", notes="fixed", resolution_type="manual")
    assert previous == "pending"
    assert (s.status, s.resolution_notes, s.resolution_type) == ("resolved", "fixed", "manual")
    d = make()
    sm.resolve(d, T0, status="discarded", notes="", resolution_type="manual")
    assert d.status == "discarded" and d.audit[-1].action == "discard"
    e = make("replay")
    sm.expire(e, T0 + timedelta(hours=72))
    assert (e.status, e.next_auto_attempt_at) == ("expired", None)
    assert e.closed_at == T0 + timedelta(hours=72)


def test_every_transition_bumps_version_and_audit_seq() -> None:
    s = make()
    versions = [s.version]
    attempt(s, "failure")
    versions.append(s.version)
    sm.resolve(s, T0, status="resolved", notes="", resolution_type="manual")
    versions.append(s.version)
    assert versions == [1, 3, 4]
    assert [e.seq for e in s.audit] == [1, 2, 3, 4]


def test_audit_kept_in_workflow_is_bounded() -> None:
    s = make()
    for _ in range(150):
        sm.begin_attempt(s, T0, trigger="manual")
    assert len(s.audit) == sm.AUDIT_KEPT_IN_WORKFLOW
    assert s.audit[-1].seq == 151


# --- timing -------------------------------------------------------------------------

def test_backoff_first_exact_then_doubling_with_bounded_jitter_and_cap() -> None:
    assert sm.backoff_delay(0, 60, 0.0) == 60
    assert sm.backoff_delay(0, 60, 1.0) == 60
    assert sm.backoff_delay(1, 60, 0.5) == pytest.approx(120)
    assert sm.backoff_delay(1, 60, 0.0) == pytest.approx(108)
    assert sm.backoff_delay(1, 60, 1.0) == pytest.approx(132)
    assert sm.backoff_delay(3, 60, 0.5) == pytest.approx(480)
    assert sm.backoff_delay(10, 60, 1.0) == sm.MAX_BACKOFF_SECONDS


def test_next_deadline_is_earliest_timer() -> None:
    s = make("replay")
    assert sm.next_deadline(s) == T0 + timedelta(seconds=60)
    s.next_auto_attempt_at = None
    assert sm.next_deadline(s) == s.expires_at
