"""List filters, SLA thresholds and keyset cursors: parsing and checking only, no SQL."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dlq._checks import SQL_INT_MAX, SQL_INT_MIN, check_text
from dlq._fingerprint import is_fingerprint
from dlq._models import DLQStatus

__all__ = ["TEXT_FILTER_CHARS", "EntryFilters", "check_filter_keys", "decode_cursor",
           "encode_cursor", "parse_duration", "parse_filters", "parse_sla_thresholds"]

# Most characters of each text filter: the column's size (a longer value could
# match nothing), and for the error_message search a pattern SQLite accepts
# (its LIKE patterns are limited to 50,000 bytes).
TEXT_FILTER_CHARS = {"domain": 100, "failure_type": 100, "entity_type": 255, "entity_id": 255,
                     "error_code": 255, "error_message": 4000}
_STRING_KEYS = tuple(TEXT_FILTER_CHARS)
FILTER_KEYS = ("status", *_STRING_KEYS, "user_id", "created_after", "created_before", "group")


@dataclass(frozen=True)
class EntryFilters:
    """Validated list filters (all optional; ``error_message`` is a case-insensitive match)."""

    status: tuple[str, ...] = ()
    domain: str | None = None
    failure_type: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    user_id: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    # A failure group's fingerprint (dlq._fingerprint).
    group: str | None = None

    def fingerprint(self) -> str:
        """A stable digest, so a cursor only continues the listing it came from."""
        return _fingerprint(self)


@functools.lru_cache(maxsize=256)
def _fingerprint(filters: EntryFilters) -> str:
    # Cached: a traversal checks and signs the same filters on every page.
    raw = json.dumps({k: getattr(filters, k) for k in FILTER_KEYS}, default=str,
                     sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _datetime(key: str, value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"filter {key!r} must be an ISO 8601 datetime, "
                             f"got {value!r}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"filter {key!r} must be a datetime or ISO string, "
                         f"got {type(value).__name__}")
    try:
        # In UTC, as SQL compares them; year 1 at +14:00 has no UTC time.
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError(f"filter {key!r} is out of range: {value.isoformat()} has no "
                         "UTC time") from None


def check_filter_keys(filters: Any, allowed: tuple[str, ...], *,
                      what: str = "filter") -> dict[str, Any]:
    """``filters`` if it is a dict of ``allowed`` keys (``{}`` for None).

    Raises:
        ValueError: Not a dict, or naming the unknown keys and the allowed ones.
    """
    if filters is None:
        return {}
    if not isinstance(filters, dict):
        raise ValueError(f"filters must be a dict, got {type(filters).__name__}")
    unknown = sorted(set(filters) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} key(s) {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(allowed)}")
    return filters


def parse_filters(filters: dict[str, Any] | None) -> EntryFilters:
    """Check a filter dict and turn it into :class:`EntryFilters`.

    Raises:
        ValueError: Naming an unknown key or a key whose value has the wrong type.
    """
    out: dict[str, Any] = {}
    for key, value in check_filter_keys(filters, FILTER_KEYS).items():
        if value is None or value == "" or value == []:
            continue
        if key == "status":
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list | tuple | set) or not all(
                    isinstance(v, str) for v in values):
                raise ValueError(f"filter 'status' must be a status or a list of them, "
                                 f"got {value!r}")
            bad = [v for v in values if v not in DLQStatus.__members__.values()]
            if bad:
                raise ValueError(f"filter 'status' has unknown status(es) {bad}; allowed: "
                                 f"{', '.join(s.value for s in DLQStatus)}")
            out["status"] = tuple(sorted(set(values)))
        elif key == "user_id":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"filter 'user_id' must be an int, got {value!r:.60}")
            if not SQL_INT_MIN <= value <= SQL_INT_MAX:
                raise ValueError("filter 'user_id' must fit a 64-bit integer "
                                 f"(-2**63..2**63-1), got {value:.3g}")
            out[key] = value
        elif key in ("created_after", "created_before"):
            out[key] = _datetime(key, value)
        elif key == "group":
            if not is_fingerprint(value):
                raise ValueError(f"filter 'group' must be a group fingerprint (16 lowercase "
                                 f"hex characters), got {value!r}")
            out[key] = value
        else:
            out[key] = check_text(f"filter {key!r}", value, max_chars=TEXT_FILTER_CHARS[key])
    return EntryFilters(**out)


# --- SLA thresholds ------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from ``"15m"``, ``"2h"``, ``"1.5d"``, ``"30s"`` or a number of seconds.

    Raises:
        ValueError: For anything else, or a duration that is not positive.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 2h, 1d)")
        seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def parse_sla_thresholds(raw: str | dict[str, Any] | None) -> dict[str, float]:
    """Parse ``DLQ_SLA_THRESHOLDS`` (JSON object: domain -> duration; ``*`` is the default).

    Raises:
        ValueError: Naming the domain whose value is malformed, or if the JSON is invalid.
    """
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(f"SLA thresholds must be a JSON object: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError("SLA thresholds must be a JSON object of domain -> duration")
    out = {}
    for domain, value in raw.items():
        try:
            out[str(domain)] = parse_duration(value)
        except ValueError as err:
            raise ValueError(f"SLA threshold for {domain!r}: {err}") from None
    return out


# --- keyset cursors -------------------------------------------------------------------


# A cursor is base64url(signature + body) with body "<created_at ISO>|<filters
# fingerprint>|<entry id>" (the id last: it is the only part that could hold a
# "|"). Plain text, not JSON: a deep traversal signs and checks one per page, and
# json cost half of the cursor's time.


def encode_cursor(*, created_at: str, entry_id: str, filters: EntryFilters,
                  secret: bytes) -> str:
    """An opaque, signed cursor pointing after (created_at, id) in one listing.

    Args:
        created_at: ISO 8601 time of the last entry listed, as its list row has it.
        entry_id: Id of the last entry listed.
        filters: The listing's filters (a cursor only continues its own listing).
        secret: Signing key.
    """
    body = f"{created_at}|{filters.fingerprint()}|{entry_id}".encode()
    sig = hmac.digest(secret, body, "sha256")[:16]
    return base64.urlsafe_b64encode(sig + body).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, filters: EntryFilters, secret: bytes) -> tuple[datetime, str]:
    """Check a cursor's signature and listing, and return its (created_at, id).

    Raises:
        ValueError: If the cursor was forged, altered, truncated, or belongs
            to a listing with other filters.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sig, body = raw[:16], raw[16:]
        if not hmac.compare_digest(sig, hmac.digest(secret, body, "sha256")[:16]):
            raise ValueError("signature mismatch")
        created, fingerprint, entry_id = body.decode().split("|", 2)
        when = datetime.fromisoformat(created)
    except (ValueError, TypeError) as err:  # binascii and Unicode errors are ValueErrors
        raise ValueError(f"invalid cursor (forged, altered or truncated): {err}") from None
    if fingerprint != filters.fingerprint():
        raise ValueError("invalid cursor: it belongs to a listing with other filters")
    return when, entry_id
