"""The DLQ's Prometheus counters, and where they are counted.

Counters about entries are counted **on the worker side**, from the audit
events ``persist_entry`` writes: an event reaches SQL exactly once (the write
is gated by the entry's version), so the counts are exact whichever process
stored the entry and however many web or Celery processes a host runs. Only
what exists nowhere else is counted where it happens: a store that fell back
to the outbox (``dlq_store_failures_total``, in the producing process), relay
errors (in the process running the relay) and replay durations (in the worker
running the handler). With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus-client's
multiprocess mode adds those up across the processes of a host (see
``docs/observability.md``).

The gauges (open entries, ages, SLA breaches, the outbox, running redrives)
are read at scrape time by :mod:`dlq._exposition`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    from dlq._models import AuditEvent
    from dlq._throttle import AdaptiveThrottle

__all__ = ["ENTRIES_STORED", "FORCE_REDRIVES", "PERSIST_FALLBACKS", "RELAY_ERRORS",
           "REPLAYS", "REPLAY_DURATION", "STORE_FAILURES", "count_persist_fallback",
           "count_persisted_events", "count_relay_error", "count_store_failure", "is_enabled",
           "observe_replay", "running_redrives", "set_enabled", "track_redrive"]

ENTRIES_STORED = Counter(
    "dlq_entries_stored_total", "New DLQ entries, counted when their first row reaches SQL.",
    ["domain", "failure_type", "mode"])
STORE_FAILURES = Counter(
    "dlq_store_failures_total",
    "Sync stores that did not complete and went to the outbox (or were lost: "
    "reason outbox_append_failed).", ["reason"])
REPLAYS = Counter(
    "dlq_replays_total", "Finished replay attempts, by trigger (auto, manual, bulk, force) "
    "and outcome (success, failure, timeout, no_handler, error).",
    ["domain", "trigger", "outcome"])
REPLAY_DURATION = Histogram(
    "dlq_replay_duration_seconds", "How long replay handlers ran.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
FORCE_REDRIVES = Counter(
    "dlq_force_redrives_total", "Force-redrives past the retry cap (audited).", ["domain"])
RELAY_ERRORS = Counter(
    "dlq_relay_errors_total", "Outbox deliveries (or connection checks) the relay saw fail.")
PERSIST_FALLBACKS = Counter(
    "dlq_persist_fallbacks_total",
    "Entry writes that ran as a regular activity because the local persist failed "
    "(SQL slow or down).")

_enabled = True
# What a replay's finishing audit event looks like: the action ends an attempt.
_ATTEMPT_DONE = frozenset({"replay_succeeded", "replay_failed", "replay_skipped"})


def set_enabled(enabled: bool) -> None:
    """Turn counting on or off for this process (``DLQ_METRICS_ENABLED``; on by default)."""
    global _enabled
    _enabled = enabled


def is_enabled() -> bool:
    """Whether this process counts."""
    return _enabled


def count_persisted_events(domain: str, failure_type: str, events: Iterable[AuditEvent]) -> None:
    """Count what the audit events of one applied write say happened.

    Called by ``persist_entry`` only when the write applied (a newer
    version), so each event is counted once even when the activity runs again.
    """
    if not _enabled:
        return
    for event in events:
        action = event.action
        details: dict[str, Any] = event.details
        if action in _ATTEMPT_DONE:
            REPLAYS.labels(domain, str(details.get("trigger", "")),
                           str(details.get("outcome", ""))).inc()
        elif action == "created":
            ENTRIES_STORED.labels(domain, failure_type, str(details.get("mode") or "direct")).inc()
        elif action == "force_redrive":
            FORCE_REDRIVES.labels(domain).inc()


def count_store_failure(reason: str) -> None:
    """One sync store that did not complete (``reason``: timeout, unconfirmed, unavailable...)."""
    if _enabled:
        STORE_FAILURES.labels(reason).inc()


def count_relay_error() -> None:
    """One failed delivery or connection check of the outbox relay."""
    if _enabled:
        RELAY_ERRORS.inc()


def observe_replay(seconds: float) -> None:
    """One replay handler's run time."""
    if _enabled:
        REPLAY_DURATION.observe(seconds)


def count_persist_fallback() -> None:
    """One entry write done by the regular (fallback) persist activity."""
    if _enabled:
        PERSIST_FALLBACKS.inc()


# --- running redrives ------------------------------------------------------------

# A redrive shows while one of its pages runs and for a while after (the next
# page starts within seconds; a paused or finished redrive drops out).
REDRIVE_VISIBLE_AFTER = 60.0
_redrives: dict[str, tuple[AdaptiveThrottle, float]] = {}
_redrives_lock = threading.Lock()


def track_redrive(bulk_id: str, throttle: AdaptiveThrottle) -> None:
    """Mark the throttle of bulk redrive ``bulk_id`` as running now."""
    with _redrives_lock:
        _redrives[bulk_id] = (throttle, time.monotonic())


def running_redrives() -> dict[str, AdaptiveThrottle]:
    """Throttles of redrives with a page running or finished within REDRIVE_VISIBLE_AFTER."""
    cutoff = time.monotonic() - REDRIVE_VISIBLE_AFTER
    with _redrives_lock:
        for bulk_id in [b for b, (_, seen) in _redrives.items() if seen < cutoff]:
            del _redrives[bulk_id]
        return {b: throttle for b, (throttle, _) in _redrives.items()}
