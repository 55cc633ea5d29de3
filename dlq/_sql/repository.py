"""The repository: the SQL contract the service uses, and its SQLModel implementation.

The contract is named once, in :class:`FailedOperationRepository`. The
implementation declares nothing again: each of its methods is a SQL function
of this package (keyword-only, taking a ``session``), bound to a connection
of the right kind by :func:`_on`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from sqlalchemy.engine import Engine
from sqlmodel import Session

from dlq._filters import EntryFilters
from dlq._groups import GroupFilters
from dlq._models import FailedOperationData
from dlq._reads import ThreadReads
from dlq._sql import alerts, bulk, groups, lists, maintenance, purges, queries, writes

__all__ = ["FailedOperationRepository", "SQLModelRepository"]


@runtime_checkable
class FailedOperationRepository(Protocol):
    """The SQL side of the DLQ, replaceable through ``DLQService(repository=...)``.

    Methods are blocking; the async service runs them in a thread. Datetimes
    are timezone-aware UTC. Arguments are passed positionally in the order
    shown.
    """

    def get(self, entry_id: str) -> FailedOperationData | None:
        """The entry as :class:`FailedOperationData`, or None."""
        ...

    def get_detail(self, entry_id: str) -> dict[str, Any] | None:
        """The entry as a JSON-safe dict with attempts and audit events, or None."""
        ...

    def current_entry_id(self, workflow_id: str) -> str | None:
        """The newest entry stored under ``workflow_id``, or None."""
        ...

    def save_payload(self, entry_id: str, data: dict[str, Any]) -> None:
        """Keep an entry's large data fields before its workflow starts (claim check)."""
        ...

    def list_page(self, filters: EntryFilters, offset: int,
                  limit: int) -> tuple[list[dict[str, Any]], int]:
        """One page of list rows (newest first) and the total count."""
        ...

    def list_after(self, filters: EntryFilters, after: tuple[datetime, str] | None,
                   limit: int) -> list[dict[str, Any]]:
        """A keyset page after (created_at, id)."""
        ...

    def find_open(self, statuses: Sequence[str], domain: str | None, failure_type: str | None,
                  replayable: bool, limit: int) -> list[FailedOperationData]:
        """Entries in ``statuses``, oldest first."""
        ...

    def find_expired(self, now: datetime, limit: int) -> list[FailedOperationData]:
        """Open entries past ``expires_at``."""
        ...

    def find_sla_breached(self, now: datetime, thresholds: dict[str, float],
                          limit: int) -> list[FailedOperationData]:
        """Open entries older than their domain's SLA."""
        ...

    def expired_entry_ids(self, now: datetime, after_id: str, limit: int) -> list[str]:
        """Ids of open entries past ``expires_at`` after ``after_id``, in id order."""
        ...

    def mark_expired(self, entry_id: str, now: datetime) -> bool:
        """Expire an orphan open row; True if it changed."""
        ...

    def stats(self, now: datetime) -> dict[str, Any]:
        """Counts by status and domain and the other statistics of ``get_stats``."""
        ...

    def facet_counts(self, status: str | None, domain: str | None) -> dict[str, dict[str, int]]:
        """Faceted status x domain counts."""
        ...

    def archive_closed(self, cutoff: datetime, now: datetime, dry_run: bool,
                       actor: str | None) -> int:
        """Archive entries closed before ``cutoff`` (audited with ``actor``)."""
        ...

    def purge_archived(self, ids: Sequence[str] | None, cutoff: datetime | None,
                       dry_run: bool, actor: str | None, reason: str,
                       criteria: dict[str, Any] | None) -> int:
        """Delete archived entries by id and/or age, recording the purge."""
        ...

    def list_purges(self, limit: int) -> list[dict[str, Any]]:
        """The newest purges first."""
        ...

    def get_purge(self, purge_id: str, limit: int) -> dict[str, Any] | None:
        """One purge with the tombstones of its entries, or None."""
        ...

    def find_purged_entry(self, entry_id: str) -> dict[str, Any] | None:
        """The tombstone of a purged entry, or None."""
        ...

    def count_archived_older_than(self, cutoff: datetime) -> int:
        """Archived entries closed before ``cutoff``."""
        ...

    def cleanup_counts(self, now: datetime, retention_days: int,
                       purge_after_days: int) -> dict[str, Any]:
        """Age-bucketed counts for ``get_cleanup_stats``."""
        ...

    def freeze_bulk_set(self, bulk_id: str, filters: EntryFilters) -> int:
        """Fix a redrive's entry set; returns its size."""
        ...

    def drop_bulk_set(self, bulk_id: str) -> int:
        """Forget a frozen set whose redrive never started."""
        ...

    def bulk_page_ids(self, bulk_id: str, after: str, limit: int) -> list[str]:
        """The next page of a frozen set."""
        ...

    def bulk_breakdown(self, filters: EntryFilters) -> dict[str, Any]:
        """What a redrive would take (for ``dry_run``)."""
        ...

    def list_groups(self, filters: GroupFilters, offset: int, limit: int,
                    now: datetime) -> tuple[list[dict[str, Any]], int]:
        """One page of failure groups (most recently seen first) and the total count."""
        ...

    def get_group(self, fingerprint: str, now: datetime) -> dict[str, Any] | None:
        """One failure group, or None."""
        ...

    def list_alerts(self, limit: int, rule: str | None) -> list[dict[str, Any]]:
        """Recorded alerts, newest first."""
        ...

    def prune_group_minutes(self, now: datetime) -> int:
        """Drop failure groups' per-minute counts older than a day."""
        ...


