"""``AsyncDLQService``: the one façade of every DLQ operation, for asyncio code.

Each operation is written once, in the module named for what it does, and
bound here by name: capture (:mod:`dlq._capture`), commands on one entry
(:mod:`dlq._commands`), the id forms operators paste (:mod:`dlq._ids`),
batch replays and bulk redrives (:mod:`dlq._redrive`),
questions answered from SQL (:mod:`dlq._queries`), failure groups and
alerts (:mod:`dlq._groups`) and retention
(:mod:`dlq._maintenance`). This module holds what they share: the
configuration, the SQL repository, the Temporal client and the outbox.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from temporalio.client import Client

from dlq import (
    _capture,
    _commands,
    _fork,
    _groups,
    _ids,
    _maintenance,
    _quarantine,
    _queries,
    _redrive,
)
from dlq._breaker import CircuitBreaker, probe_until_reachable
from dlq._config import DLQConfig
from dlq._connect import connect
from dlq._errors import DLQUnavailableError
from dlq._outbox import Outbox
from dlq._relay import Relay

if TYPE_CHECKING:
    from dlq._sql import FailedOperationRepository

__all__ = ["AsyncDLQService"]


class AsyncDLQService:
    """Dead-letter queue operations as coroutines, for asyncio code.

    Every entry is a ``DLQEntryWorkflow`` on Temporal; reads come from the SQL
    read model. :class:`~dlq.DLQService` is the blocking twin.

    Args:
        config: Configuration; read from ``DLQ_*`` variables if None.
        repository: Read side of the SQL store; the SQLModel one on
            ``config.database_url`` if None.
        client: A connected Temporal client using the pydantic data
            converter; connected lazily from ``config`` if None.
    """

    def __init__(self, config: DLQConfig | None = None,
                 repository: FailedOperationRepository | None = None, *,
                 client: Client | None = None) -> None:
        self.config = config or DLQConfig.from_settings()
        self._repository = repository
        self._client = client
        self._engine: Any = None
        self._outbox: Outbox | None = None
        self._relay: Relay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        # Per hot dedup workflow id: a semaphore and how many stores wait on it.
        self._dedup_gates: dict[str, list[Any]] = {}
        self.breaker = CircuitBreaker()
        self._probe_task: asyncio.Task[None] | None = None
        _fork.track(self)

    def _after_fork(self) -> None:
        # In a forked child (dlq._fork): the parent's client, relay task, outbox
        # connections and pooled SQL connections are unusable here. Keep them
        # referenced (never closed from the child) and rebuild on first use; a
        # client passed to the constructor is replaced by one made from config.
        for inherited in (self._client, self._relay, self._relay_task, self._probe_task,
                          self._outbox):
            _fork.keep(inherited)
        self._client = None
        self._outbox = None
        self._relay = None
        self._relay_task = None
        self._probe_task = None
        self._dedup_gates = {}
        self.breaker = CircuitBreaker()
        if self._engine is not None:
            self._engine.dispose(close=False)  # the child opens its own connections

    # --- what the operations share ------------------------------------------------

    @property
    def is_enabled(self) -> bool:
        """Whether the DLQ is enabled."""
        return self.config.enabled

    @property
    def repository(self) -> FailedOperationRepository:
        """The SQL read side (created on first use)."""
        if self._repository is None:
            # Imported on first use: a producer that only stores never needs SQL.
            from dlq._db import create_db_engine
            from dlq._sql import SQLModelRepository

            self._engine = create_db_engine(self.config.database_url,
                                            key_ring=self.config.key_ring)
            self._repository = SQLModelRepository(self._engine)
        return self._repository

    @property
    def outbox(self) -> Outbox:
        """The local outbox (``config.outbox_path``), opened on first use."""
        if self._outbox is None:
            self._outbox = Outbox(self.config.outbox_path, key_ring=self.config.key_ring)
        return self._outbox

    @property
    def relay_running(self) -> bool:
        """Whether this service's relay task is running."""
        return bool(self._relay_task and not self._relay_task.done())

    async def get_client(self) -> Client:
        """The Temporal client, connected on first use within ``store_timeout``."""
        if self._client is None:
            try:
                self._client = await asyncio.wait_for(
                    connect(self.config),
                    timeout=self.config.store_timeout,
                )
            except (TimeoutError, RuntimeError) as err:
                reason = str(err).split("(", 1)[0].strip() or type(err).__name__
                raise DLQUnavailableError(
                    f"cannot reach Temporal at {self.config.temporal_address} ({reason}); is it "
                    "running, and is DLQ_TEMPORAL_ADDRESS right?") from err
        return self._client

    def trip_breaker(self, reason: str) -> None:
        """Open the capture circuit breaker (on the running loop) and probe until Temporal answers.

        Later sync stores go straight to the outbox while it is open
        (:mod:`dlq._breaker`).
        """
        self.breaker.trip(reason)
        task = self._probe_task
        if task is None or task.done():
            self._probe_task = asyncio.get_running_loop().create_task(
                probe_until_reachable(self))

    async def close(self) -> None:
        """Stop the relay and the probe and release the SQL engine this service created."""
        if self._probe_task is not None:
            self._probe_task.cancel()
            await asyncio.wait({self._probe_task}, timeout=5)
            self._probe_task = None
        if self._relay_task is not None:
            self._relay_task.cancel()
            # Bounded, and without swallowing a cancel aimed at the caller itself.
            await asyncio.wait({self._relay_task}, timeout=5)
            self._relay_task = None
        if self._engine is not None:
            self._engine.dispose()

    # --- capture (dlq._capture) -------------------------------------------------------

    store_failure = _capture.store_failure
    store_entry = _capture.store_entry
    create_test_entry = _capture.create_test_entry
    deliver = _capture.deliver
    start_relay = _capture.start_relay
    drain_outbox = _capture.drain_outbox
    get_capture_stats = _capture.get_capture_stats

    # --- the outbox's quarantine (dlq._quarantine) ----------------------------------------

    list_quarantined = _quarantine.list_quarantined
    get_quarantined = _quarantine.get_quarantined
    delete_quarantined = _quarantine.delete_quarantined

    # --- commands on one entry (dlq._commands) -----------------------------------------

    retry_entry = _commands.retry_entry
    retry_entry_as = _commands.retry_entry_as
    force_redrive_entry = _commands.force_redrive_entry
    resolve_entry = _commands.resolve_entry
    resolve_entries_batch = _commands.resolve_entries_batch
    edit_entry_data = _commands.edit_entry_data

    # --- the id forms operators paste (dlq._ids) ------------------------------------------

    resolve_entry_id = _ids.resolve_entry_id
    bulk_workflow_id = _ids.bulk_workflow_id

    # --- replays and bulk redrives (dlq._redrive) ---------------------------------------

    replay = _redrive.replay
    replay_throttle_aware = _redrive.replay_throttle_aware
    replay_all_throttle_aware = _redrive.replay_all_throttle_aware
    bulk_replay = _redrive.bulk_replay
    get_bulk_replay = _redrive.get_bulk_replay
    wait_bulk_replay = _redrive.wait_bulk_replay
    signal_bulk_replay = _redrive.signal_bulk_replay

    # --- questions answered from SQL (dlq._queries) -------------------------------------

    get_entry = _queries.get_entry
    get_entry_by_id = _queries.get_entry_by_id
    list_entries = _queries.list_entries
    iter_entries = _queries.iter_entries
    get_pending_entries = _queries.get_pending_entries
    get_replayable_entries = _queries.get_replayable_entries
    get_expired_entries = _queries.get_expired_entries
    get_sla_breached_entries = _queries.get_sla_breached_entries
    get_stats = _queries.get_stats
    get_facet_counts = _queries.get_facet_counts

    # --- failure groups and alerts (dlq._groups) ----------------------------------------

    list_groups = _groups.list_groups
    get_group = _groups.get_group
    list_alerts = _groups.list_alerts

    # --- retention (dlq._maintenance) ---------------------------------------------------

    expire_entries = _maintenance.expire_entries
    archive_old_entries = _maintenance.archive_old_entries
    purge_archived = _maintenance.purge_archived
    count_archived_older_than = _maintenance.count_archived_older_than
    cleanup_old_entries = _maintenance.cleanup_old_entries
    get_cleanup_stats = _maintenance.get_cleanup_stats
    run_maintenance = _maintenance.run_maintenance
    list_purges = _maintenance.list_purges
    get_purge = _maintenance.get_purge
    find_purged_entry = _maintenance.find_purged_entry
