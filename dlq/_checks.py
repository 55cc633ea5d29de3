"""Checks of operator-supplied arguments shared by the service's operations."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from dlq._errors import DLQInvalidInputError
from dlq._state import RESOLVE_TARGETS

__all__ = ["OPERATOR_TEXT_FIELDS", "OPERATOR_TEXT_LIMITS", "RESOLVE_TARGETS", "check_days",
           "check_int", "check_limit", "check_operator_text", "check_resolve_status", "now",
           "operator_text_problem"]

OPERATOR_TEXT_LIMITS: dict[str, int] = {
    "actor": 200,
    "reason": 2000,
    "notes": 4000,
    "ticket_url": 1000,
    "resolution_type": 100,
}
"""Most characters of each text an operator sends with a command (docs/operating.md).

They keep every audit event small (the entry workflow keeps 100 of them in
the state ``get_state`` returns, which Temporal caps at 2 MiB) and fit the SQL
columns (``actor`` 255, ``ticket_url`` 1000, ``resolution_type`` 100).
"""
OPERATOR_TEXT_FIELDS = tuple(OPERATOR_TEXT_LIMITS)
# NUL cannot be stored in PostgreSQL text; a lone surrogate cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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


def check_resolve_status(status: Any) -> None:
    """``status`` must be a status a resolve may set.

    Raises:
        DLQInvalidInputError: A ``DLQError`` (HTTP 400, as the reference
            says) that is also a ``ValueError``.
    """
    if not isinstance(status, str) or status not in RESOLVE_TARGETS:
        raise DLQInvalidInputError(
            f"status must be one of {', '.join(RESOLVE_TARGETS)}, got {status!r:.100}")


def operator_text_problem(name: str, value: Any) -> str | None:
    """What is wrong with the operator text ``name`` (None if nothing; None is allowed)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return f"{name} must be a string, got {type(value).__name__}"
    limit = OPERATOR_TEXT_LIMITS[name]
    if len(value) > limit:
        return f"{name} is {len(value)} characters long; the limit is {limit}"
    bad = _UNSTORABLE.search(value)
    if bad:
        what = "a NUL character" if bad.group() == "\x00" else "a lone surrogate"
        return f"{name} contains {what} (at {bad.start()}), which cannot be stored"
    return None


def check_operator_text(**values: Any) -> None:
    """Check operator texts (``actor=..., reason=...``) against :data:`OPERATOR_TEXT_LIMITS`.

    Raises:
        DLQInvalidInputError: Naming the field and the limit (HTTP 400, CLI exit 2).
    """
    for name, value in values.items():
        problem = operator_text_problem(name, value)
        if problem:
            raise DLQInvalidInputError(problem)