Kind = Literal["hot", "read", "write"]


def _on(kind: Kind, function: Callable[..., Any]) -> Callable[..., Any]:
    """A repository method that runs ``function`` with a session of ``kind``.

    ``hot``: the per-thread read connections (lists, cursors, facets; see
    :mod:`dlq._reads`). ``read``: a fresh session. ``write``: a fresh session,
    committed. Positional arguments map to the function's keywords in order.
    """
    names = [name for name in inspect.signature(function).parameters if name != "session"]

    def hot(self: SQLModelRepository, *args: Any, **kwargs: Any) -> Any:
        kwargs.update(zip(names, args))  # noqa: B905 - the contract fixes the order
        return function(session=self._hot, **kwargs)

    def pooled(self: SQLModelRepository, *args: Any, **kwargs: Any) -> Any:
        kwargs.update(zip(names, args))  # noqa: B905 - the contract fixes the order
        with Session(self.engine) as session:
            result = function(session=session, **kwargs)
            if kind == "write":
                session.commit()
            return result

    method = hot if kind == "hot" else pooled
    method.__name__ = method.__qualname__ = function.__name__
    method.__doc__ = function.__doc__
    return method


class SQLModelRepository:
    """The default :class:`FailedOperationRepository`, on SQLite or PostgreSQL.

    Args:
        engine: SQLAlchemy engine of the read model.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The list, cursor and facet reads: a connection per reading thread (no pool
        # checkout, no pre-ping round trip; see dlq._reads).
        self._hot = ThreadReads(engine)

    get = _on("read", queries.get_entry)
    get_detail = _on("read", queries.get_entry_detail)
    current_entry_id = _on("read", queries.current_entry_id)
    save_payload = _on("write", writes.save_payload)
    list_page = _on("hot", lists.list_page)
    list_after = _on("hot", lists.find_entries_after)
    find_open = _on("read", queries.find_open)
    find_expired = _on("read", queries.find_expired)
    find_sla_breached = _on("read", queries.find_sla_breached)
    expired_entry_ids = _on("read", queries.expired_entry_ids)
    mark_expired = _on("write", maintenance.mark_expired)
    stats = _on("read", queries.stats)
    facet_counts = _on("hot", queries.facet_counts)
    archive_closed = _on("write", maintenance.archive_closed)
    purge_archived = _on("write", maintenance.purge_archived)
    list_purges = _on("read", purges.list_purges)
    get_purge = _on("read", purges.get_purge)
    find_purged_entry = _on("read", purges.find_purged_entry)
    count_archived_older_than = _on("read", maintenance.count_archived_older_than)
    cleanup_counts = _on("read", maintenance.cleanup_counts)
    freeze_bulk_set = _on("write", bulk.freeze_bulk_set)
    drop_bulk_set = _on("write", bulk.drop_bulk_set)
    bulk_page_ids = _on("read", bulk.bulk_page_ids)
    bulk_breakdown = _on("read", bulk.bulk_breakdown)
    list_groups = _on("read", groups.list_groups)
    get_group = _on("read", groups.get_group)
    list_alerts = _on("read", alerts.list_alerts)
    prune_group_minutes = _on("write", groups.prune_group_minutes)
