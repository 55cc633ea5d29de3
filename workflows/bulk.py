"""``BulkReplayWorkflow``: a durable, paced, previewable redrive of many entries."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

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


@workflow.defn(name="BulkReplayWorkflow")
class BulkReplayWorkflow:
    """Replays a frozen set of entries page by page through their own workflows.

    Signals ``pause``, ``resume`` and ``cancel`` act between pages; the
    ``get_progress`` query reports counts and the current rate. Each replay is
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
        canary_due = input.canary > 0 and p.done == 0
        pages = 0
        while p.remaining > 0 and p.early_stop_reason is None:
            if self._paused and not self._cancelled:
                p.status = "paused"
                await workflow.wait_condition(lambda: not self._paused or self._cancelled)
            if self._cancelled:
                p.status = "cancelled"
                return p
            p.status = "running"
            limit = input.canary if canary_due else input.page_size
            started = workflow.now()
            page = await workflow.execute_activity(
                "replay_bulk_page",
                BulkPageInput(bulk_id=input.bulk_id, after=p.cursor, limit=limit,
                              actor_id=input.actor_id, reason=input.reason,
                              rate_per_second=input.rate_per_second, throttle=input.throttle),
                result_type=BulkPageResult, retry_policy=RETRY,
                start_to_close_timeout=_page_timeout(limit, input.rate_per_second),
                heartbeat_timeout=timedelta(seconds=15),
                summary=f"replay {'canary ' if canary_due else ''}page after {p.cursor or '-'}",
            )
            self._count(page, started)
            if page.processed == 0:
                p.remaining = 0
                break
            if canary_due:
                canary_due = False
                ratio = page.succeeded / page.processed
                if ratio < input.canary_min_success:
                    p.early_stop_reason = (
                        f"canary failed: {page.succeeded}/{page.processed} succeeded "
                        f"({ratio:.0%} < {input.canary_min_success:.0%})")
            p.early_stop_reason = p.early_stop_reason or page.early_stop_reason
            pages += 1
            if (pages >= PAGES_PER_RUN or workflow.info().is_continue_as_new_suggested()) \
                    and p.remaining > 0 and p.early_stop_reason is None:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(input.model_copy(update={
                    "frozen": True, "progress": p, "canary": 0 if not canary_due else input.canary,
                }))
        p.status = "stopped" if p.early_stop_reason else "completed"
        return p

    def _count(self, page: BulkPageResult, started: datetime) -> None:
        p = self._progress
        p.done += page.processed
        p.succeeded += page.succeeded
        p.failed += page.failed
        p.skipped += page.skipped
        p.remaining = max(0, p.total - p.done)
        p.cursor = page.last or p.cursor
        p.active_seconds += (workflow.now() - started).total_seconds()
        p.current_rate = p.done / p.active_seconds if p.active_seconds else 0.0

    @workflow.query
    def get_progress(self) -> BulkReplayProgress:
        """Done, succeeded, failed, skipped, remaining and the current rate."""
        return self._progress

    @workflow.signal
    def pause(self) -> None:
        """Stop after the page in flight until ``resume``."""
        self._paused = True

    @workflow.signal
    def resume(self) -> None:
        """Continue a paused redrive."""
        self._paused = False

    @workflow.signal
    def cancel(self) -> None:
        """Stop after the page in flight; the rest is not replayed."""
        self._cancelled = True


def _page_timeout(limit: int, rate: float | None) -> timedelta:
    paced = limit / rate if rate else 0.0
    return timedelta(seconds=max(300.0, 3 * paced))
