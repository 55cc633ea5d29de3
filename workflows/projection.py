"""How ``DLQEntryWorkflow`` projects its state to SQL through ``persist_entry``.

A mixin of the entry workflow (its own module keeps ``workflows/entry.py``
about the entry's life). Each write is a version-gated upsert: it runs first
as a local activity and falls back to a regular one while SQL is slow or down;
transitions made while a write runs are coalesced into the next one; a row SQL
refuses for good (``PersistRejected``) is recorded as unprojected, never retried
in silence.

Imported through ``imports_passed_through`` by ``workflows/entry.py``: it holds
no module state, and the sandbox then does not import it again for every run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from dlq import _state as sm
    from dlq._messages import PersistInput, PersistResult
    from dlq._models import EntryState

__all__ = ["LOCAL_PERSIST_RETRY", "LOCAL_PERSIST_TIMEOUT", "PERSIST_REJECTED", "PERSIST_RETRY",
           "EntryProjection"]

# Persisting must eventually succeed (SQL may be down for a while); keep retrying.
PERSIST_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                            maximum_interval=timedelta(seconds=30))
# A persist first runs as a local activity: no activity task round trip through
# the server, so a replay costs as many workflow tasks as a bare update. It must
# stay short: while it runs the worker holds the workflow task, and updates,
# queries and activity results for the entry wait. Past this bound (SQL locked or
# down) the same write falls back to a regular activity under PERSIST_RETRY.
LOCAL_PERSIST_TIMEOUT = timedelta(seconds=5)
LOCAL_PERSIST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                                  backoff_coefficient=2.0, maximum_attempts=3)
# persist_entry's non-retryable error when SQL refuses the values themselves.
PERSIST_REJECTED = "PersistRejected"


class EntryProjection:
    """The SQL projection of an entry workflow's state (mixed into ``DLQEntryWorkflow``)."""

    # Set by the workflow's __init__.
    _state: EntryState
    _persisted_version: int
    _persisted_seq: int
    _persisted_edits: int
    _holding_transient: bool
    _sql_unhealthy: bool
    _records_rejections: bool

    def _set_details(self) -> None:
        raise NotImplementedError  # the workflow's: its Web UI card

    async def _persist_loop(self) -> None:
        # Coalescing: each write carries the latest version and every audit event
        # since the last write, so transitions made meanwhile cost one write.
        while True:
            await workflow.wait_condition(
                lambda: self._state.version > self._persisted_version
                and not self._holding_transient)
            s = self._state
            version, include_data = s.version, not s.row_written
            edits = s.data_edits
            data_changed = edits > self._persisted_edits
            events = [e for e in s.audit if e.seq > self._persisted_seq]
            row = s.model_copy(update={"audit": []})
            if not include_data:
                # The data already in SQL stays out of history; edited data
                # (edit before replay) travels once per edit.
                kept: dict[str, Any] = {"response_data": {}, "metadata": {}}
                if not data_changed:
                    kept.update(snapshot_data={}, request_data={}, original_data=None)
                row = row.model_copy(update=kept)
            rejected = await self._persist(
                PersistInput(state=row, events=events, include_data=include_data,
                             data_changed=data_changed),
                summary=f"persist v{version} ({s.status})")
            if rejected is not None:
                # Never retried: the next transition tries again with its own
                # version, carrying these events and the rejection's.
                self._record_unprojected(version, rejected)
                self._persisted_version = version
                continue
            s.unprojected = None
            s.row_written = True
            self._persisted_version = version
            self._persisted_edits = edits
            self._persisted_seq = max([self._persisted_seq, *(e.seq for e in events)])

    async def _persist(self, input: PersistInput, *, summary: str) -> str | None:
        # The write is a version-gated upsert plus insert-or-ignore audit rows, so
        # running it again (a local attempt that timed out, then the fallback) is safe.
        # Returns why SQL refused the row for good, or None once it is written.
        if not self._sql_unhealthy:
            try:
                await workflow.execute_local_activity(
                    "persist_entry", input, result_type=PersistResult,
                    start_to_close_timeout=LOCAL_PERSIST_TIMEOUT,
                    schedule_to_close_timeout=LOCAL_PERSIST_TIMEOUT,
                    retry_policy=LOCAL_PERSIST_RETRY, summary=summary,
                )
                return None
            except CancelledError:
                raise
            except FailureError as err:
                rejected = _rejection(err)
                if rejected is not None and self._records_rejections:
                    return rejected
                # Not only ActivityError: measured with temporalio 1.35, a local
                # activity whose retries ran out raises its ApplicationError
                # bare, and a timed-out one raises a bare TimeoutError on
                # replay (ActivityError live). Catching less fails the workflow
                # or breaks replay.
                workflow.logger.warning(
                    "local persist of v%s failed (%s); persisting as a regular activity "
                    "until SQL answers again", input.state.version,
                    getattr(err, "cause", None) or err)
                self._sql_unhealthy = True
        try:
            await workflow.execute_activity(
                "persist_entry", input, result_type=PersistResult,
                start_to_close_timeout=timedelta(seconds=30), retry_policy=PERSIST_RETRY,
                summary=summary,
            )
        except ActivityError as err:
            rejected = _rejection(err)
            if rejected is None or not self._records_rejections:
                raise
            return rejected
        self._sql_unhealthy = False
        return None

    def _record_unprojected(self, version: int, reason: str) -> None:
        """SQL refused the row for good: make it visible (state, card, audit, log)."""
        sm.record_unprojected(self._state, workflow.now(), version=version, reason=reason)
        workflow.logger.error("entry %s v%s is not in SQL (not retried): %s", self._state.id,
                              version, reason)
        self._set_details()

    async def _flushed(self) -> None:
        # Wait for the version as of now: later transitions must not keep
        # a caller waiting while a hot entry keeps changing.
        version = self._state.version
        await workflow.wait_condition(lambda: self._persisted_version >= version)

    async def _quiesce(self) -> None:
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished()
            and self._persisted_version >= self._state.version)


def _rejection(err: BaseException) -> str | None:
    """persist_entry's ``PersistRejected`` message, bare or as an activity failure's cause."""
    for candidate in (err, getattr(err, "cause", None)):
        if isinstance(candidate, ApplicationError) and candidate.type == PERSIST_REJECTED:
            return candidate.message
    return None
