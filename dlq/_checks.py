"""Checks of operator-supplied arguments shared by the service's operations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dlq._state import RESOLVE_TARGETS

__all__ = ["check_days", "check_int", "check_limit", "check_resolve_status", "now"]


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def check_int(name: str, value: Any) -> int:
    """``value`` if it is an int (not a bool).

    Raises:
        ValueError: Naming ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return value


def check_limit(limit: Any) -> int:
    """A row limit: an int >= 1."""
    if check_int("limit", limit) < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return limit


def check_days(name: str, value: Any) -> int:
    """A number of days: an int >= 0."""
    if check_int(name, value) < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_resolve_status(status: str) -> None:
    """``status`` must be a status a resolve may set."""
    if status not in RESOLVE_TARGETS:
        raise ValueError(f"status must be one of {', '.join(RESOLVE_TARGETS)}, got {status!r}")
