"""Activities of ``BulkReplayWorkflow``: freeze the set, replay pages under a throttle."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio import activity

from dlq import _metrics as metrics
from dlq._errors import (
    DLQCommandPendingError,
    DLQEntryNotFoundError,
    DLQError,
    DLQStateConflictError,
)
from dlq._filters import parse_filters
from dlq._messages import BulkFreezeInput, BulkFreezeResult, BulkPageInput, BulkPageResult
from dlq._service import AsyncDLQService
from dlq._throttle import AdaptiveThrottle, Permit

# Replays in flight per page when the adaptive throttle is off.
UNTHROTTLED_CONCURRENCY = 32
# Heartbeats carry the outcomes (progress during a page) and bring a pause or
# cancel (a heartbeat's answer): often enough that both act within a second.
HEARTBEAT_EVERY = 0.25


class BulkActivities:
    """Bulk redrive steps, done through the service's own replay path.

    One :class:`AdaptiveThrottle` per redrive lives in this worker process
    across pages, so what it learned about the downstream carries over.

    Args:
        service: A service on the worker's client and SQL engine.
    """

    def __init__(self, service: AsyncDLQService) -> None:
        self.service = service
        self._throttles: dict[str, AdaptiveThrottle] = {}

    @activity.defn(name="freeze_bulk_set")
    async def freeze_bulk_set(self, input: BulkFreezeInput) -> BulkFreezeResult:
        """Resolve the filter to a fixed set of ids (idempotent per redrive)."""
        total = await asyncio.to_thread(self.service.repository.freeze_bulk_set,
                                        input.bulk_id, parse_filters(input.filters))
        return BulkFreezeResult(total=total)

    def _throttle(self, input: BulkPageInput) -> AdaptiveThrottle | None:
        if not input.throttle:
            return None
        throttle = self._throttles.get(input.bulk_id)
        if throttle is None:
            throttle = self._throttles[input.bulk_id] = AdaptiveThrottle(
                max_rate_per_second=input.rate_per_second)
        return throttle

    @activity.defn(name="replay_bulk_page")
    async def replay_bulk_page(self, input: BulkPageInput) -> BulkPageResult:
        """Replay the next page of the frozen set, paced, and report the outcomes.

        Outcomes are heartbeated as they come (and several times a second
        while waiting), so a retry after a lost worker skips what is done; the
        per-entry update id deduplicates the rest. The second heartbeat detail
        names the page (``after``), so progress reads can add the running
        page's outcomes. Cancelled (the redrive was paused or cancelled), the
        page starts no more replays, waits for those already sent and returns
        them with ``interrupted``.
        """
        ids = await asyncio.to_thread(self.service.repository.bulk_page_ids, input.bulk_id,
                                      input.after, input.limit)
        details = activity.info().heartbeat_details
        outcomes: dict[str, str] = dict(details[0]) if details else {}
        errors: list[str] = []
        throttle = self._throttle(input)
        gate = asyncio.Semaphore(UNTHROTTLED_CONCURRENCY)
        pacer = _Pacer(None if throttle else input.rate_per_second)
        stop: str | None = None
        in_flight: set[asyncio.Task[None]] = set()
        page = {"after": input.after}
        interrupted = False

        async def one(pk: str, permit: Permit | None) -> None:
            started = time.monotonic()
            try:
                outcomes[pk] = await self._replay(pk, input, errors)
            finally:
                if permit is not None:
                    # "failed" is the downstream failing; a skip is a fast, healthy answer.
                    permit.release(success=outcomes.get(pk) != "failed",
                                   latency=time.monotonic() - started)
                else:
                    gate.release()
            activity.heartbeat(outcomes, page)

        async def keep_alive() -> None:
            # A page may wait long on the throttle or a slow handler; a lost
            # worker must still be noticed, and a cancel must still arrive.
            while True:
                activity.heartbeat(outcomes, page)
                if throttle is not None:  # dlq_redrive_limit / _health while the page runs
                    metrics.track_redrive(input.bulk_id, throttle)
                await asyncio.sleep(HEARTBEAT_EVERY)

        beat = asyncio.create_task(keep_alive())
        try:
            for pk in ids:
                if pk in outcomes:
                    continue  # done before this attempt of the activity
                permit = None
                if throttle is None:
                    await gate.acquire()
                    await pacer.wait()
                else:
                    # Acquire before starting, so an emergency stops new replays at once.
                    permit = await throttle.acquire_async()
                    if throttle.health == "emergency":
                        permit.abandon()
                        stop = f"downstream emergency: {_describe(throttle)}"
                        break
                in_flight.add(asyncio.create_task(one(pk, permit)))
                in_flight = {t for t in in_flight if not t.done()}
            if in_flight:
                # wait(), not gather(): a cancel must not cancel replays already sent.
                await asyncio.wait(in_flight)
        except asyncio.CancelledError:
            # Paused or cancelled: start nothing more; the replays already sent
            # run to their end in their entries, so wait and count them.
            interrupted = True
            running = {t for t in in_flight if not t.done()}
            if running:
                await asyncio.wait(running)
        finally:
            beat.cancel()
            if throttle is not None:
                metrics.track_redrive(input.bulk_id, throttle)
        if throttle is not None and stop is None and throttle.health == "emergency":
            stop = f"downstream emergency: {_describe(throttle)}"
        done = [pk for pk in ids if pk in outcomes]
        counts = {k: sum(1 for pk in done if outcomes[pk] == k)
                  for k in ("succeeded", "failed", "skipped", "pending")}
        # Continue after the last contiguous done id: a stop leaves the rest for no one,
        # a retry resumes where the page really ended.
        last = input.after
        for pk in ids:
            if pk not in outcomes:
                break
            last = pk
        return BulkPageResult(last=last, processed=len(done), errors=errors[:20],
                              early_stop_reason=stop, interrupted=interrupted, **counts)

    async def _replay(self, pk: str, input: BulkPageInput, errors: list[str]) -> str:
        try:
            result = await self.service.retry_entry_as(
                pk, actor=input.actor_id, reason=input.reason, trigger="bulk",
                update_id=f"bulk-{input.bulk_id}-{pk}")
        except (DLQStateConflictError, DLQEntryNotFoundError):
            return "skipped"  # closed, at its cap or busy since the set was frozen
        except DLQCommandPendingError as err:
            # Sent, not confirmed in time: Temporal holds it and it will run.
            errors.append(f"{pk}: {err}")
            return "pending"
        except DLQError as err:
            errors.append(f"{pk}: {err}")
            return "failed"
        if not result["success"]:
            errors.append(f"{pk}: {result['message']}")
        return "succeeded" if result["success"] else "failed"


def _describe(throttle: AdaptiveThrottle) -> str:
    stats: dict[str, Any] = throttle.stats()
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in stats.items())


class _Pacer:
    """Spaces calls to at most ``rate`` per second (None: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.interval
        await asyncio.sleep(slot - now)
