"""Benchmark: what the Web UI card costs the worker on every transition.

``DLQEntryWorkflow`` re-renders its card (``dlq._card.render_card``) at each
transition. This measures, in one process and interleaved:

1. baseline: the one-line current details the workflow set before the card
   (three f-string fields, ISO times);
2. the card of a typical entry (at the cap after two failed replays);
3. the card of the largest entry the unit tests build (every text huge and
   escapable, 100 audit events with tickets).

It prints the median time per render of each, their ratio to the baseline
and the card sizes. For scale: one replay through ``bulk_replay`` costs
about 29 ms of CPU across the server and the worker, and makes two or three
transitions (docs/benchmarks.md).

Usage::

    python bench/card.py [--runs 7] [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dlq import _card
from dlq import _state as sm
from dlq._messages import EntryInput
from dlq._models import DLQStatus, EntryState

T0 = datetime(2026, 11, 29, 4, 0, 8, tzinfo=UTC)


def typical() -> EntryState:
    entry = EntryInput(dlq_id="b0a17169-35cd-4b92-a865-2c9103ca5aa0", domain="payment",
                       failure_type="GATEWAY_REJECTED", entity_type="order",
                       entity_id="ord_7HcQ2m", recommended_action="replay", created_at=T0)
    state = sm.new_state(entry, workflow_id="dlq-x", now=T0, rand=0.5)
    for n in range(2):
        at = T0 + timedelta(seconds=60 * (n + 1))
        previous = sm.begin_attempt(state, at, trigger="auto")
        sm.finish_attempt(state, at, trigger="auto", outcome="failure",
                          error="PaymentGatewayError: currency_not_supported: merchant "
                                "account acct_9Xk2 cannot settle EUR (settles in CAD, USD)",
                          duration_ms=12, previous_status=DLQStatus.PENDING,
                          previous_retry_count=previous, rand=0.5)
    return state


def largest() -> EntryState:
    huge = "<|*_[]()`>" * 10_000
    state = typical()
    state.domain = state.failure_type = state.entity_type = state.entity_id = huge
    state.last_error = huge
    for n in range(100):
        sm.begin_attempt(state, T0 + timedelta(hours=n), trigger="force", force=True,
                         actor=huge, reason=huge, ticket_url="https://t.example/" + "a" * 150)
        sm.finish_attempt(state, T0 + timedelta(hours=n, seconds=1), trigger="force",
                          outcome="failure", error=huge, duration_ms=1,
                          previous_status=DLQStatus.REQUIRES_REVIEW, previous_retry_count=2)
    return state


def old_details(s: EntryState) -> str:
    """The current details as the workflow wrote them before the card (the baseline)."""
    nxt = s.next_auto_attempt_at.isoformat() if s.next_auto_attempt_at else "-"
    expires = s.expires_at.isoformat() if s.expires_at else "-"
    return (f"**{s.status}** · retries {s.retry_count}/{s.max_retries} · "
            f"occurrences {s.occurrences}\n\nlast error: {s.last_error or '-'}\n\n"
            f"next auto-replay: {nxt} · expires: {expires}")


def per_call(fn: Callable[[], str], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    now = T0 + timedelta(minutes=5)
    small, big = typical(), largest()
    variants = {
        "one-line details (baseline)": lambda: old_details(small),
        "card, typical entry": lambda: _card.render_card(small, now),
        "card, largest entry": lambda: _card.render_card(big, now),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):  # interleaved, so noise hits every variant alike
        for name, fn in variants.items():
            times[name].append(per_call(fn, args.calls))
    base = statistics.median(times["one-line details (baseline)"])
    sizes = {"one-line details (baseline)": len(old_details(small)),
             "card, typical entry": len(_card.render_card(small, now)),
             "card, largest entry": len(_card.render_card(big, now))}
    print(f"{'variant':<30} {'median µs':>10} {'ratio':>7} {'chars':>7}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<30} {median * 1e6:>10.1f} {median / base:>6.1f}x {sizes[name]:>7}")


if __name__ == "__main__":
    main()
