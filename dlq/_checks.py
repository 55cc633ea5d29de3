"""Checks of operator-supplied arguments shared by the service's operations."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from dlq._errors import DLQInvalidInputError
from dlq._state import RESOLVE_TARGETS

__all__ = ["MAX_DAYS", "MAX_EDIT_BYTES", "MAX_LIMIT", "OPERATOR_TEXT_FIELDS",
           "OPERATOR_TEXT_LIMITS", "RESOLVE_TARGETS", "SQL_INT_MAX", "SQL_INT_MIN", "check_days",
           "check_entry_id", "check_int", "check_limit", "check_operator_text", "check_rate",
           "check_resolve_status", "check_text", "command_problem", "now",
           "operator_text_problem", "unstorable_problem"]

MAX_LIMIT = 1_000_000
"""Most rows one call may ask for (``limit``)."""
MAX_DAYS = 36_500
"""Most days an age argument may be (100 years; more overflows dates)."""
# The range of a SQL BIGINT on both engines.
SQL_INT_MIN, SQL_INT_MAX = -(2**63), 2**63 - 1
ID_CHARS = 255

OPERATOR_TEXT_LIMITS: dict[str, int] = {
    "actor": 200,
    "reason": 2000,
    "notes": 4000,
    "ticket_url": 1000,
    "resolution_type": 100,
    "actor_id": 200,  # the reference's name of ``actor`` (force_redrive_entry, bulk_replay)
}
"""Most characters of each text an operator sends with a command (docs/operating.md).

They keep every audit event small (the entry workflow keeps 100 of them in
the state ``get_state`` returns, which Temporal caps at 2 MiB) and fit the SQL
columns (``actor`` 255, ``ticket_url`` 1000, ``resolution_type`` 100).
"""
MAX_EDIT_BYTES = 1024 * 1024
"""Most ``max_bytes`` an edit may ask for (the ceiling of ``DLQ_PAYLOAD_INLINE_BYTES``)."""
# The fields of the command inputs (dlq._messages) these limits apply to.
OPERATOR_TEXT_FIELDS = ("actor", "reason", "notes", "ticket_url", "resolution_type")
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


def check_limit(limit: Any, name: str = "limit") -> int:
    """A row limit: an int within 1..:data:`MAX_LIMIT`."""
    if not 1 <= check_int(name, limit) <= MAX_LIMIT:
        raise ValueError(f"{name} must be within 1..{MAX_LIMIT}, got {_shown(limit)}")
    return limit


def _shown(value: int) -> str:
    # A huge int in a message stays short (10**30 -> 1e+30).
    return f"{value:.3g}" if abs(value) > 10**9 else str(value)


def check_days(name: str, value: Any) -> int:
    """A number of days: an int within 0..:data:`MAX_DAYS`."""
    if not 0 <= check_int(name, value) <= MAX_DAYS:
        raise ValueError(f"{name} must be within 0..{MAX_DAYS} (days), got {_shown(value)}")
    return value


def check_rate(name: str, value: Any) -> float:
    """A positive, finite number (a rate): not NaN, not infinite, not a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def unstorable_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored or sent (NUL, lone surrogate), or None."""
    bad = _UNSTORABLE.search(value)
    if bad is None:
        return None
    what = "a NUL character" if bad.group() == "\x00" else "a lone surrogate"
    return f"contains {what} (at {bad.start()}), which cannot be stored"


def check_text(name: str, value: Any, *, max_chars: int) -> str | None:
    """A text argument (a filter, a domain): a string, storable, at most ``max_chars``.

    None passes through.

    Raises:
        ValueError: Naming ``name``.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise ValueError(f"{name} is {len(value)} characters long; the limit is {max_chars}")
    problem = unstorable_problem(value)
    if problem:
        raise ValueError(f"{name} {problem}")
    return value


def check_entry_id(value: Any, name: str = "id") -> str:
    """An entry id: a non-empty storable string (any entry id is at most 255 characters).

    Raises:
        ValueError: Naming ``name``.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r:.60}")
    check_text(name, value, max_chars=ID_CHARS)
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
    problem = unstorable_problem(value)
    return f"{name} {problem}" if problem else None


def command_problem(cmd: Any) -> str | None:
    """What is wrong with a command input's keys, operator text or edit bound, or None."""
    extra = getattr(cmd, "model_extra", None)
    if extra:
        keys = sorted(map(str, extra))
        if set(keys) <= {"actor", "actor_id"}:
            return "actor and actor_id are one key: give one of them"
        return f"unknown key(s) {', '.join(keys)}"
    for field in OPERATOR_TEXT_FIELDS:
        problem = operator_text_problem(field, getattr(cmd, field, None))
        if problem:
            return problem
    max_bytes = getattr(cmd, "max_bytes", None)
    if max_bytes is not None and not 1 <= max_bytes <= MAX_EDIT_BYTES:
        # A larger bound would let edits grow the state past what get_state can return.
        return f"max_bytes must be within 1..{MAX_EDIT_BYTES}, got {max_bytes}"
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
