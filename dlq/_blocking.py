"""``DLQService``: the blocking twin of ``AsyncDLQService``, and the process-wide service.

Every blocking method runs the async service's public coroutine on a private
event-loop thread. Two kinds of call skip the hand-off, because it would cost
more than the work: an async store (an outbox append) and the list, cursor,
stats and facet reads run on the caller's thread, through the same code the
coroutines run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from dlq import _capture, _fork, _queries
from dlq._config import DLQConfig
from dlq._fields import StoreArgs, adopt_store_signature, takes_store_args
from dlq._messages import EntryInput
from dlq._results import DLQEntryResult
from dlq._service import AsyncDLQService

if TYPE_CHECKING:
    from dlq._sql import FailedOperationRepository

__all__ = ["DLQService", "get_dlq_service", "reset_dlq_service", "store_to_dlq", "use_config"]

T = TypeVar("T")


class _LoopThread:
    """An event loop on a daemon thread, so blocking code can await coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="dlq-loop",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` on the loop thread and wait for it (``TimeoutError`` after ``timeout``).

        On a timeout the coroutine is cancelled.
        """
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("DLQService called from its own loop; use AsyncDLQService")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer from the DLQ loop thread within {timeout:g}s") from None

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


def _blocking(method: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """The ``AsyncDLQService`` method of the same name, blocking (on the loop thread)."""

    @functools.wraps(method)
    def call(self: DLQService, *args: Any, **kwargs: Any) -> T:
        return self._loop.run(getattr(self.aio, method.__name__)(*args, **kwargs))

    return call


def _here(method: Callable[..., Awaitable[T]], body: Callable[..., T], *,
          with_config: bool = False) -> Callable[..., T]:
    """A SQL-only ``AsyncDLQService`` method run on the caller's thread.

    ``body`` is the blocking code the coroutine runs in its worker thread
    (given the repository, and the configuration ``with_config``), so
    answers and errors are identical.
    """

    @functools.wraps(method)
    def call(self: DLQService, *args: Any, **kwargs: Any) -> T:
        if with_config:
            return body(self.aio.repository, self.aio.config, *args, **kwargs)
        return body(self.aio.repository, *args, **kwargs)

    return call


class DLQService:
    """Dead Letter Queue Service: the blocking API for plain code.

    Works with no event loop (a Django view, a Celery task, a script): each
    call runs the matching :class:`AsyncDLQService` coroutine on a private
    event loop thread. Asyncio code should use ``AsyncDLQService`` directly.

    Example:
        >>> service = DLQService()
        >>> result = service.store_failure(domain="payment", failure_type="PG_TIMEOUT",
        ...                                error_message="Connection timed out")
        >>> if result.success:
        ...     print(f"Stored as DLQ entry {result.dlq_id}")

    Args:
        config: Configuration; read from ``DLQ_*`` variables if None.
        repository: Read side of the SQL store (the SQLModel one if None).
    """

    def __init__(self, config: DLQConfig | None = None,
                 repository: FailedOperationRepository | None = None) -> None:
        self.aio = AsyncDLQService(config, repository)
        self._loop = _LoopThread()
        self._relay_requested = False
        _fork.track(self)

    def _after_fork(self) -> None:
        # In a forked child (gunicorn --preload, Celery prefork) the loop
        # thread does not exist: every call would wait for it forever. The
        # async service rebuilds its own parts (dlq._fork).
        _fork.keep(self._loop)
        self._loop = _LoopThread()
        self._relay_requested = False

    @property
    def config(self) -> DLQConfig:
        """The configuration."""
        return self.aio.config

    @property
    def is_enabled(self) -> bool:
        """Whether the DLQ is enabled."""
        return self.aio.is_enabled

    @property
    def repository(self) -> FailedOperationRepository:
        """The SQL read side."""
        return self.aio.repository

    def _store_failure(self, args: StoreArgs) -> DLQEntryResult:
        # An async store is an outbox append: do it on the caller's thread (no
        # hand-off to the loop thread and back, which would cost more than the
        # append itself) and only wake the relay on the loop thread.
        ready = _capture.admit(self.aio, args, run_relay=False)
        if isinstance(ready, EntryInput):
            return self._store_sync(ready)
        if ready.success:
            self._wake_relay()
        return ready

    def _store_sync(self, entry: EntryInput) -> DLQEntryResult:
        breaker = self.aio.breaker
        if breaker.is_open:
            # Temporal was found unreachable: an outbox append on the caller's
            # thread, no hand-off and no wait (dlq._breaker).
            result = _capture.enqueue(self.aio, entry, breaker.short_circuit(),
                                      reason="unavailable", run_relay=False)
            self._wake_relay()
            return result
        bound = self.aio.config.store_timeout
        # Open the outbox now (once), so a fallback within the bound does not
        # also pay for creating the file.
        _ = self.aio.outbox
        try:
            # The store bounds itself at store_timeout + 4 %; this is the
            # guarantee if the loop thread itself is stuck (and leaves 4 % for
            # the caller's own outbox append then).
            return self._loop.run(_capture.store_checked(self.aio, entry),
                                  timeout=bound * 1.06)
        except TimeoutError as err:
            result = _capture.enqueue(self.aio, entry, str(err), reason="timeout",
                                      run_relay=False)
            self._wake_relay()
            return result

    def _wake_relay(self) -> None:
        if not self._relay_requested and not self.aio.relay_running:
            self._relay_requested = True  # one wake-up of the loop thread, not one per call
            self._loop.loop.call_soon_threadsafe(self._start_relay)

    store_failure = takes_store_args(_store_failure)
    store_failure.__doc__ = _capture.store_failure.__doc__

    def _start_relay(self) -> None:
        # On the loop thread. The flag stays set only if no relay task came of
        # it (nothing to retry until it runs); a relay that dies later is
        # restarted by the next store.
        self.aio.start_relay()
        self._relay_requested = not self.aio.relay_running

    store_entry = _blocking(AsyncDLQService.store_entry)
    create_test_entry = _blocking(AsyncDLQService.create_test_entry)
    retry_entry = _blocking(AsyncDLQService.retry_entry)
    force_redrive_entry = _blocking(AsyncDLQService.force_redrive_entry)
    resolve_entry = _blocking(AsyncDLQService.resolve_entry)
    resolve_entries_batch = _blocking(AsyncDLQService.resolve_entries_batch)
    edit_entry_data = _blocking(AsyncDLQService.edit_entry_data)
    resolve_entry_id = _blocking(AsyncDLQService.resolve_entry_id)
    get_entry = _blocking(AsyncDLQService.get_entry)
    get_entry_by_id = _blocking(AsyncDLQService.get_entry_by_id)
    list_entries = _here(AsyncDLQService.list_entries, _queries.read_page)
    iter_entries = _here(AsyncDLQService.iter_entries, _queries.read_cursor_page,
                         with_config=True)
    get_pending_entries = _blocking(AsyncDLQService.get_pending_entries)
    get_replayable_entries = _blocking(AsyncDLQService.get_replayable_entries)
    get_expired_entries = _blocking(AsyncDLQService.get_expired_entries)
    get_sla_breached_entries = _blocking(AsyncDLQService.get_sla_breached_entries)
    get_stats = _here(AsyncDLQService.get_stats, _queries.read_stats)
    get_facet_counts = _here(AsyncDLQService.get_facet_counts, _queries.read_facets)
    list_groups = _blocking(AsyncDLQService.list_groups)
    get_group = _blocking(AsyncDLQService.get_group)
    list_alerts = _blocking(AsyncDLQService.list_alerts)
    expire_entries = _blocking(AsyncDLQService.expire_entries)
    archive_old_entries = _blocking(AsyncDLQService.archive_old_entries)
    purge_archived = _blocking(AsyncDLQService.purge_archived)
    count_archived_older_than = _blocking(AsyncDLQService.count_archived_older_than)
    cleanup_old_entries = _blocking(AsyncDLQService.cleanup_old_entries)
    get_cleanup_stats = _blocking(AsyncDLQService.get_cleanup_stats)
    run_maintenance = _blocking(AsyncDLQService.run_maintenance)
    list_purges = _blocking(AsyncDLQService.list_purges)
    get_purge = _blocking(AsyncDLQService.get_purge)
    find_purged_entry = _blocking(AsyncDLQService.find_purged_entry)
    drain_outbox = _blocking(AsyncDLQService.drain_outbox)
    retry_entry_as = _blocking(AsyncDLQService.retry_entry_as)
    replay = _blocking(AsyncDLQService.replay)
    replay_throttle_aware = _blocking(AsyncDLQService.replay_throttle_aware)
    replay_all_throttle_aware = _blocking(AsyncDLQService.replay_all_throttle_aware)
    bulk_replay = _blocking(AsyncDLQService.bulk_replay)
    get_bulk_replay = _blocking(AsyncDLQService.get_bulk_replay)
    wait_bulk_replay = _blocking(AsyncDLQService.wait_bulk_replay)
    signal_bulk_replay = _blocking(AsyncDLQService.signal_bulk_replay)
    get_capture_stats = _blocking(AsyncDLQService.get_capture_stats)
    list_quarantined = _blocking(AsyncDLQService.list_quarantined)
    get_quarantined = _blocking(AsyncDLQService.get_quarantined)
    delete_quarantined = _blocking(AsyncDLQService.delete_quarantined)

    def bulk_workflow_id(self, ref: str) -> str:
        """The workflow id of the bulk redrive ``ref`` names (``dlq-bulk-<hex>`` or ``<hex>``)."""
        return self.aio.bulk_workflow_id(ref)

    def close(self) -> None:
        """Release the SQL engine and stop the private loop thread."""
        self._loop.run(self.aio.close())
        self._loop.close()

    def __enter__(self) -> DLQService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_service: DLQService | None = None
_service_lock = threading.Lock()
# Where the process-wide service takes its configuration from (None: DLQ_*
# variables); an integration sets it, e.g. the Django app to settings.DLQ.
_config_source: Callable[[], DLQConfig] | None = None


def use_config(source: Callable[[], DLQConfig] | None) -> None:
    """Make the process-wide service take its configuration from ``source``.

    Integrations call this (the Django app passes ``settings.DLQ``); it
    applies to the next service :func:`get_dlq_service` builds, also after
    :func:`reset_dlq_service`. None goes back to ``DLQ_*`` variables.
    """
    global _config_source
    _config_source = source


def get_dlq_service() -> DLQService:
    """The process-wide :class:`DLQService`, created on first use.

    Its configuration comes from ``DLQ_*`` variables, or from what an
    integration set with :func:`use_config` (the Django app: ``settings.DLQ``).
    """
    global _service
    with _service_lock:
        if _service is None:
            _service = DLQService(_config_source() if _config_source is not None else None)
        return _service


def reset_dlq_service() -> None:
    """Close and forget the process-wide service (the next call builds a new one)."""
    global _service
    with _service_lock:
        if _service is not None:
            _service.close()
        _service = None


def store_to_dlq(*args: Any, **kwargs: Any) -> DLQEntryResult:
    """Store a failure in the DLQ: a shortcut for ``get_dlq_service().store_failure(...)``.

    Takes every argument ``store_failure`` takes; see
    :meth:`AsyncDLQService.store_failure` for them and for ``mode``.
    """
    return get_dlq_service().store_failure(*args, **kwargs)


adopt_store_signature(store_to_dlq, store_to_dlq)
