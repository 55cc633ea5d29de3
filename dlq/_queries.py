"""Questions answered from SQL: entries, lists, cursors, facets, stats, SLA breaches.

The coroutines here are :class:`~dlq.AsyncDLQService` methods (the façade
binds them; ``service`` is the instance); they run SQL in a worker thread.
The ``read_*`` functions are the blocking bodies of the list, cursor, stats
and facet reads: ``DLQService`` runs those on the caller's thread, because two
thread hand-offs would cost more than the query.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

from dlq._checks import check_entry_id, check_int, check_limit, check_text, now
from dlq._config import DLQConfig
from dlq._filters import decode_cursor, encode_cursor, parse_filters
from dlq._models import DLQStatus, FailedOperationData

if TYPE_CHECKING:
    from dlq._service import AsyncDLQService
    from dlq._sql import FailedOperationRepository

# Beyond any table's row count, within a SQL BIGINT.
MAX_OFFSET = 2**62

__all__ = ["get_entry", "get_entry_by_id", "get_expired_entries", "get_facet_counts",
           "get_pending_entries", "get_replayable_entries", "get_sla_breached_entries",
           "get_stats", "iter_entries", "list_entries", "read_cursor_page", "read_facets",
           "read_page", "read_stats"]


async def get_entry(service: AsyncDLQService, pk: str) -> dict[str, Any] | None:
    """Details of one entry: fields, attempts and audit events, or None.

    Raises:
        ValueError: ``pk`` is not a non-empty string an id can be.
    """
    return await asyncio.to_thread(service.repository.get_detail, check_entry_id(pk, "pk"))


async def get_entry_by_id(service: AsyncDLQService, dlq_id: str) -> FailedOperationData | None:
    """One entry as :class:`FailedOperationData`, or None.

    Raises:
        ValueError: ``dlq_id`` is not a non-empty string an id can be.
    """
    return await asyncio.to_thread(service.repository.get, check_entry_id(dlq_id, "dlq_id"))


async def list_entries(service: AsyncDLQService, filters: dict[str, Any] | None = None,
                       page: int = 1, page_size: int = 20) -> dict[str, Any]:
    """One page of entries, newest first, with offset/limit done in SQL.

    A filter without ``status`` spans every status.

    Args:
        service: The service.
        filters: Any of ``status`` (one or a list), ``domain``,
            ``failure_type``, ``entity_type``, ``entity_id``, ``user_id``,
            ``error_code``, ``created_after``, ``created_before`` (datetime
            or ISO string) and ``error_message`` (case-insensitive match).
        page: Page number, clamped to >= 1; a page beyond the last is empty.
        page_size: Items per page, clamped to 1..100.

    Returns:
        Dict with ``results``, ``page``, ``page_size``, ``total_pages``,
        ``total_count``, ``has_next`` and ``has_previous``.

    Raises:
        ValueError: Naming an unknown filter key or a value of the wrong type.
    """
    return await asyncio.to_thread(read_page, service.repository, filters, page, page_size)


def read_page(repository: FailedOperationRepository, filters: dict[str, Any] | None = None,
              page: int = 1, page_size: int = 20) -> dict[str, Any]:
    """The blocking body of :func:`list_entries`."""
    parsed = parse_filters(filters)
    page, page_size = check_int("page", page), check_int("page_size", page_size)
    page, page_size = max(1, page), min(max(1, page_size), 100)
    # A page far beyond the last is empty, whatever its number: the offset
    # stays within what SQL takes (a 64-bit integer).
    rows, total = repository.list_page(parsed, min((page - 1) * page_size, MAX_OFFSET),
                                       page_size)
    total_pages = math.ceil(total / page_size)
    return {"results": rows, "page": page, "page_size": page_size,
            "total_pages": total_pages, "total_count": total,
            "has_next": page < total_pages, "has_previous": page > 1}


async def iter_entries(service: AsyncDLQService, filters: dict[str, Any] | None = None, *,
                       cursor: str | None = None, limit: int = 100) -> dict[str, Any]:
    """Keyset pagination for deep traversal (newest first).

    Pass the returned ``next_cursor`` back to continue; entries stored
    meanwhile are newer than the cursor and never shift the traversal.

    Args:
        service: The service.
        filters: As for :meth:`list_entries`.
        cursor: Opaque cursor from the previous call, None to start.
        limit: Entries per call, clamped to 1..1000.

    Returns:
        Dict with ``results`` and ``next_cursor`` (None at the end).

    Raises:
        ValueError: Bad filters, or a forged, altered or foreign cursor.
    """
    return await asyncio.to_thread(read_cursor_page, service.repository, service.config,
                                   filters, cursor=cursor, limit=limit)


def read_cursor_page(repository: FailedOperationRepository, config: DLQConfig,
                     filters: dict[str, Any] | None = None, *, cursor: str | None = None,
                     limit: int = 100) -> dict[str, Any]:
    """The blocking body of :func:`iter_entries`."""
    parsed = parse_filters(filters)
    limit = min(max(1, check_int("limit", limit)), 1000)
    after = (decode_cursor(cursor, filters=parsed, secret=config.cursor_key)
             if cursor else None)
    rows = repository.list_after(parsed, after, limit)
    next_cursor = None
    if len(rows) == limit:
        last = rows[-1]
        next_cursor = encode_cursor(created_at=last["created_at"], entry_id=last["id"],
                                    filters=parsed, secret=config.cursor_key)
    return {"results": rows, "next_cursor": next_cursor}


async def get_pending_entries(service: AsyncDLQService, domain: str | None = None,
                              failure_type: str | None = None,
                              limit: int = 100) -> list[FailedOperationData]:
    """Pending entries, oldest first.

    Raises:
        ValueError: ``domain`` or ``failure_type`` not a string, or a bad ``limit``.
    """
    return await asyncio.to_thread(service.repository.find_open, [DLQStatus.PENDING.value],
                                   *_scope(domain, failure_type), False, check_limit(limit))


async def get_replayable_entries(service: AsyncDLQService, domain: str | None = None,
                                 failure_type: str | None = None,
                                 limit: int = 100) -> list[FailedOperationData]:
    """Entries that can be replayed: ``pending`` and ``retry_count < max_retries``.

    Raises:
        ValueError: ``domain`` or ``failure_type`` not a string, or a bad ``limit``.
    """
    return await asyncio.to_thread(service.repository.find_open, [DLQStatus.PENDING.value],
                                   *_scope(domain, failure_type), True, check_limit(limit))


def _scope(domain: Any, failure_type: Any) -> tuple[str | None, str | None]:
    return (check_text("domain", domain, max_chars=100),
            check_text("failure_type", failure_type, max_chars=100))


async def get_expired_entries(service: AsyncDLQService,
                              limit: int = 1000) -> list[FailedOperationData]:
    """Open entries whose ``expires_at`` has passed (normally their workflow expires them)."""
    return await asyncio.to_thread(service.repository.find_expired, now(), check_limit(limit))


async def get_sla_breached_entries(service: AsyncDLQService,
                                   limit: int = 1000) -> list[FailedOperationData]:
    """Open entries older than the SLA of their domain (``DLQ_SLA_THRESHOLDS``).

    Domains without a threshold use the ``*`` one; with no ``*``, they
    never breach.
    """
    return await asyncio.to_thread(service.repository.find_sla_breached, now(),
                                   dict(service.config.sla_thresholds), check_limit(limit))


async def get_stats(service: AsyncDLQService) -> dict[str, Any]:
    """Counts by status and domain, oldest open entry, replay success rate, recent stores.

    Recent stores are the entries stored in the last hour and the last day.
    """
    return await asyncio.to_thread(read_stats, service.repository)


def read_stats(repository: FailedOperationRepository) -> dict[str, Any]:
    """The blocking body of :func:`get_stats`."""
    return repository.stats(now())


async def get_facet_counts(service: AsyncDLQService, *, status: str | None = None,
                           domain: str | None = None) -> dict[str, dict[str, int]]:
    """Faceted counts: ``by_status`` scoped by ``domain``, ``by_domain`` by ``status``.

    Zero-count buckets are dropped.

    Raises:
        ValueError: For an unknown status, or a ``domain`` that is not a string.
    """
    return await asyncio.to_thread(read_facets, service.repository, status=status,
                                   domain=domain)


def read_facets(repository: FailedOperationRepository, *, status: str | None = None,
                domain: str | None = None) -> dict[str, dict[str, int]]:
    """The blocking body of :func:`get_facet_counts`."""
    if status is not None:
        if not isinstance(status, str):
            raise ValueError(f"status must be a string, got {type(status).__name__}")
        parse_filters({"status": status})
    return repository.facet_counts(status, check_text("domain", domain, max_chars=100))
