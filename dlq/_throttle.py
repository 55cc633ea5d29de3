"""An adaptive throttle for bulk redrive: AIMD concurrency, health, a rate ceiling.

A bulk redrive sends many replays to a downstream that has just failed once;
flooding it would turn a recovering system back into a failing one. The
throttle finds out how much concurrency the downstream takes the way TCP finds
a path's capacity, and stops almost completely when the downstream is down.

- **AIMD.** A fast success (latency within ``target_latency``) adds
  ``increase / limit`` to the limit, so about ``increase`` per round of
  ``limit`` replays. A failure or a slow success multiplies the limit by
  ``decrease_factor``, at most once per round trip: outcomes of permits
  granted before the last decrease do not decrease it again, so one burst of
  failures halves the limit once instead of collapsing it.
- **Queueing.** A downstream that queues calls above its capacity instead of
  refusing them never fails, and may never get slower than
  ``target_latency``; it only gets slower than it was. So latency is also
  judged against the downstream's own baseline: every half round, the median
  of the last ``min_samples`` successes is divided by the baseline, the lowest
  median of ``window`` successes seen over ``baseline_seconds`` (the latency
  when concurrency was low, which every decrease brings back). A slowdown
  above ``latency_tolerance`` means calls wait in a queue: the limit is
  multiplied by ``decrease_factor / slowdown**2``, since it is past the
  capacity by about the slowdown and the queue must drain as well. Medians are
  compared with medians, so a downstream whose latency is high or spread out
  but does not grow with concurrency is not throttled.
- **Health.** ``healthy``, ``degraded`` or ``emergency``, derived from the
  recent outcomes (the last ``window`` of them, none older than
  ``window_seconds``): their error rate and median latency. Entering
  ``emergency`` drops the limit to ``min_limit``.
- **Emergency and recovery.** In emergency only probes are granted: one at a
  time, at most one per ``probe_interval``. A probe that succeeds without
  emergency-grade latency proves the downstream answers again: the window is
  forgotten and health starts over as ``healthy``, the limit growing from
  ``min_limit``. Without probes (nobody asks for permits), the window ages out
  after ``window_seconds`` with the same result.
- **Rate ceiling.** With ``max_rate_per_second``, grants are spaced at least
  ``1 / max_rate_per_second`` apart, whatever the concurrency limit allows.

The throttle never blocks in :meth:`AdaptiveThrottle.acquire`; the waiting
variants wake up as soon as a permit is released, from any thread or loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["AdaptiveThrottle", "Health", "Permit", "Refusal", "RefusalReason"]

Health = Literal["healthy", "degraded", "emergency"]
RefusalReason = Literal["concurrency", "rate", "emergency"]

# Floor of every retry_after, so a caller that follows it never spins.
_MIN_RETRY_AFTER = 0.01


@dataclass(frozen=True)
class Refusal:
    """No permit now.

    Attributes:
        retry_after: Seconds after which asking again may succeed: until the
            next rate token or probe, or an estimate of when a slot frees up.
        reason: ``concurrency`` (the limit is in use), ``rate`` (the ceiling
            in replays per second) or ``emergency`` (only probes are allowed
            and none is available now).
    """

    retry_after: float
    reason: RefusalReason


class Permit:
    """The right to run one replay; release it exactly once with the outcome.

    A permit that goes unused is abandoned instead, which records nothing.

    Attributes:
        acquired_at: When the permit was granted, on the throttle's clock.
        probe: True for a probe granted during an emergency; its success ends
            the emergency.
    """

    __slots__ = ("_released", "_seq", "_throttle", "acquired_at", "probe")

    def __init__(self, throttle: AdaptiveThrottle, seq: int, acquired_at: float, probe: bool):
        self._throttle = throttle
        self._seq = seq
        self._released = False
        self.acquired_at = acquired_at
        self.probe = probe

    @property
    def released(self) -> bool:
        """Whether the outcome has been recorded (or the permit abandoned)."""
        return self._released

    def release(
        self, success: bool, latency: float | None = None, error: str | None = None
    ) -> None:
        """Free the slot and record the outcome.

        ``success`` says whether the downstream handled the call, not whether
        the replay achieved its goal: report a business rejection that came
        back fast as a success, or the throttle will back off from a healthy
        downstream.

        Args:
            success: Whether the downstream handled the call.
            latency: Seconds the call took; measured from ``acquired_at`` on
                the throttle's clock when None.
            error: Why it failed; kept as ``last_error`` in ``stats()``.

        Raises:
            RuntimeError: The permit was already released.
            ValueError: ``latency`` is negative.
        """
        self._throttle._finish(self, success, latency, error, strict=True)

    def abandon(self) -> None:
        """Free the slot without recording an outcome, e.g. when the permit went unused.

        Releasing an unused permit as a success would grow the limit (and, for
        a probe, end an emergency) on no evidence.

        Raises:
            RuntimeError: The permit was already released.
        """
        self._throttle._finish(self, None, None, None, strict=True)

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        probe = " probe" if self.probe else ""
        return f"<Permit #{self._seq}{probe} {state}>"


class AdaptiveThrottle:
    """Concurrency limit for bulk redrive that adapts to the downstream (AIMD).

    Safe to share between threads and asyncio tasks: all state sits behind
    one lock that is never held while waiting. See the module docstring for
    the behaviour; every parameter is keyword-only and has a default.

    Example:
        >>> throttle = AdaptiveThrottle(max_rate_per_second=20)
        >>> async with throttle.slot() as permit:
        ...     await replay(entry)  # raising records a failure

    Args:
        initial_limit: Concurrency limit to start with.
        min_limit: The limit never shrinks below this (at least 1).
        max_limit: The limit never grows above this.
        increase: Additive step: each fast success adds ``increase / limit``,
            about ``increase`` per round of ``limit`` replays. A success only
            counts while at least half the limit is in use, so a redrive that
            does not use its limit does not inflate it.
        decrease_factor: The limit is multiplied by this (in (0, 1)) on a
            failure, a success slower than ``target_latency``, or queueing
            (see ``latency_tolerance``).
        target_latency: Seconds a healthy replay takes at most.
        latency_tolerance: How much slower than its baseline the downstream
            may get before the throttle backs off (at least 1; None turns the
            check off, leaving only ``target_latency``). The median of the
            last ``min_samples`` successes is divided by the baseline, the
            lowest median of ``window`` successes over ``baseline_seconds``.
            The default 1.5 tolerates ordinary jitter and keeps a downstream
            that queues above K calls at 0.7-1.0 K in flight on average. A
            downstream whose latencies spread widely (p90 over p10 above
            about 2.5) raises false alarms that keep the limit low: give it
            a larger tolerance or ``min_samples``.
        baseline_seconds: How long a baseline latency counts. A downstream
            that got slower for good (not from our load) is judged against its
            new latency after this long at most; until then the throttle errs
            on the side of backing off.
        window: How many recent outcomes health is derived from.
        window_seconds: Outcomes older than this no longer count.
        min_samples: Fewer outcomes in the window than this is no evidence:
            health is ``healthy``.
        degraded_error_rate: Error rate of the window from which health is
            ``degraded`` (also when the median latency exceeds
            ``target_latency``).
        emergency_error_rate: Error rate of the window from which health is
            ``emergency``.
        emergency_latency_factor: Health is also ``emergency`` when the
            window's median latency exceeds ``target_latency`` times this.
        probe_interval: Seconds between probes during an emergency.
        max_rate_per_second: Ceiling on grants per second; None for none.
        clock: Monotonic clock in seconds (tests inject a fake one). Timeouts
            of the waiting methods are measured in real time regardless.

    Raises:
        ValueError: A parameter is out of range; the message names it.
    """

    def __init__(
        self,
        *,
        initial_limit: float = 4,
        min_limit: float = 1,
        max_limit: float = 64,
        increase: float = 1.0,
        decrease_factor: float = 0.5,
        target_latency: float = 1.0,
        latency_tolerance: float | None = 1.5,
        baseline_seconds: float = 60.0,
        window: int = 50,
        window_seconds: float = 30.0,
        min_samples: int = 10,
        degraded_error_rate: float = 0.1,
        emergency_error_rate: float = 0.5,
        emergency_latency_factor: float = 4.0,
        probe_interval: float = 1.0,
        max_rate_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check(min_limit >= 1, "min_limit", "must be at least 1", min_limit)
        _check(max_limit >= 1, "max_limit", "must be at least 1", max_limit)
        _check(min_limit <= max_limit, "min_limit", f"must not exceed max_limit ({max_limit})",
               min_limit)
        _check(min_limit <= initial_limit <= max_limit, "initial_limit",
               f"must be between min_limit ({min_limit}) and max_limit ({max_limit})",
               initial_limit)
        _check(increase > 0, "increase", "must be positive", increase)
        _check(0 < decrease_factor < 1, "decrease_factor", "must be in (0, 1)", decrease_factor)
        _check(target_latency > 0, "target_latency", "must be positive", target_latency)
        _check(latency_tolerance is None or latency_tolerance >= 1, "latency_tolerance",
               "must be at least 1 or None", latency_tolerance)
        _check(baseline_seconds > 0, "baseline_seconds", "must be positive", baseline_seconds)
        _check(window >= 1, "window", "must be at least 1", window)
        _check(window_seconds > 0, "window_seconds", "must be positive", window_seconds)
        _check(1 <= min_samples <= window, "min_samples",
               f"must be between 1 and window ({window})", min_samples)
        _check(0 < emergency_error_rate <= 1, "emergency_error_rate", "must be in (0, 1]",
               emergency_error_rate)
        _check(0 < degraded_error_rate <= emergency_error_rate, "degraded_error_rate",
               f"must be in (0, emergency_error_rate ({emergency_error_rate})]",
               degraded_error_rate)
        _check(emergency_latency_factor >= 1, "emergency_latency_factor", "must be at least 1",
               emergency_latency_factor)
        _check(probe_interval > 0, "probe_interval", "must be positive", probe_interval)
        _check(max_rate_per_second is None or max_rate_per_second > 0, "max_rate_per_second",
               "must be positive or None", max_rate_per_second)
        _check(callable(clock), "clock", "must be callable", clock)

        self._min_limit = float(min_limit)
        self._max_limit = float(max_limit)
        self._increase = float(increase)
        self._decrease_factor = float(decrease_factor)
        self._target_latency = float(target_latency)
        self._latency_tolerance = (None if latency_tolerance is None
                                   else float(latency_tolerance))
        self._baseline_seconds = float(baseline_seconds)
        self._window_size = int(window)
        self._window_seconds = float(window_seconds)
        self._min_samples = int(min_samples)
        self._degraded_error_rate = float(degraded_error_rate)
        self._emergency_error_rate = float(emergency_error_rate)
        self._emergency_latency = self._target_latency * emergency_latency_factor
        self._probe_interval = float(probe_interval)
        self._token_interval = None if max_rate_per_second is None else 1.0 / max_rate_per_second
        self._clock = clock

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # wakes acquire_blocking on release
        self._async_waiters: dict[asyncio.Future[None], asyncio.AbstractEventLoop] = {}

        self._limit = float(initial_limit)
        self._in_flight = 0
        # Permits are numbered; a permit numbered at or below a watermark was
        # granted before the event the watermark marks.
        self._seq = 0
        self._last_decrease_seq = 0
        self._window_reset_seq = 0
        self._window: deque[tuple[float, bool, float]] = deque()  # (at, success, latency)
        self._window_failures = 0
        self._sorted_latencies: list[float] | None = None  # cache, None when stale
        # Latencies of the last successes granted since the last decrease, and a
        # sliding-window minimum of their medians: (at, median), increasing
        # left to right; the baseline is the leftmost.
        self._recent: deque[float] = deque(maxlen=self._window_size)
        self._baselines: deque[tuple[float, float]] = deque()
        self._since_judged = 0
        self._judge_every = max(1, self._min_samples // 2)
        self._queue_decrease = False  # whether the last decrease was for queueing
        self._health: Health = "healthy"
        self._next_probe_at = -math.inf
        self._probe_in_flight = False
        self._next_token_at = -math.inf
        self._succeeded = 0
        self._failed = 0
        self._refused = 0
        self._last_error: str | None = None

    # --- reading ---------------------------------------------------------------

    @property
    def limit(self) -> int:
        """Current concurrency limit (the float kept inside, rounded down)."""
        with self._lock:
            self._refresh(self._clock())
            return int(self._limit)

    @property
    def in_flight(self) -> int:
        """Permits granted and not yet released."""
        with self._lock:
            return self._in_flight

    @property
    def health(self) -> Health:
        """``healthy``, ``degraded`` or ``emergency``, from the recent outcomes."""
        with self._lock:
            self._refresh(self._clock())
            return self._health

    def stats(self) -> dict[str, Any]:
        """A snapshot for logs and progress reports.

        Returns:
            ``limit``, ``in_flight``, ``health``; of the window: ``samples``,
            ``error_rate``, ``p50_latency`` and ``p95_latency`` (None while
            empty); ``baseline_latency`` and ``recent_latency``, the medians
            the queueing check compares (None until known); totals
            ``succeeded``, ``failed``, ``refused`` (refusals returned plus
            waits that timed out); and ``last_error``.
        """
        with self._lock:
            self._refresh(self._clock())
            samples = len(self._window)
            return {
                "limit": int(self._limit),
                "in_flight": self._in_flight,
                "health": self._health,
                "samples": samples,
                "error_rate": self._window_failures / samples if samples else 0.0,
                "p50_latency": self._percentile(0.50),
                "p95_latency": self._percentile(0.95),
                "baseline_latency": self._baselines[0][1] if self._baselines else None,
                "recent_latency": self._recent_median(),
                "succeeded": self._succeeded,
                "failed": self._failed,
                "refused": self._refused,
                "last_error": self._last_error,
            }

    # --- acquiring -------------------------------------------------------------

    def acquire(self) -> Permit | Refusal:
        """A permit if one is available now, else a refusal; never blocks."""
        with self._lock:
            result = self._try_acquire(self._clock())
            if isinstance(result, Refusal):
                self._refused += 1
            return result

    def acquire_blocking(self, timeout: float | None = None) -> Permit:
        """Wait for a permit, blocking the calling thread.

        Wakes on every release and when the refusal's ``retry_after`` has
        passed. Do not call it from an event loop; use :meth:`acquire_async`.

        Args:
            timeout: Seconds to wait at most (real time); None waits forever.

        Raises:
            TimeoutError: No permit within ``timeout``; the message gives the
                last refusal's reason and ``retry_after``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                result = self._try_acquire(self._clock())
                if isinstance(result, Permit):
                    return result
                wait = self._wait_or_time_out(result, deadline, timeout)
                self._cond.wait(wait)

    async def acquire_async(self, timeout: float | None = None) -> Permit:
        """Wait for a permit without blocking the event loop.

        Wakes on every release (from any thread or loop) and when the
        refusal's ``retry_after`` has passed.

        Args:
            timeout: Seconds to wait at most (real time); None waits forever.

        Raises:
            TimeoutError: No permit within ``timeout``; the message gives the
                last refusal's reason and ``retry_after``.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            woken: asyncio.Future[None] = loop.create_future()
            with self._lock:
                result = self._try_acquire(self._clock())
                if isinstance(result, Permit):
                    return result
                wait = self._wait_or_time_out(result, deadline, timeout)
                # Registered under the same lock as the refusal, so a release
                # in between cannot be missed.
                self._async_waiters[woken] = loop
            try:
                await asyncio.wait((woken,), timeout=wait)
            finally:
                with self._lock:
                    self._async_waiters.pop(woken, None)

    @contextlib.asynccontextmanager
    async def slot(self, timeout: float | None = None) -> AsyncIterator[Permit]:
        """``async with throttle.slot() as permit:`` runs the body under a permit.

        The permit is released when the body ends, unless the body released
        it itself (to report an outcome of its own): as a success if the body
        returned, as a failure if it raised an exception. A cancellation or
        other ``BaseException`` abandons the permit (see :meth:`Permit.abandon`),
        as it says nothing about the downstream.

        Args:
            timeout: As for :meth:`acquire_async`.

        Raises:
            TimeoutError: No permit within ``timeout``.
        """
        permit = await self.acquire_async(timeout)
        with self._settle(permit):
            yield permit

    @contextlib.contextmanager
    def slot_blocking(self, timeout: float | None = None) -> Iterator[Permit]:
        """``with throttle.slot_blocking() as permit:``, the threaded twin of :meth:`slot`."""
        permit = self.acquire_blocking(timeout)
        with self._settle(permit):
            yield permit

    # --- internals (called with the lock held unless said otherwise) -------------

    def _try_acquire(self, now: float) -> Permit | Refusal:
        self._refresh(now)
        limit_full = self._in_flight >= int(self._limit)
        probe = self._health == "emergency"
        if probe:
            if self._probe_in_flight:
                return Refusal(max(self._probe_interval, _MIN_RETRY_AFTER), "emergency")
            if limit_full or now < self._next_probe_at:
                wait = max(self._next_probe_at - now, self._slot_wait() if limit_full else 0)
                return Refusal(max(wait, _MIN_RETRY_AFTER), "emergency")
        elif limit_full:
            return Refusal(self._slot_wait(), "concurrency")
        if self._token_interval is not None:
            if now < self._next_token_at:
                return Refusal(self._next_token_at - now, "rate")
            # One token at most: grants stay spaced even after an idle spell.
            self._next_token_at = max(self._next_token_at, now) + self._token_interval
        if probe:
            self._probe_in_flight = True
            self._next_probe_at = now + self._probe_interval
        self._seq += 1
        self._in_flight += 1
        return Permit(self, self._seq, now, probe)

    def _slot_wait(self) -> float:
        """Rough time until some permit is released (waiters also wake on release)."""
        typical = self._percentile(0.50)
        if typical is None:
            typical = self._target_latency
        return max(typical / max(self._in_flight, 1), _MIN_RETRY_AFTER)

    def _wait_or_time_out(
        self, refusal: Refusal, deadline: float | None, timeout: float | None
    ) -> float:
        if deadline is None:
            return refusal.retry_after
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            self._refused += 1
            raise TimeoutError(
                f"no throttle permit within {timeout} s (last refusal: {refusal.reason},"
                f" retry after {refusal.retry_after:.3f} s)"
            )
        return min(refusal.retry_after, remaining)

    @contextlib.contextmanager
    def _settle(self, permit: Permit) -> Iterator[Permit]:
        """Release ``permit`` by how the block ends (see :meth:`slot`); lock not held."""
        try:
            yield permit
        except Exception as err:
            self._finish(permit, False, None, f"{type(err).__name__}: {err}", strict=False)
            raise
        except BaseException:
            self._finish(permit, None, None, None, strict=False)
            raise
        else:
            self._finish(permit, True, None, None, strict=False)

    def _finish(
        self,
        permit: Permit,
        success: bool | None,
        latency: float | None,
        error: str | None,
        *,
        strict: bool,
    ) -> None:
        """Release ``permit``; ``success=None`` abandons it (no outcome). Lock not held."""
        if latency is not None and latency < 0:
            raise ValueError(f"latency must not be negative, got {latency!r}")
        with self._lock:
            if permit._released:
                if strict:
                    raise RuntimeError(f"{permit!r} was already released")
                return
            permit._released = True
            now = self._clock()
            in_flight = self._in_flight
            self._in_flight -= 1
            if permit.probe:
                self._probe_in_flight = False
            if success is not None:
                if latency is None:
                    latency = max(now - permit.acquired_at, 0.0)
                if success:
                    self._succeeded += 1
                else:
                    self._failed += 1
                    self._last_error = error
                self._adapt(permit, success, latency, in_flight, now)
                self._record(now, permit, success, latency)
                self._refresh(now)
            self._cond.notify_all()
            waiters, self._async_waiters = self._async_waiters, {}
        for future, loop in waiters.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_wake, future)

    def _adapt(self, permit: Permit, success: bool, latency: float, in_flight: int,
               now: float) -> None:
        """AIMD step for one outcome; ``in_flight`` counts the permit being released."""
        slowdown = self._slowdown(permit, latency, now) if success else None
        queueing = (slowdown is not None and self._latency_tolerance is not None
                    and slowdown > self._latency_tolerance)
        stale = permit._seq <= self._last_decrease_seq
        if success and latency <= self._target_latency and not queueing:
            # An unused limit says nothing about capacity: grow it only while at
            # least half of it is in use. After a decrease for queueing, the
            # permits of the round that caused it waited in that queue: they
            # prove nothing either.
            if in_flight * 2 >= self._limit and not (stale and self._queue_decrease):
                self._limit = min(self._max_limit, self._limit + self._increase / self._limit)
        elif not stale:
            # Permits granted before the last decrease belong to the round
            # that caused it; their failures must not shrink the limit again.
            factor = self._decrease_factor
            if queueing:
                assert slowdown is not None
                # A queue shows only once the limit is past the capacity by about
                # the slowdown (limit ~ capacity x slowdown), and what is queued
                # must drain too: divide by the slowdown once for each.
                factor /= slowdown * slowdown
            self._limit = max(self._min_limit, self._limit * factor)
            self._last_decrease_seq = self._seq
            self._queue_decrease = queueing
            # The latencies seen so far were caused by the larger limit.
            self._recent.clear()
            self._since_judged = 0

    def _slowdown(self, permit: Permit, latency: float, now: float) -> float | None:
        """Record a success's latency; the recent median over the baseline, when judged."""
        if self._latency_tolerance is None or permit._seq <= self._last_decrease_seq:
            # Granted before the last decrease: it waited behind the old, larger limit.
            return None
        recent = self._recent
        recent.append(latency)
        self._since_judged += 1
        if self._since_judged < self._judge_every or len(recent) < self._min_samples:
            # Judging on every success would mostly re-test the same samples
            # and multiply false alarms; half a round reacts fast enough.
            return None
        self._since_judged = 0
        baselines = self._baselines
        if len(recent) == recent.maxlen:
            # A baseline candidate: the median of the last ``window`` successes
            # since the last decrease. Far more samples than the recent median,
            # so the minimum of candidates does not chase noise; and none right
            # after a decrease, when the fastest calls of a round come back first.
            candidate = _median(recent)
            # Sliding-window minimum: a newer, lower value makes older, higher ones moot.
            while baselines and baselines[-1][1] >= candidate:
                baselines.pop()
            baselines.append((now, candidate))
        # An expired baseline is kept until a newer candidate replaces it.
        while len(baselines) > 1 and baselines[0][0] < now - self._baseline_seconds:
            baselines.popleft()
        recent_median = self._recent_median()
        if not baselines or baselines[0][1] <= 0 or recent_median is None:
            return None
        return recent_median / baselines[0][1]

    def _recent_median(self) -> float | None:
        """Median of the last ``min_samples`` successes since the last decrease, if as many."""
        if len(self._recent) < self._min_samples:
            return None
        return _median(itertools.islice(reversed(self._recent), self._min_samples))

    def _record(self, now: float, permit: Permit, success: bool, latency: float) -> None:
        if permit.probe and success and latency <= self._emergency_latency:
            # The downstream answers again: what happened before is history.
            self._window.clear()
            self._window_failures = 0
            self._window_reset_seq = self._seq
            # A recovered downstream may be slower or faster than before the emergency.
            self._recent.clear()
            self._baselines.clear()
            self._since_judged = 0
        elif permit._seq <= self._window_reset_seq:
            return  # granted before the reset: stale evidence
        if len(self._window) >= self._window_size:
            self._drop_oldest()
        self._window.append((now, success, latency))
        self._window_failures += not success
        self._sorted_latencies = None

    def _drop_oldest(self) -> None:
        _, success, _ = self._window.popleft()
        self._window_failures -= not success
        self._sorted_latencies = None

    def _refresh(self, now: float) -> None:
        """Age the window and derive health; entering emergency resets the limit."""
        horizon = now - self._window_seconds
        while self._window and self._window[0][0] < horizon:
            self._drop_oldest()
        health = self._derive_health()
        if health == "emergency" and self._health != "emergency":
            # Like TCP after a timeout: start over from the bottom, and give
            # the downstream a probe interval before the first probe.
            self._limit = self._min_limit
            self._last_decrease_seq = self._seq
            self._next_probe_at = now + self._probe_interval
        self._health = health

    def _derive_health(self) -> Health:
        samples = len(self._window)
        if samples < self._min_samples:
            return "healthy"
        error_rate = self._window_failures / samples
        p50 = self._percentile(0.50)
        assert p50 is not None
        if error_rate >= self._emergency_error_rate or p50 > self._emergency_latency:
            return "emergency"
        if error_rate >= self._degraded_error_rate or p50 > self._target_latency:
            return "degraded"
        return "healthy"

    def _percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the window's latencies; None if it is empty."""
        if not self._window:
            return None
        if self._sorted_latencies is None:
            self._sorted_latencies = sorted(latency for _, _, latency in self._window)
        ranked = self._sorted_latencies
        return ranked[max(math.ceil(q * len(ranked)) - 1, 0)]


def _median(latencies: Iterable[float]) -> float:
    """The (upper) median of a few latencies."""
    ranked = sorted(latencies)
    return ranked[len(ranked) // 2]


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _check(ok: bool, name: str, rule: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{name} {rule}, got {value!r}")
