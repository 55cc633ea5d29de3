"""``BulkReplayWorkflow``: a durable, paced, previewable redrive of many entries."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from dlq._messages import (
        BulkFreezeInput,
        BulkFreezeResult,
        BulkPageInput,
        BulkPageResult,
        BulkReplayInput,
        BulkReplayProgress,
    )

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
# Continue as new well before Temporal's limits; the frozen set lives in SQL,
# so the carried state is only counters and a cursor.
PAGES_PER_RUN = 200
# Pause and cancel act within a second, mid-page: the page activity is
# cancelled and reports what it finished. Runs started before replay the
# old command sequence (pages always ran to their end).
CONTROLS_NOW_PATCH = "bulk-controls-act-now"
# A page's liveness check; cancellation reaches it much sooner, because the
# worker sends heartbeats at most every 0.5 s (dlq._worker).
PAGE_HEARTBEAT_TIMEOUT = timedelta(seconds=15)


@workflow.defn(name="BulkReplayWorkflow")
class BulkReplayWorkflow:
    """Replays a frozen set of entries page by page through their own workflows.

    Signals ``pause``, ``resume`` and ``cancel`` act within a second, also in
    the middle of a page: the page stops starting replays, lets those already
    sent finish and reports them, so nothing is replayed twice or skipped.
    The ``get_progress`` query reports counts and the current rate (the
    service adds the running page's heartbeated outcomes). Each replay is
    the entry's own ``retry`` update (cap gate, audit trail and SQL row stay
    right), with an update id per (redrive, entry), so a retried page never
    replays an entry twice.
    """

    @workflow.init
    def __init__(self, input: BulkReplayInput) -> None:
        self._progress = input.progress or BulkReplayProgress(bulk_id=input.bulk_id)
        self._paused = False
        self._cancelled = False

    @workflow.run
    async def run(self, input: BulkReplayInput) -> BulkReplayProgress:
        """Freeze the set (first run only), then replay it page by page."""
        p = self._progress
        if p.started_at is None:
            p.started_at = workflow.now()
        if not input.frozen:
            frozen = await workflow.execute_activity(
                "freeze_bulk_set", BulkFreezeInput(bulk_id=input.bulk_id, filters=input.filters),
                result_type=BulkFreezeResult, start_to_close_timeout=timedelta(minutes=10),
                retry_policy=RETRY, summary="resolve the filter to a frozen id set",
            )
            p.total = p.remaining = frozen.total
        # The canary's entries still to replay, and its outcome so far (a
        # paused canary page resumes the canary where it stopped).
        canary_left = input.canary if input.canary > 0 and p.done == 0 else 0
        canary_done = canary_ok = 0
        pages = 0
        while p.remaining > 0 and p.early_stop_reason is None:
            if self._paused and not self._cancelled:
                p.status = "paused"
                await workflow.wait_condition(lambda: not self._paused or self._cancelled)
            if self._cancelled:
                p.status = "cancelled"
                return p
            p.status = "running"
            limit = canary_left or input.page_size
            started = workflow.now()
            page_input = BulkPageInput(
                bulk_id=input.bulk_id, after=p.cursor, limit=limit, actor_id=input.actor_id,
                reason=input.reason, rate_per_second=input.rate_per_second,
                throttle=input.throttle)
            summary = f"replay {'canary ' if canary_left else ''}page after {p.cursor or '-'}"
            if workflow.patched(CONTROLS_NOW_PATCH):
                page = await self._page(page_input, summary)
            else:
                page = await workflow.execute_activity(
                    "replay_bulk_page", page_input,
                    result_type=BulkPageResult, retry_policy=RETRY,
                    start_to_close_timeout=_page_timeout(limit, input.rate_per_second),
                    heartbeat_timeout=PAGE_HEARTBEAT_TIMEOUT, summary=summary,
                )
            self._count(page, started)
            if page.processed == 0 and not page.interrupted:
                p.remaining = 0
                break
            if canary_left:
                canary_done += page.processed
                canary_ok += page.succeeded
                canary_left = max(0, canary_left - page.processed)
                ratio = canary_ok / canary_done if canary_done else 1.0
                if not canary_left and ratio < input.canary_min_success:
                    p.early_stop_reason = (
                        f"canary failed: {canary_ok}/{canary_done} succeeded "
                        f"({ratio:.0%} < {input.canary_min_success:.0%})")
            p.early_stop_reason = p.early_stop_reason or page.early_stop_reason
            pages += 1
            if (pages >= PAGES_PER_RUN or workflow.info().is_continue_as_new_suggested()) \
                    and p.remaining > 0 and p.early_stop_reason is None:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(input.model_copy(update={
                    "frozen": True, "progress": p, "canary": input.canary if canary_left else 0,
                }))
        p.status = "stopped" if p.early_stop_reason else "completed"
        return p

    async def _page(self, page_input: BulkPageInput, summary: str) -> BulkPageResult:
        """Run one page; a pause or cancel meanwhile cancels it, and it reports what it did."""
        handle = workflow.start_activity(
            "replay_bulk_page", page_input, result_type=BulkPageResult, retry_policy=RETRY,
            start_to_close_timeout=_page_timeout(page_input.limit, page_input.rate_per_second),
            heartbeat_timeout=PAGE_HEARTBEAT_TIMEOUT, summary=summary,
            # The page answers a cancel with what it finished (a normal result).
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.wait_condition(lambda: handle.done() or self._paused or self._cancelled)
        if not handle.done():
            handle.cancel()
        try:
            return await handle
        except ActivityError as err:
            if not isinstance(err.cause, CancelledError):
                raise
            # Cancelled before it could report (e.g. not started yet): nothing
            # is counted and the cursor stays; update ids make a re-run safe.
            return BulkPageResult(last=page_input.after, processed=0, succeeded=0, failed=0,
                                  skipped=0, interrupted=True)

    def _count(self, page: BulkPageResult, started: datetime) -> None:
        p = self._progress
        p.done += page.processed
        p.succeeded += page.succeeded
        p.failed += page.failed
        p.skipped += page.skipped
        p.pending += page.pending
        p.remaining = max(0, p.total - p.done)
        p.cursor = page.last or p.cursor
        p.active_seconds += (workflow.now() - started).total_seconds()
        p.current_rate = p.done / p.active_seconds if p.active_seconds else 0.0

    @workflow.query
    def get_progress(self) -> BulkReplayProgress:
        """Done, succeeded, failed, skipped, pending, remaining and the current rate."""
        return self._progress

    @workflow.signal
    def pause(self) -> None:
        """Start no more replays until ``resume`` (the page in flight stops at once)."""
        self._paused = True

    @workflow.signal
    def resume(self) -> None:
        """Continue a paused redrive."""
        self._paused = False

    @workflow.signal
    def cancel(self) -> None:
        """Start no more replays; the rest of the set is not replayed."""
        self._cancelled = True


def _page_timeout(limit: int, rate: float | None) -> timedelta:
    paced = limit / rate if rate else 0.0
    return timedelta(seconds=max(300.0, 3 * paced))
