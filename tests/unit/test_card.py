"""The entry card, audit renderings and result summary the Web UI shows (dlq._card)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.workflow import _Definition

from dlq import _card
from dlq import _state as sm
from dlq._messages import EntryInput, ForceRedriveInput, ResolveInput, RetryInput
from dlq._models import DLQStatus, EntryState
from dlq.workflows.entry import COMMAND_INPUTS, DLQEntryWorkflow

T0 = datetime(2026, 11, 29, 4, 0, 8, 893658, tzinfo=UTC)
MICROSECONDS = re.compile(r"\d\d:\d\d:\d\d\.\d")
INPUTS = {"retry": RetryInput, "force_redrive": ForceRedriveInput, "resolve": ResolveInput}


def make(action: str = "replay", **kw: object) -> EntryState:
    entry = EntryInput(dlq_id="e1", domain="payment", failure_type="PG_TIMEOUT",
                       entity_type="order", entity_id="ord-1042", recommended_action=action,
                       created_at=T0, retry_delay=60, expiry_hours=72, max_retries=2, **kw)
    return sm.new_state(entry, workflow_id="dlq-e1", now=T0, rand=0.5)


def fail_once(state: EntryState, at: datetime, error: str = "gateway timed out") -> None:
    previous = sm.begin_attempt(state, at, trigger="auto")
    sm.finish_attempt(state, at + timedelta(seconds=1), trigger="auto", outcome="failure",
                      error=error, duration_ms=5, previous_status=DLQStatus.PENDING,
                      previous_retry_count=previous, rand=0.5)


def at_cap(**kw: object) -> EntryState:
    state = make(**kw)
    fail_once(state, T0 + timedelta(seconds=60))
    fail_once(state, T0 + timedelta(seconds=180),
              error="PaymentGatewayError: currency_not_supported")
    assert state.status == DLQStatus.REQUIRES_REVIEW
    return state


# --- times ----------------------------------------------------------------------------


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(0), "0 s"),
    (timedelta(seconds=45.9), "45 s"),
    (timedelta(minutes=3, seconds=20), "3 min 20 s"),
    (timedelta(minutes=12), "12 min"),
    (timedelta(hours=5, minutes=12, seconds=30), "5 h 12 min"),
    (timedelta(days=2, hours=23, minutes=59), "2 d 23 h"),
    (timedelta(days=3, seconds=5), "3 d"),
    (-timedelta(minutes=3), "3 min"),
])
def test_durations_read_in_the_two_largest_units(delta: timedelta, text: str) -> None:
    assert _card.human_delta(delta) == text


def test_relative_times_say_in_ago_or_now() -> None:
    assert _card.relative(T0 + timedelta(hours=2, minutes=5), T0) == "in 2 h 5 min"
    assert _card.relative(T0 - timedelta(minutes=3), T0) == "3 min ago"
    assert _card.relative(T0 + timedelta(milliseconds=400), T0) == "now"


def test_absolute_times_are_utc_to_the_second() -> None:
    assert _card.format_time(T0) == "2026-11-29 04:00:08 UTC"
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    assert _card.format_time(plus_two) == "2026-11-29 04:00:08 UTC"
    assert _card.format_time(T0.replace(tzinfo=None)) == "2026-11-29 04:00:08 UTC"
    assert _card.when(T0 + timedelta(days=3), T0) == "in 3 d (2026-12-02 04:00:08 UTC)"


def test_card_times_are_relative_and_absolute_without_microseconds() -> None:
    state = make()
    now = T0 + timedelta(seconds=20)
    card = _card.render_card(state, now)
    assert "**Next automatic replay:** in 40 s (2026-11-29 04:01:08 UTC)" in card
    assert "**Expires** in 2 d 23 h (2026-12-02 04:00:08 UTC)" in card
    assert "**As of** 2026-11-29 04:00:28 UTC" in card
    assert not MICROSECONDS.search(card)
    assert "+00:00" not in card


# --- what the card says -------------------------------------------------------------------


def test_status_and_budget_come_first() -> None:
    card = _card.render_card(at_cap(), T0 + timedelta(minutes=5))
    first, second = card.splitlines()[:2]
    assert first == "### requires_review · retries 2 of 2 used"
    assert "replay budget spent" in second and "PG\\_TIMEOUT" in second
    assert "occurrences 1" in second and "order:ord\\-1042" in second


def test_card_shows_the_last_error_with_its_attempt() -> None:
    card = _card.render_card(at_cap(), T0 + timedelta(minutes=5))
    assert ("**Last error** (attempt 2, auto, 1 min 59 s ago): PaymentGatewayError\\: "
            "currency\\_not\\_supported") in card


@pytest.mark.parametrize(("state_of", "text"), [
    (lambda: make("manual_check"), "off: recommended action is manual\\_check"),
    (lambda: make(auto_replay=False), "off for this entry"),
    (at_cap, "none: budget spent"),
])
def test_card_says_why_no_replay_is_scheduled(state_of, text: str) -> None:
    assert f"**Next automatic replay:** {text}" in _card.render_card(state_of(), T0)


def test_card_of_a_closed_entry_says_how_it_ended_and_offers_nothing() -> None:
    state = at_cap()
    sm.resolve(state, T0 + timedelta(minutes=10), status="discarded", notes="duplicate order",
               resolution_type="manual", actor="alice")
    card = _card.render_card(state, T0 + timedelta(minutes=13))
    assert card.startswith("### discarded · retries 2 of 2 used")
    assert "**Outcome:** discarded by alice \\(manual\\)\\: duplicate order" in card
    assert "**Closed** 3 min ago (2026-11-29 04:10:08 UTC)" in card
    assert "**Actions now:** none, the entry is closed." in card
    assert "Expires" not in card and "Send a Signal" not in card


def test_card_shows_the_newest_audit_events_first() -> None:
    state = at_cap()
    sm.begin_attempt(state, T0 + timedelta(minutes=9), trigger="force", force=True,
                     actor="alice", reason="PG fixed in INC-7",
                     ticket_url="https://tickets.example.com/INC-7")
    card = _card.render_card(state, T0 + timedelta(minutes=10))
    rows = [line for line in card.splitlines() if line.startswith("| ") and " ago)" in line]
    assert len(rows) == _card.AUDIT_ROWS
    assert rows[0] == ("| 11-29 04:09:08 (1 min ago) | force\\_redrive → replaying | alice "
                       "| PG fixed in INC\\-7 | [tickets\\.example\\.com/INC\\-7]"
                       "(<https://tickets.example.com/INC-7>) |")
    assert rows[1].startswith("| 11-29 04:03:09 (6 min 59 s ago) | replay\\_failed → "
                              "requires_review | – | PaymentGatewayError")
    assert "| when (UTC) | action | actor | reason | ticket |" in card
    assert "5 of 6" in card


def test_the_ticket_column_shows_only_when_an_event_has_a_ticket() -> None:
    card = _card.render_card(at_cap(), T0 + timedelta(minutes=10))
    assert "| when (UTC) | action | actor | reason |\n|---|---|---|---|" in card


# --- actions ------------------------------------------------------------------------------


def _replaying() -> EntryState:
    state = make()
    sm.begin_attempt(state, T0, trigger="manual")
    return state


def _resolved() -> EntryState:
    state = make()
    sm.resolve(state, T0, status="resolved", notes="", resolution_type="manual")
    return state


@pytest.mark.parametrize(("state_of", "offered"), [
    (make, ["retry", "resolve", "resolve"]),
    (at_cap, ["force_redrive", "resolve", "resolve"]),
    (_replaying, []),
    (_resolved, []),
])
def test_the_card_offers_exactly_the_commands_the_entry_accepts(state_of, offered) -> None:
    state = state_of()
    actions = _card.action_signals(state)
    assert [name for name, _, _ in actions] == offered
    for name, payload, _ in actions:
        cmd = INPUTS[name].model_validate(json.loads(payload))  # what the signal handler does
        assert COMMAND_INPUTS[name] is INPUTS[name]
        if name == "retry":
            sm.check_retry(state)
        elif name == "force_redrive":
            sm.check_force_redrive(state, actor_id=cmd.actor, reason=cmd.reason)
        else:
            sm.check_resolve(state, status=cmd.status)
    if "retry" not in offered:
        with pytest.raises(sm.TransitionRejected):
            sm.check_retry(state)


def test_the_pasteable_json_is_in_the_card_verbatim() -> None:
    card = _card.render_card(at_cap(), T0)
    for _, payload, _ in _card.action_signals(at_cap()):
        assert f"`{payload}`" in card
    assert "More Actions → Send a Signal" in card


def test_every_message_handler_describes_itself_for_the_ui() -> None:
    defn = _Definition.from_class(DLQEntryWorkflow)
    assert defn is not None
    handlers = {**defn.signals, **defn.updates, **defn.queries}
    assert set(handlers) == set(_card.COMMAND_HELP)
    for name, handler in handlers.items():
        assert handler.description == _card.COMMAND_HELP[name], name


# --- escaping and size ------------------------------------------------------------------------


def test_caller_text_cannot_inject_html_links_or_table_cells() -> None:
    state = at_cap()
    state.last_error = "<script>x</script> [click](https://evil.example) www.evil.example | *b*"
    state.domain = "pay|ment"
    card = _card.render_card(state, T0)
    assert "<script>" not in card and "](https://evil" not in card
    assert "\\<script\\>" in card and "https\\://evil\\.example" in card
    assert "www\\.evil" in card and "\\| \\*b\\*" in card and "pay\\|ment" in card


def test_a_ticket_that_is_not_a_url_is_text() -> None:
    assert _card._link("http://[") == _card.md_text("http://[") == "http\\://\\["


def test_only_http_ticket_urls_become_links() -> None:
    assert _card._link("https://t.example/INC-1") == \
        "[t\\.example/INC\\-1](<https://t.example/INC-1>)"
    assert _card._link("javascript:alert(1)") == "javascript\\:alert\\(1\\)"
    assert _card._link("https://t.example/a b>c") == \
        "[t\\.example/a b\\>c](<https://t.example/a%20b%3Ec>)"
    assert "](" not in _card._link("https://t.example/" + "x" * 500)  # too long to link whole


def test_a_long_error_is_cut_to_one_line() -> None:
    state = at_cap()
    state.last_error = "Traceback:\n" + "frame\n" * 5000
    card = _card.render_card(state, T0)
    line = next(x for x in card.splitlines() if x.startswith("**Last error**"))
    assert line.endswith("…") and "\n" not in line
    assert len(line) < 2 * _card.ERROR_CHARS


def test_a_typical_card_is_a_few_kb() -> None:
    card = _card.render_card(at_cap(), T0 + timedelta(minutes=5))
    assert len(card.encode()) < 3000


def test_the_largest_card_stays_well_under_the_ui_limits() -> None:
    # Every text at its worst: huge, all of it escapable, 100 audit events with
    # operator text and ticket URLs. The Web UI refused 3 MB and took 1 MB.
    huge = "<|*_[]()`>" * 10_000
    state = at_cap()
    state.domain = state.failure_type = state.entity_type = state.entity_id = huge
    state.last_error = huge
    for n in range(100):
        sm.begin_attempt(state, T0 + timedelta(hours=n), trigger="force", force=True,
                         actor=huge, reason=huge, ticket_url="https://t.example/" + "a" * 150)
        sm.finish_attempt(state, T0 + timedelta(hours=n, seconds=1), trigger="force",
                          outcome="failure", error=huge, duration_ms=1,
                          previous_status=DLQStatus.REQUIRES_REVIEW, previous_retry_count=2)
    card = _card.render_card(state, T0)
    assert len(card) <= _card.CARD_LIMIT
    assert len(card.encode()) < 20_000  # percent-encoded into the UI's URL: still far from 1 MB
    assert "force\\_redrive" in card  # the audit rows survived the cut


def test_the_card_is_a_function_of_state_and_now() -> None:
    state = at_cap()
    now = T0 + timedelta(hours=1)
    assert _card.render_card(state, now) == _card.render_card(state.model_copy(deep=True), now)
    assert _card.render_card(state, now) != _card.render_card(state, now + timedelta(hours=1))


# --- audit queries and the result -------------------------------------------------------------


def test_audit_records_are_small_and_carry_a_text_line() -> None:
    state = at_cap()
    records = _card.audit_records(state)
    assert [r.action for r in records] == ["created", "replay_started", "replay_failed",
                                           "replay_started", "replay_failed"]
    assert records[-1].text == (
        "2026-11-29 04:03:09 UTC · replay_failed · replaying → requires_review · "
        "trigger=auto outcome=failure attempt=2 · reason: PaymentGatewayError: "
        "currency_not_supported")
    assert set(records[0].model_dump()) == {"seq", "at", "action", "actor", "reason",
                                            "ticket_url", "from_status", "to_status", "text"}


def test_audit_text_is_one_line_per_event_and_says_what_sql_has() -> None:
    state = at_cap()
    assert _card.audit_text(state).splitlines() == [r.text for r in _card.audit_records(state)]
    state.audit = state.audit[-2:]  # the workflow keeps only the newest events
    assert _card.audit_text(state).splitlines()[0] == "(3 older events are in SQL: dlq show e1)"


def test_result_summary_tells_the_closed_statuses_apart() -> None:
    replayed = make()
    previous = sm.begin_attempt(replayed, T0, trigger="auto")
    sm.finish_attempt(replayed, T0, trigger="auto", outcome="success", error=None,
                      duration_ms=1, previous_status=DLQStatus.PENDING,
                      previous_retry_count=previous)
    assert _card.result_summary(replayed) == "resolved: replay succeeded after 1 replay attempt"

    by_hand = at_cap()
    sm.resolve(by_hand, T0, status="resolved", notes="refunded by hand",
               resolution_type="manual", actor="alice")
    assert _card.result_summary(by_hand) == "resolved by alice (manual): refunded by hand"

    discarded = make()
    sm.resolve(discarded, T0, status="discarded", notes="", resolution_type="manual")
    assert _card.result_summary(discarded) == "discarded (manual)"

    expired = at_cap()
    sm.expire(expired, T0 + timedelta(hours=72))
    assert _card.result_summary(expired) == (
        "expired unresolved after 2 replay attempts; last error: "
        "PaymentGatewayError: currency_not_supported")


def test_entry_result_is_readable_and_bounded() -> None:
    state = at_cap()
    sm.resolve(state, T0, status="resolved", notes="n" * 5000, resolution_type="manual",
               actor="bob")
    result = _card.entry_result(state)
    assert (result.status, result.retry_count, result.occurrences) == ("resolved", 2, 1)
    assert result.summary.startswith("resolved by bob (manual): nnn")
    assert result.closed_at == T0
    assert len(result.resolution_notes) == _card.RESULT_TEXT_CHARS
    assert result.last_error == "PaymentGatewayError: currency_not_supported"


def test_static_summary_and_details_are_short_and_inert() -> None:
    entry = EntryInput(dlq_id="e1", domain="payment", failure_type="PG_TIMEOUT",
                       entity_type="order", entity_id="ord-1042", error_code="504",
                       error_message='<a href="https://evil.example">fix it</a> ' + "x" * 5000,
                       recommended_action="replay")
    assert _card.static_summary(entry) == "payment/PG_TIMEOUT order:ord-1042"
    details = _card.static_details(entry)
    assert details.startswith('**504**: \\<a href="https://evil.example"\\>fix it\\</a\\> xxx')
    assert details.endswith("…\n\nrecommended action: replay")
    assert len(details) < 2 * _card.ERROR_CHARS


# Text rich in what Markdown and URLs treat specially, and any other character.
MARKUP = st.text(alphabet=st.one_of(st.sampled_from("[]()<>:/@?#%|*_`\\!.- "), st.characters()))
URLISH = st.one_of(MARKUP, st.builds(lambda a, b: f"{a}://{b}",
                                     st.sampled_from(["http", "https", "javascript", "ftp"]),
                                     MARKUP))


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(MARKUP, min_size=6, max_size=6), ticket=URLISH,
       notes=MARKUP, seconds=st.integers(-10**9, 10**9))
def test_any_text_renders_a_bounded_card(texts: list[str], ticket: str, notes: str,
                                          seconds: int) -> None:
    # The workflow renders in its workflow task: whatever callers and operators
    # sent, rendering must neither raise (the entry would stop) nor grow.
    state = at_cap()
    state.domain, state.failure_type, state.entity_type, state.entity_id = texts[:4]
    state.last_error = texts[4]
    sm.begin_attempt(state, T0, trigger="force", force=True, actor=texts[5], reason=notes,
                     ticket_url=ticket)
    now = T0 + timedelta(seconds=seconds)
    card = _card._render(state, now, _card.AUDIT_ROWS)  # not the fallback: a bug must show
    assert len(card) <= _card.CARD_LIMIT
    sm.resolve(state, now, status="discarded", notes=notes, resolution_type=texts[0],
               actor=texts[5])
    assert len(_card._render(state, now, _card.AUDIT_ROWS)) <= _card.CARD_LIMIT
    assert _card.entry_result(state).status == "discarded"
    assert _card.audit_text(state)


def test_a_card_that_cannot_render_falls_back_instead_of_raising() -> None:
    state = at_cap()
    state.audit[-1] = None  # type: ignore[call-overload] - a broken state on purpose
    card = _card.render_card(state, T0)
    assert card.startswith("### requires_review · retries 2 of 2 used")
    assert "could not be rendered (AttributeError)" in card
