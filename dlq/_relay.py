"""The relay: drains an outbox into Temporal in batches, with bounded concurrency and backoff."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from dlq import _metrics as metrics
from dlq._messages import EntryInput
from dlq._outbox import Outbox
from dlq._redact import redact_text

__all__ = ["Relay"]

log = logging.getLogger("dlq.relay")


class Relay:
    """Moves outbox records into Temporal.

    Args:
        outbox: The outbox to drain.
        deliver: Makes sure the entry's workflow exists (idempotent); raises if
            it could not.
        batch_size: Records claimed per round.
        concurrency: Deliveries in flight at once.
        idle_interval: Seconds between polls when the outbox is empty (an
            in-process append wakes the relay at once).
        max_backoff: Cap of the per-record retry delay while deliveries fail.
        max_probe_interval: Cap of the pause between probe rounds while every
            delivery fails; also the longest a recovery goes unnoticed.
        ready: Checked before each round (e.g. connect the client); if it
            raises, the round claims nothing, so records do not use up
            attempts while their destination is plainly down.
        permanent: Given a delivery's error, the reason it can never succeed
            (e.g. Temporal refuses the record as invalid or too large), or
            None to retry. A permanent failure moves the record into the
            outbox's quarantine instead of retrying it forever.
    """

    def __init__(self, outbox: Outbox, deliver: Callable[[EntryInput], Awaitable[object]], *,
                 batch_size: int = 100, concurrency: int = 32, idle_interval: float = 1.0,
                 max_backoff: float = 30.0, max_probe_interval: float = 5.0,
                 ready: Callable[[], Awaitable[object]] | None = None,
                 permanent: Callable[[BaseException], str | None] | None = None) -> None:
        self.outbox = outbox
        self.deliver = deliver
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.idle_interval = idle_interval
        self.max_backoff = max_backoff
        self.max_probe_interval = max_probe_interval
        self.ready = ready
        self.permanent = permanent
        self.delivered = 0
        self.quarantined = 0
        self.errors = 0
        self.last_error: str | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed_rounds = 0  # rounds in a row where every delivery failed

    def notify(self) -> None:
        """Wake the relay (safe from any thread).

        Cheap when there is nothing to do: no wake-up while one is pending or
        while the relay backs off from a failing destination (a producer
        storing thousands per second would otherwise wake the loop each time).
        """
        wake = self._wake
        if self._loop is not None and wake is not None and not wake.is_set() \
                and not self._failed_rounds:
            self._loop.call_soon_threadsafe(wake.set)

    def wake_now(self) -> None:
        """Deliver now, also while backing off (on the relay's loop: the destination is back)."""
        self._failed_rounds = 0
        if self._wake is not None:
            self._wake.set()

    async def drain_once(self) -> int:
        """Claim one batch and deliver it; returns how many records were delivered.

        While deliveries keep failing (Temporal down) a round claims a single
        record as a probe, so the relay neither burns the producer's CPU on
        doomed calls nor piles up retry delays on every record.
        """
        if self.ready is not None:
            try:
                await self.ready()
            except Exception as err:  # noqa: BLE001 - e.g. Temporal down: back off, touch nothing
                self.errors += 1
                metrics.count_relay_error()
                self.last_error = f"{type(err).__name__}: {err}"
                self._failed_rounds += 1
                return 0
        limit = 1 if self._failed_rounds else self.batch_size
        records = await asyncio.to_thread(self.outbox.claim, limit)
        if not records:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        quarantined = 0

        async def one(record: Any) -> int | None:
            nonlocal quarantined
            async with gate:
                try:
                    await self.deliver(record.entry)
                    return record.seq
                except Exception as err:  # noqa: BLE001 - retried with backoff
                    self.errors += 1
                    metrics.count_relay_error()
                    # Kept in the outbox file and logged: filtered like any error text.
                    self.last_error = redact_text(f"{type(err).__name__}: {err}")[:2000]
                    reason = self.permanent(err) if self.permanent is not None else None
                    if reason is not None:
                        # Never deliverable: retrying would keep it (and its
                        # attempts) in the relay's way forever.
                        reason = redact_text(reason)
                        await asyncio.to_thread(self.outbox.quarantine, record.seq, reason)
                        self.quarantined += 1
                        quarantined += 1
                        log.warning("relay: outbox record %s quarantined: %s",
                                    record.dlq_id, reason)
                        return None
                    delay = min(self.max_backoff, 0.5 * 2 ** record.attempts)
                    await asyncio.to_thread(self.outbox.release, record.seq, self.last_error,
                                            retry_in=delay)
                    return None

        done = [s for s in await asyncio.gather(*(one(r) for r in records)) if s is not None]
        # A quarantined record was answered by the destination: it is up.
        self._failed_rounds = 0 if done or quarantined else self._failed_rounds + 1
        await asyncio.to_thread(self.outbox.delete, done)
        self.delivered += len(done)
        if len(done) < len(records):
            log.warning("relay: %d of %d deliveries failed (%s)", len(records) - len(done),
                        len(records), self.last_error)
        return len(done)

    async def drain(self, *, timeout: float | None = None) -> int:
        """Deliver until the outbox is empty (or ``timeout`` passes); returns how many."""
        deadline = None if timeout is None else time.monotonic() + timeout
        total = 0
        while True:
            total += await self.drain_once()
            if (await asyncio.to_thread(self.outbox.stats)).depth == 0:
                return total
            if deadline is not None and time.monotonic() > deadline:
                return total
            await asyncio.sleep(0.2)

    async def run(self) -> None:
        """Drain forever (cancel to stop)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            try:
                delivered = await self.drain_once()
            except Exception as err:  # noqa: BLE001 - e.g. the outbox file briefly locked; retried
                log.error("relay round failed: %s",
                          redact_text("".join(traceback.format_exception(err))))
                delivered = 0
            if self._failed_rounds:
                # Temporal (or the claim check's SQL) is unreachable: probe with
                # exponential backoff, deaf to producers' wake-ups (notify), until
                # a delivery works or wake_now says the destination is back.
                self._wake.clear()  # a producer's wake-up from before the failure
                try:
                    async with asyncio.timeout(min(self.max_probe_interval,
                                                   0.25 * 2 ** min(self._failed_rounds, 16))):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
            elif delivered == 0:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancel that lands together with a wake-up, and close() hangs.
                try:
                    async with asyncio.timeout(self.idle_interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
