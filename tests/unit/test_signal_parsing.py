"""Pure checks at the operator boundary: signal parsing, text limits, argument checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlq import DLQError, DLQInvalidInputError
from dlq._checks import (
    MAX_DAYS,
    OPERATOR_TEXT_LIMITS,
    check_days,
    check_entry_id,
    check_limit,
    check_operator_text,
    check_rate,
    check_resolve_status,
    operator_text_problem,
)
from dlq._messages import EntryInput, ForceRedriveInput, ResolveInput, RetryInput
from dlq._signals import REASON_CHARS, known_keys, parse_signal
from dlq._state import new_state, record_rejection


def test_a_valid_signal_becomes_its_command() -> None:
    parsed = parse_signal("force_redrive", ({"actor_id": "ann", "reason": "fixed"},))
    assert parsed.problem is None and parsed.actor == "ann"
    assert isinstance(parsed.command, ForceRedriveInput) and parsed.command.actor == "ann"
    assert parse_signal("retry", ()).command == RetryInput()
    assert parse_signal("retry", (None,)).command == RetryInput()
    resolved = parse_signal("resolve", ("by hand",)).command
    assert isinstance(resolved, ResolveInput) and resolved.notes == "by hand"
    # actor_id is the same key on every command.
    retried = parse_signal("retry", ({"actor_id": "bo"},)).command
    assert isinstance(retried, RetryInput) and retried.actor == "bo"


@pytest.mark.parametrize(("name", "args", "problem"), [
    ("retry", ({}, {}), "retry takes at most one input, got 2"),
    ("resolve", ([1],), "resolve input must be a JSON object, got list"),
    ("retry", (0,), "retry input must be a JSON object, got int"),
    ("retry", ({"actr": "x"},), "unknown key(s) actr; retry takes"),
    ("force_redrive", ({"actor": 5},), "invalid input: actor: Input should be a valid string"),
    ("resolve", ({"notes": "n" * 4001},), "notes is 4001 characters long; the limit is 4000"),
    ("retry", ({"reason": "\udfff"},), "reason contains a lone surrogate"),
    ("edit_data", ({"request_data": [1], "actor": "a"},), "invalid input: request_data"),
    ("edit_data", ({"request_data": {"a": 1}, "actor": "a", "max_bytes": 10**9},),
     "max_bytes must be within 1..1048576"),
])
def test_what_a_signal_cannot_be(name: str, args: tuple, problem: str) -> None:
    parsed = parse_signal(name, args)
    assert parsed.command is None and parsed.problem and problem in parsed.problem


def test_the_lenient_parse_of_old_histories_keeps_unknown_keys_and_long_text() -> None:
    lenient = parse_signal("retry", ({"actr": "x"},), strict=False).command
    # Kept aside (model_extra), as before without effect: the known fields are the defaults.
    assert isinstance(lenient, RetryInput)
    assert lenient.model_dump(exclude=set(lenient.model_extra or {})) == RetryInput().model_dump()
    long = parse_signal("resolve", ({"notes": "n" * 5000},), strict=False).command
    assert isinstance(long, ResolveInput) and len(long.notes) == 5000


def test_a_rejection_reason_never_quotes_the_payload() -> None:
    secret = "card-4111111111111111"
    parsed = parse_signal("force_redrive", ({"actor": "a", "reason": [secret] * 50},))
    assert parsed.problem and secret not in parsed.problem
    assert len(parsed.problem) <= REASON_CHARS


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20)
                    | st.floats(), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8) | st.sampled_from(
                        sorted(known_keys(ForceRedriveInput))), inner, max_size=3),
                    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["retry", "force_redrive", "resolve", "edit_data"]),
       args=st.lists(JSON, max_size=3), strict=st.booleans())
def test_parse_signal_never_raises(name: str, args: list, strict: bool) -> None:
    parsed = parse_signal(name, tuple(args), strict=strict)
    assert (parsed.command is None) != (parsed.problem is None)
    assert parsed.problem is None or len(parsed.problem) <= REASON_CHARS


def test_a_rejection_is_audited_without_moving_the_entry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    state = new_state(EntryInput(domain="d", failure_type="F", dlq_id="x"), workflow_id="dlq-x",
                      now=now, rand=0.5)
    before = state.model_copy(deep=True)
    record_rejection(state, datetime(2026, 1, 2, tzinfo=UTC), signal="retry", reason="why",
                     actor="ann")
    event = state.audit[-1]
    assert (event.action, event.actor, event.reason, event.details) == (
        "signal_rejected", "ann", "why", {"signal": "retry"})
    assert event.from_status == event.to_status == state.status == before.status
    assert state.version == before.version + 1 and state.updated_at == before.updated_at


def test_operator_text_limits() -> None:
    for name, limit in OPERATOR_TEXT_LIMITS.items():
        assert operator_text_problem(name, "x" * limit) is None
        assert operator_text_problem(name, "x" * (limit + 1)) == (
            f"{name} is {limit + 1} characters long; the limit is {limit}")
    assert operator_text_problem("actor", None) is None
    assert operator_text_problem("notes", 5) == "notes must be a string, got int"
    with pytest.raises(DLQInvalidInputError, match="^ticket_url contains a NUL"):
        check_operator_text(ticket_url="a\x00")


def test_a_bogus_resolve_status_is_a_dlq_error_and_a_value_error() -> None:
    with pytest.raises(DLQError, match="got 'bogus'") as err:
        check_resolve_status("bogus")
    assert isinstance(err.value, ValueError)
    check_resolve_status("discarded")


def test_argument_checks_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"limit must be within 1..1000000, got 1e\+30"):
        check_limit(10**30)
    with pytest.raises(ValueError, match=f"older_than_days must be within 0..{MAX_DAYS}"):
        check_days("older_than_days", 10**9)
    for bad in (float("nan"), float("inf"), -1.0, 0, True, "5"):
        with pytest.raises(ValueError, match="rate_per_second"):
            check_rate("rate_per_second", bad)
    assert check_rate("rate_per_second", 2) == 2.0
    for bad in (None, 5, "", "a\x00", "x" * 256):
        with pytest.raises(ValueError, match="^ids\\[0\\]"):
            check_entry_id(bad, "ids[0]")
