"""Failure groups and alerts as service operations (bound on :class:`~dlq.AsyncDLQService`).

A group is every entry with one fingerprint (:mod:`dlq._fingerprint`):
same domain, failure type, error code and error message up to the numbers,
ids, hex and UUIDs in it. Its counts come from ``dlq_groups`` and
``dlq_group_minutes`` (kept by triggers). Alerts are what the alert rules
raised (:mod:`dlq._alerting`).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlq._checks import check_int, check_limit, check_text, now
from dlq._filters import TEXT_FILTER_CHARS, check_filter_keys
from dlq._fingerprint import is_fingerprint

if TYPE_CHECKING:
    from dlq._service import AsyncDLQService

__all__ = ["GROUP_FILTER_KEYS", "GroupFilters", "get_group", "list_alerts", "list_groups",
           "parse_group_filters"]

GROUP_FILTER_KEYS = ("domain", "failure_type", "error_code", "open")


@dataclass(frozen=True)
class GroupFilters:
    """Validated group filters (all optional); ``open_only`` keeps groups with open entries."""

    domain: str | None = None
    failure_type: str | None = None
    error_code: str | None = None
    open_only: bool = False


def parse_group_filters(filters: dict[str, Any] | None) -> GroupFilters:
    """Check a group filter dict (``domain``, ``failure_type``, ``error_code``, ``open``).

    Raises:
        ValueError: Naming an unknown key or a value of the wrong type.
    """
    out: dict[str, Any] = {}
    for key, value in check_filter_keys(filters, GROUP_FILTER_KEYS,
                                        what="group filter").items():
        if value is None or value == "":
            continue
        if key == "open":
            if not isinstance(value, bool):
                raise ValueError(f"group filter 'open' must be a bool, got {value!r}")
            out["open_only"] = value
        else:
            # The entry filters' text check: storable (no NUL on PostgreSQL), bounded.
            out[key] = check_text(f"group filter {key!r}", value,
                                  max_chars=TEXT_FILTER_CHARS[key])
    return GroupFilters(**out)


def check_fingerprint(value: Any) -> str:
    """``value`` if it is a fingerprint.

    Raises:
        ValueError: Naming the argument and the expected shape.
    """
    if not is_fingerprint(value):
        raise ValueError(f"fingerprint must be 16 lowercase hex characters, got {value!r}")
    return str(value)


async def list_groups(service: AsyncDLQService, filters: dict[str, Any] | None = None,
                      page: int = 1, page_size: int = 20) -> dict[str, Any]:
    """One page of failure groups, most recently seen first.

    Args:
        service: The service.
        filters: Any of ``domain``, ``failure_type``, ``error_code`` and
            ``open`` (True: only groups with open entries).
        page: Page number, clamped to >= 1.
        page_size: Groups per page, clamped to 1..100.

    Returns:
        Dict with ``results`` (each: ``fingerprint``, ``domain``,
        ``failure_type``, ``error_code``, ``message`` (the normalised
        message), ``count`` (occurrences), ``entries``, ``open_count``,
        ``first_seen_at``, ``last_seen_at``, ``last_hour``, ``last_day``),
        ``page``, ``page_size``, ``total_pages``, ``total_count``,
        ``has_next`` and ``has_previous``.

    Raises:
        ValueError: Bad filters or paging arguments.
    """
    parsed = parse_group_filters(filters)
    page, page_size = check_int("page", page), check_int("page_size", page_size)
    page, page_size = max(1, page), min(max(1, page_size), 100)
    rows, total = await asyncio.to_thread(service.repository.list_groups, parsed,
                                          (page - 1) * page_size, page_size, now())
    total_pages = math.ceil(total / page_size)
    return {"results": rows, "page": page, "page_size": page_size,
            "total_pages": total_pages, "total_count": total,
            "has_next": page < total_pages, "has_previous": page > 1}


async def get_group(service: AsyncDLQService, fingerprint: str) -> dict[str, Any] | None:
    """One failure group (as in :func:`list_groups`), or None.

    Its entries: ``list_entries({"group": fingerprint})``; redrive them:
    ``bulk_replay({"group": fingerprint}, ...)``.

    Raises:
        ValueError: If ``fingerprint`` is not 16 lowercase hex characters.
    """
    fp = check_fingerprint(fingerprint)
    return await asyncio.to_thread(service.repository.get_group, fp, now())


async def list_alerts(service: AsyncDLQService, limit: int = 50,
                      rule: str | None = None) -> list[dict[str, Any]]:
    """Alerts the alert rules raised, newest first, with their delivery outcome.

    Args:
        service: The service.
        limit: At most this many (>= 1, capped at 1000).
        rule: Only this rule's.
    """
    limit = min(check_limit(limit), 1000)
    if rule is not None and not isinstance(rule, str):
        raise ValueError(f"rule must be a string, got {type(rule).__name__}")
    return await asyncio.to_thread(service.repository.list_alerts, limit, rule)
