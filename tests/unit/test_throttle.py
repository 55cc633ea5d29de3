"""Unit tests of AdaptiveThrottle: AIMD, health and recovery, the rate ceiling, concurrency.

Most tests drive the throttle on a fake clock, so simulated minutes take
milliseconds; the thread and asyncio tests use real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import threading
import time

import pytest

from dlq._throttle import AdaptiveThrottle, Permit, Refusal


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def grab(throttle: AdaptiveThrottle) -> Permit:
    result = throttle.acquire()
    assert isinstance(result, Permit), result
    return result


def fill(throttle: AdaptiveThrottle) -> list[Permit]:
    """Acquire until refused."""
    permits = []
    while isinstance(result := throttle.acquire(), Permit):
        permits.append(result)
    return permits


def run_round(throttle: AdaptiveThrottle, clock: FakeClock, *, ok: bool) -> None:
    """One round trip: fill the limit, wait 0.1 s, release everything."""
    permits = fill(throttle)
    clock.advance(0.1)
    for permit in permits:
        permit.release(ok, error=None if ok else "downstream down")


# --- AIMD --------------------------------------------------------------------


def test_fast_successes_grow_the_limit_additively() -> None:
    clock = FakeClock()
    throttle = AdaptiveThrottle(initial_limit=4, increase=1.0, clock=clock)
    held = fill(throttle)
    expected, reached = 4.0, {}
    for success in range(1, 21):
        held.pop(0).release(True, latency=0.1)  # the throttle is full: the success counts
        expected += 1.0 / expected
        assert throttle.limit == int(expected)
        reached.setdefault(throttle.limit, success)
        held += fill(throttle)
        assert len(held) == int(expected)
    # +increase/limit per success, so about +1 per round of `limit` successes.
    assert reached == {4: 1, 5: 5, 6: 10, 7: 17}  # 4, 5, 6 successes per step


def test_successes_do_not_grow_an_unused_limit() -> None:
    throttle = AdaptiveThrottle(initial_limit=8, clock=FakeClock())
    for _ in range(100):
        grab(throttle).release(True, latency=0.1)  # one in flight out of eight
    assert throttle.limit == 8


def test_latency_above_target_shrinks_the_limit_once_per_round_trip() -> None:
    clock = FakeClock()
    throttle = AdaptiveThrottle(initial_limit=8, target_latency=1.0, clock=clock)
    first, second = grab(throttle), grab(throttle)
    first.release(True, latency=2.0)  # a slow success
    assert throttle.limit == 4
    second.release(True, latency=2.0)  # same round: granted before the decrease
    assert throttle.limit == 4
    grab(throttle).release(True, latency=1.5)  # a new round
    assert throttle.limit == 2
    grab(throttle).release(False)  # failures shrink it too
    assert throttle.limit == 1
    grab(throttle).release(False)
    assert throttle.limit == 1  # min_limit


def test_latency_is_measured_from_acquire_when_not_given() -> None:
    clock = FakeClock()
    throttle = AdaptiveThrottle(initial_limit=8, target_latency=1.0, clock=clock)
    permit = grab(throttle)
    clock.advance(3.0)
    permit.release(True)
    assert throttle.limit == 4
    assert throttle.stats()["p50_latency"] == 3.0


# --- convergence on a downstream with a capacity -----------------------------


def simulate(throttle: AdaptiveThrottle, clock: FakeClock, call, *, workers: int,
             end: float, settled: float, backoff: bool = False, watch=None) -> float:
    """``workers`` loop acquire -> ``call(now)`` -> release on the fake clock.

    ``call(now)`` returns the call's end time and whether it succeeded. A
    worker refused for concurrency waits for the next release. Other refusals
    (error rate, emergency) are a test failure unless ``backoff``; then the
    waiting workers try again after the refusal's ``retry_after``.
    ``watch(at, ok)`` is called after each event: a release (``ok`` is its
    outcome) or a retry wake-up (``ok`` is None). Returns the time-weighted
    average of permits in flight from ``settled`` to ``end``.
    """
    events: list[tuple[float, int, Permit | None, bool]] = []  # (at, n, permit, ok)
    order = itertools.count()
    idle, area, last = workers, 0.0, 0.0
    retry_pending = False

    def start_idle() -> None:
        nonlocal idle, retry_pending
        while idle:
            result = throttle.acquire()
            if isinstance(result, Refusal):
                assert backoff or result.reason == "concurrency", result
                if result.reason != "concurrency" and not retry_pending:
                    retry_pending = True
                    heapq.heappush(events, (clock.now + result.retry_after, next(order),
                                            None, False))
                return
            idle -= 1
            done_at, ok = call(clock.now)
            heapq.heappush(events, (done_at, next(order), result, ok))

    start_idle()
    while events and events[0][0] < end:
        at, _, permit, ok = heapq.heappop(events)
        if at > settled:
            area += throttle.in_flight * (at - max(last, settled))
        last = at
        clock.now = at
        if permit is None:
            retry_pending = False
        else:
            permit.release(ok)  # latency measured on the fake clock
            idle += 1
        if watch is not None:
            watch(at, None if permit is None else ok)
        start_idle()
    return area / (end - settled)


def test_throttle_keeps_in_flight_near_downstream_capacity() -> None:
    """Forty workers on a downstream that fails above K=10 concurrent calls."""
    capacity, workers, converged, end = 10, 40, 5.0, 60.0
    clock = FakeClock()
    throttle = AdaptiveThrottle(clock=clock)
    rng = random.Random(7)
    peak_limit = 0
    after = {"ok": 0, "failed": 0}

    def call(now: float) -> tuple[float, bool]:
        ok = throttle.in_flight <= capacity
        return now + (rng.uniform(0.05, 0.15) if ok else 0.01), ok

    def watch(at: float, ok: bool | None) -> None:
        nonlocal peak_limit
        if ok is not None and at > converged:
            after["ok" if ok else "failed"] += 1
        peak_limit = max(peak_limit, throttle.limit)

    mean_in_flight = simulate(throttle, clock, call, workers=workers, end=end,
                              settled=converged, backoff=True, watch=watch)
    error_rate = after["failed"] / (after["ok"] + after["failed"])
    assert 0.5 * capacity <= mean_in_flight <= 1.2 * capacity, mean_in_flight
    assert peak_limit <= capacity + 3  # probing past K is brief, never a runaway
    assert error_rate < 0.08, error_rate  # about one failed probe per sawtooth
    assert after["ok"] > 2000  # it did keep the downstream busy
    assert throttle.health == "healthy"


# --- latency against the downstream's own baseline ----------------------------


class QueueingDownstream:
    """K workers and a FIFO queue: calls over K wait, they are never refused."""

    def __init__(self, k: int, service: float = 0.05, jitter: float = 0.2) -> None:
        self.free_at = [0.0] * k  # when each worker is free next (a heap)
        self.service, self.jitter = service, jitter
        self.rng = random.Random(3)

    def __call__(self, now: float) -> tuple[float, bool]:
        # Calls arrive in time order, so the earliest free worker serves FIFO.
        start = max(now, heapq.heappop(self.free_at))
        done = start + self.service * (1 + self.jitter * self.rng.uniform(-1, 1))
        heapq.heappush(self.free_at, done)
        return done, True


def test_queueing_downstream_converges_below_its_capacity() -> None:
    """A downstream that queues above K never fails and stays under target_latency."""
    k, clock = 8, FakeClock()
    throttle = AdaptiveThrottle(clock=clock)  # default target_latency: 1 s, never reached
    mean_in_flight = simulate(throttle, clock, QueueingDownstream(k), workers=32,
                              end=40.0, settled=30.0)
    assert 0.7 * k <= mean_in_flight <= 1.0 * k, mean_in_flight
    stats = throttle.stats()
    assert stats["failed"] == 0 and stats["health"] == "healthy"
    assert 0.04 <= stats["baseline_latency"] <= 0.06  # the unqueued service time


def test_queueing_goes_unnoticed_without_the_baseline_check() -> None:
    k, clock = 8, FakeClock()
    throttle = AdaptiveThrottle(latency_tolerance=None, clock=clock)
    mean_in_flight = simulate(throttle, clock, QueueingDownstream(k), workers=32,
                              end=20.0, settled=10.0)
    assert mean_in_flight > 3 * k  # every worker in flight: a queue of 24 calls
    assert throttle.stats()["baseline_latency"] is None


@pytest.mark.parametrize("latency", [
    lambda rng: rng.uniform(0.6, 0.9),                      # high, below target_latency
    lambda rng: min(0.95, rng.lognormvariate(-1.6, 0.25)),  # median 0.2 s, a tail
])
def test_high_latency_that_does_not_grow_with_load_is_not_throttled(latency) -> None:
    clock, rng = FakeClock(), random.Random(11)
    throttle = AdaptiveThrottle(max_limit=32, clock=clock)
    mean_in_flight = simulate(throttle, clock, lambda now: (now + latency(rng), True),
                              workers=32, end=300.0, settled=200.0)
    assert mean_in_flight >= 16, mean_in_flight  # far from 1: most of the 32 workers busy


def test_a_slowdown_over_the_tolerance_shrinks_the_limit_by_it() -> None:
    clock = FakeClock()
    throttle = AdaptiveThrottle(initial_limit=64, max_limit=64, min_samples=10, window=20,
                                latency_tolerance=1.5, clock=clock)
    for _ in range(20):  # a baseline: the median of 20 successes at 0.1 s
        grab(throttle).release(True, latency=0.1)
    assert throttle.limit == 64 and throttle.stats()["baseline_latency"] == 0.1
    for _ in range(10):  # the last ten take 0.2 s: a slowdown of 2
        grab(throttle).release(True, latency=0.2)
    assert throttle.limit == int(64 * 0.5 / 2 ** 2)
    assert throttle.stats()["recent_latency"] is None  # judged again on fresh samples


# --- health, emergency, recovery ---------------------------------------------


def test_error_burst_drives_emergency_then_recovers() -> None:
    clock = FakeClock()
    throttle = AdaptiveThrottle(initial_limit=8, probe_interval=1.0, clock=clock)
    for _ in range(20):
        run_round(throttle, clock, ok=True)
    assert throttle.health == "healthy"
    assert throttle.limit >= 10

    rounds = 0
    while throttle.health != "emergency":
        run_round(throttle, clock, ok=False)
        rounds += 1
        assert rounds < 10
    assert throttle.limit == 1  # entering emergency starts over from min_limit
    refusal = throttle.acquire()
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "emergency" and 0 < refusal.retry_after <= 1.0

    # The downstream is back. Only probes get through, one per probe_interval.
    entered = clock.now
    while not isinstance(probe := throttle.acquire(), Permit):
        assert probe.reason == "emergency" and probe.retry_after > 0
        clock.advance(0.1)
    assert probe.probe and clock.now - entered >= 1.0 - 1e-9
    clock.advance(0.1)
    probe.release(True)
    assert throttle.health == "healthy"
    assert throttle.limit == 2  # the probe was a fast success at full use: 1 + 1/1
    for _ in range(15):
        run_round(throttle, clock, ok=True)
    assert throttle.health == "healthy"
    assert throttle.limit >= 5  # grows again from the bottom
    assert throttle.stats()["refused"] > 0


def test_failed_probe_keeps_emergency_and_the_next_probe_waits() -> None:
    clock = FakeClock()
    throttle = AdaptiveThrottle(probe_interval=2.0, clock=clock)
    while throttle.health != "emergency":
        run_round(throttle, clock, ok=False)
    clock.advance(2.0)
    probe = grab(throttle)
    assert probe.probe
    refusal = throttle.acquire()  # one probe at a time
    assert isinstance(refusal, Refusal) and refusal.reason == "emergency"
    probe.release(False, latency=0.1)
    assert throttle.health == "emergency"
    clock.advance(1.0)
    assert isinstance(throttle.acquire(), Refusal)
    clock.advance(1.0)
    assert grab(throttle).probe


def test_emergency_ages_out_with_the_window() -> None:
    clock = FakeClock()
    throttle = AdaptiveThrottle(window_seconds=30.0, clock=clock)
    while throttle.health != "emergency":
        run_round(throttle, clock, ok=False)
    clock.advance(31.0)
    assert throttle.health == "healthy"
    permit = grab(throttle)
    assert not permit.probe


def test_slow_window_is_degraded_then_emergency() -> None:
    clock = FakeClock()
    throttle = AdaptiveThrottle(target_latency=1.0, emergency_latency_factor=4.0, clock=clock)
    for _ in range(10):
        grab(throttle).release(True, latency=2.0)
    stats = throttle.stats()
    assert stats["health"] == "degraded" and stats["error_rate"] == 0.0
    for _ in range(20):
        result = throttle.acquire()
        if isinstance(result, Refusal):
            break
        result.release(True, latency=5.0)
    assert throttle.health == "emergency"
    assert isinstance(result, Refusal) and result.reason == "emergency"
    assert throttle.stats()["p50_latency"] == 5.0  # above 4 x target_latency


# --- rate ceiling --------------------------------------------------------------


def test_rate_ceiling_spaces_grants() -> None:
    clock = FakeClock()
    throttle = AdaptiveThrottle(initial_limit=64, max_rate_per_second=20, clock=clock)
    granted, refusals = 0, []
    while clock.now < 1.0:
        result = throttle.acquire()
        if isinstance(result, Permit):
            granted += 1
            result.release(True, latency=0.001)
        else:
            refusals.append(result)
        clock.advance(0.001)
    assert 19 <= granted <= 21
    assert refusals and all(r.reason == "rate" and r.retry_after > 0 for r in refusals)
    assert max(r.retry_after for r in refusals) <= 0.05 + 1e-9


# --- parameters and misuse -----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"initial_limit": 0}, "initial_limit"),
        ({"min_limit": 0}, "min_limit"),
        ({"min_limit": -1}, "min_limit"),
        ({"max_limit": 0}, "max_limit"),
        ({"min_limit": 10, "max_limit": 5}, "min_limit"),
        ({"initial_limit": 100}, "initial_limit"),
        ({"increase": 0}, "increase"),
        ({"decrease_factor": 0}, "decrease_factor"),
        ({"decrease_factor": 1}, "decrease_factor"),
        ({"decrease_factor": 1.5}, "decrease_factor"),
        ({"target_latency": 0}, "target_latency"),
        ({"latency_tolerance": 0.9}, "latency_tolerance"),
        ({"baseline_seconds": 0}, "baseline_seconds"),
        ({"window": 0}, "window"),
        ({"window_seconds": -1}, "window_seconds"),
        ({"min_samples": 0}, "min_samples"),
        ({"min_samples": 60}, "min_samples"),
        ({"emergency_error_rate": 1.5}, "emergency_error_rate"),
        ({"degraded_error_rate": 0.6}, "degraded_error_rate"),
        ({"emergency_latency_factor": 0.5}, "emergency_latency_factor"),
        ({"probe_interval": 0}, "probe_interval"),
        ({"max_rate_per_second": -1}, "max_rate_per_second"),
        ({"max_rate_per_second": 0}, "max_rate_per_second"),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} "):
        AdaptiveThrottle(**kwargs)


def test_double_release_raises() -> None:
    throttle = AdaptiveThrottle(clock=FakeClock())
    permit = grab(throttle)
    permit.release(True)
    with pytest.raises(RuntimeError, match="already released"):
        permit.release(True)
    assert throttle.in_flight == 0
    assert throttle.stats()["succeeded"] == 1


def test_abandoned_permit_frees_the_slot_without_an_outcome() -> None:
    clock = FakeClock()
    throttle = AdaptiveThrottle(probe_interval=1.0, clock=clock)
    while throttle.health != "emergency":
        run_round(throttle, clock, ok=False)
    clock.advance(1.0)
    probe = grab(throttle)
    probe.abandon()  # an unused probe proves nothing: still emergency, still one probe per second
    with pytest.raises(RuntimeError, match="already released"):
        probe.abandon()
    stats = throttle.stats()
    assert stats["health"] == "emergency" and stats["in_flight"] == 0
    assert isinstance(throttle.acquire(), Refusal)
    clock.advance(1.0)
    assert grab(throttle).probe


def test_negative_latency_raises() -> None:
    permit = grab(AdaptiveThrottle(clock=FakeClock()))
    with pytest.raises(ValueError, match="latency"):
        permit.release(True, latency=-1.0)
    assert not permit.released


def test_stats_report_the_window() -> None:
    throttle = AdaptiveThrottle(initial_limit=64, clock=FakeClock())
    for i in range(1, 21):
        grab(throttle).release(i % 10 != 0, latency=i / 100, error="boom")
    stats = throttle.stats()
    assert stats["samples"] == 20 and stats["error_rate"] == 0.1
    assert stats["p50_latency"] == 0.10 and stats["p95_latency"] == 0.19
    assert (stats["succeeded"], stats["failed"], stats["refused"]) == (18, 2, 0)
    assert stats["health"] == "degraded" and stats["last_error"] == "boom"


# --- waiting, context managers -----------------------------------------------


def test_slot_blocking_releases_by_outcome() -> None:
    throttle = AdaptiveThrottle(initial_limit=8, clock=FakeClock())
    with throttle.slot_blocking() as permit:
        assert throttle.in_flight == 1
    assert permit.released
    with pytest.raises(KeyError), throttle.slot_blocking():
        raise KeyError("gone")
    with throttle.slot_blocking() as permit:
        permit.release(False, error="reported by the body")  # not released twice
    stats = throttle.stats()
    assert (stats["succeeded"], stats["failed"], stats["in_flight"]) == (1, 2, 0)
    assert stats["last_error"] == "reported by the body"


def test_acquire_blocking_times_out_and_wakes_on_release() -> None:
    throttle = AdaptiveThrottle(initial_limit=1, max_limit=1)
    held = grab(throttle)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="concurrency"):
        throttle.acquire_blocking(timeout=0.05)
    assert time.monotonic() - started < 0.5
    # With an empty window retry_after is target_latency (1 s): the release must wake it.
    threading.Timer(0.05, held.release, args=(True,)).start()
    started = time.monotonic()
    permit = throttle.acquire_blocking(timeout=2.0)
    assert time.monotonic() - started < 0.5
    permit.release(True)


def test_threads_keep_in_flight_consistent() -> None:
    throttle = AdaptiveThrottle(initial_limit=4, max_limit=6)
    gate = threading.Barrier(8)
    counter = threading.Lock()
    holding, peak, errors = 0, 0, []

    def work() -> None:
        nonlocal holding, peak
        try:
            gate.wait()
            for i in range(500):
                permit = throttle.acquire_blocking(timeout=5.0)
                with counter:
                    holding += 1
                    peak = max(peak, holding)
                with counter:
                    holding -= 1
                permit.release(True, latency=0.001 if i % 50 else 2.0)
        except BaseException as err:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    stats = throttle.stats()
    assert stats["in_flight"] == 0
    assert stats["succeeded"] == 8 * 500
    assert 1 <= peak <= 6


async def test_asyncio_tasks_share_the_throttle() -> None:
    throttle = AdaptiveThrottle(initial_limit=2, max_limit=4)
    active, peak = 0, 0

    async def work() -> None:
        nonlocal active, peak
        for _ in range(20):
            async with throttle.slot(timeout=5.0):
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0)
                active -= 1

    await asyncio.gather(*(work() for _ in range(20)))
    stats = throttle.stats()
    assert stats["in_flight"] == 0 and stats["succeeded"] == 400
    assert 2 <= peak <= 4


async def test_slot_releases_by_outcome_and_ignores_cancellation() -> None:
    throttle = AdaptiveThrottle(initial_limit=4)
    with pytest.raises(ValueError):
        async with throttle.slot():
            raise ValueError("bad replay")
    entered = asyncio.Event()

    async def stuck() -> None:
        async with throttle.slot():
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(stuck())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = throttle.stats()
    assert (stats["succeeded"], stats["failed"], stats["in_flight"]) == (0, 1, 0)
    assert stats["last_error"] == "ValueError: bad replay"


async def test_acquire_async_times_out_and_wakes_on_release_from_a_thread() -> None:
    throttle = AdaptiveThrottle(initial_limit=1, max_limit=1)
    held = grab(throttle)
    with pytest.raises(TimeoutError, match="concurrency"):
        await throttle.acquire_async(timeout=0.05)
    threading.Timer(0.05, held.release, args=(True,)).start()
    started = time.monotonic()
    permit = await throttle.acquire_async(timeout=2.0)
    assert time.monotonic() - started < 0.5  # not the 1 s retry_after: woken by the release
    permit.release(True)
    assert throttle.stats()["refused"] == 1
