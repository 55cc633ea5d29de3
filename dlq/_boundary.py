"""The capture boundary: one check that whatever a store accepts can be kept everywhere.

A failure crosses three stores on its way in: the outbox (SQLite), Temporal
(the pydantic data converter, payloads of at most 2 MiB, gRPC messages of
at most 4 MiB) and the SQL read model (SQLite or PostgreSQL). :func:`check_failure`
checks a store's arguments against the limits of all of them at once, before
anything is written: what it accepts is stored exactly once and read back
unchanged; what it refuses is a ``ValueError`` naming the field and the limit.
The limits are listed in one table in ``docs/limits.md``; keep the two in step.

The data walk is iterative, so data nested 10,000 deep is refused with a
``ValueError`` instead of a ``RecursionError``, and a cycle is refused as
nesting too deep.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from dlq._fields import DATA_FIELDS, FAILURE_FIELDS, TEXT_FIELDS

if TYPE_CHECKING:
    from dlq._messages import EntryInput

__all__ = [
    "BIGINT_MAX",
    "BIGINT_MIN",
    "FLOAT_LIMIT",
    "LONG_TEXT_BYTES",
    "MAX_DEPTH",
    "NAME_CHARS",
    "SHORT_TEXT_CHARS",
    "check_entry",
    "check_failure",
    "check_json",
    "check_text",
]

# domain and failure_type: also Temporal search attributes and parts of ids.
NAME_CHARS = 100
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
# The SQL column widths (VARCHAR(n) on PostgreSQL counts characters).
SHORT_TEXT_CHARS: dict[str, int] = {
    "entity_type": 255, "entity_id": 255, "dedup_key": 255, "error_code": 255,
    "recommended_action": 100,
}
# error_message and next_action_hint, as JSON in the workflow's payload: two
# of them plus inline data (at most DLQ_PAYLOAD_INLINE_BYTES, itself at most
# 1 MiB) stay under Temporal's 2 MiB payload limit.
LONG_TEXT_BYTES = 256 * 1024
LONG_TEXT_FIELDS = ("error_message", "next_action_hint")
# The pydantic converter refuses nesting deeper than about 254 levels, and the
# workflow's own models wrap the data in a few more: 100 leaves a wide margin.
MAX_DEPTH = 100
# PostgreSQL's jsonb keeps numbers as decimals and prints a float of 1e16 or
# more as an integer: 1e300 would come back as the int 10**300, another value.
FLOAT_LIMIT = 1e16
# user_id is a BIGINT column on both engines.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def _bad_char(text: str) -> str | None:
    """What in ``text`` no store can keep, or None.

    NUL: PostgreSQL refuses it in text and jsonb. A lone surrogate: not
    Unicode, so neither UTF-8 (SQL, Temporal) nor jsonb can encode it.
    """
    if "\x00" in text:
        return (f"a NUL character (\\x00) at index {text.index(chr(0))}, "
                "which PostgreSQL cannot store")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            return (f"a lone surrogate {text[err.start]!r} at index {err.start}, "
                    "which is not valid Unicode")
    return None


def check_text(field: str, value: Any, *, max_chars: int | None = None,
               max_bytes: int | None = None, optional: bool = False) -> str | None:
    """A text field: a str with no character a store cannot keep, within its limit.

    Args:
        field: The field's name, for the error.
        value: The caller's value.
        max_chars: At most this many characters.
        max_bytes: At most this many bytes once JSON-encoded (what Temporal carries).
        optional: None is allowed (and returned).

    Raises:
        ValueError: Naming ``field`` and what is wrong.
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        kind = "a string or None" if optional else "a string"
        raise ValueError(f"{field} must be {kind}, got {type(value).__name__}")
    if max_chars is not None and len(value) > max_chars:
        raise ValueError(f"{field} is {len(value)} characters, over the {max_chars} "
                         "character limit")
    bad = _bad_char(value)
    if bad:
        raise ValueError(f"{field} contains {bad}")
    # 6 bytes is the most one character takes in JSON (\u0001): skip the
    # encoding when even that fits.
    if max_bytes is not None and 6 * len(value) + 2 > max_bytes:
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        if size > max_bytes:
            raise ValueError(f"{field} is {size} bytes, over the {max_bytes} byte limit; "
                             "put details in snapshot_data or metadata")
    return value


# A place inside a data field: None (the field itself) or (parent place, key),
# linked so that descending costs one tuple, not a copy of the path.
Place = tuple[Any, Any] | None


def _where(place: Place) -> str:
    """``['a'][0]``: where in a data field; long paths and keys are clipped."""
    steps: list[str] = []
    while place is not None:
        place, key = place
        steps.append(f"[{key!r:.40}]")
    steps.reverse()
    if len(steps) > 6:
        steps = [*steps[:3], f"...({len(steps) - 5} more)...", *steps[-2:]]
    return "".join(steps)


def _float_error(value: float) -> str | None:
    if value != value or value in (float("inf"), float("-inf")):
        return f"the float {value!r} (JSON has no NaN or infinity)"
    if not -FLOAT_LIMIT < value < FLOAT_LIMIT:
        return (f"the float {value!r}, at or beyond ±{FLOAT_LIMIT:g} (PostgreSQL "
                "would give it back as another number; store it as a string)")
    return None


def _scalar_error(value: Any) -> str | None:
    """Why a non-container ``value`` cannot be kept as JSON unchanged (a phrase), or None."""
    if value is None or isinstance(value, (bool, int)):
        return None  # ints of any size round-trip (over 4,300 digits json refuses them)
    if isinstance(value, str):
        bad = _bad_char(value)
        return f"contains {bad}" if bad else None
    if isinstance(value, float):
        return _float_error(value)
    return (f"a {type(value).__name__} (only dict, list, str, int, float, bool and None "
            "round-trip through JSON)")


def check_json(field: str, value: dict[str, Any]) -> None:
    """Check that the dict ``value`` round-trips unchanged through every store.

    Keys must be strings (JSON would turn ``1`` and ``None`` into ``"1"`` and
    ``"null"``, merging or renaming keys); values JSON types; strings free of
    NUL and lone surrogates; floats finite and under :data:`FLOAT_LIMIT`;
    nesting at most :data:`MAX_DEPTH` levels (``{}`` is one).

    Raises:
        ValueError: Naming ``field``, the path inside it and the limit.
    """
    # Runs on every store: the common cases (exact str, int, bool, None and
    # float) are tested by type identity first; anything else takes the slow path.
    stack: list[tuple[Any, int, Place]] = [(value, 1, None)]
    while stack:
        node, depth, place = stack.pop()
        is_dict = isinstance(node, dict)
        for key, item in (node.items() if is_dict else enumerate(node)):
            if is_dict and (type(key) is not str or "\x00" in key or not key.isascii()):
                if not isinstance(key, str):
                    raise ValueError(
                        f"{field}{_where(place)} has the key {key!r:.40} of type "
                        f"{type(key).__name__}: keys must be strings (JSON would change it "
                        "to a string)")
                bad = _bad_char(key)
                if bad:
                    raise ValueError(f"{field}{_where(place)} has a key that contains {bad}")
            kind = type(item)
            if kind is str:
                if "\x00" not in item and item.isascii():
                    continue
            elif kind is int or kind is bool or item is None:
                continue
            elif kind is float:
                if -FLOAT_LIMIT < item < FLOAT_LIMIT:
                    continue
            elif isinstance(item, (dict, list)):
                if depth >= MAX_DEPTH:
                    raise ValueError(f"{field} is nested deeper than the {MAX_DEPTH} level "
                                     f"limit (at {field}{_where((place, key))})")
                stack.append((item, depth + 1, (place, key)))
                continue
            bad = _scalar_error(item)
            if bad:
                verb = "" if bad.startswith("contains") else "is "
                raise ValueError(f"{field}{_where((place, key))} {verb}{bad}")


def check_data(field: str, value: Any) -> tuple[dict[str, Any], int]:
    """A data field as a reader will get it back, and its size in JSON bytes.

    Raises:
        ValueError: Naming ``field`` and what is wrong.
    """
    if value is None:
        return {}, 2
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be a dict or None, got {type(value).__name__}")
    check_json(field, value)
    try:
        # ensure_ascii: the size is then an upper bound of what the converter
        # writes (it keeps non-ASCII as UTF-8).
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:  # e.g. an int of over 4,300 digits
        raise ValueError(f"{field} must be JSON-serialisable: {err}") from None
    # A plain copy: subclasses (an IntEnum, an OrderedDict) become what a
    # reader gets back, and later changes by the caller do not reach the entry.
    return json.loads(text), len(text)


def _check_name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string, got {value!r:.80}")
    if len(value) > NAME_CHARS:
        raise ValueError(f"{field} is {len(value)} characters, over the {NAME_CHARS} "
                         "character limit")
    if not _NAME.match(value):
        raise ValueError(f"{field} may contain only letters, digits and '._-', "
                         f"got {value!r:.80}")
    return value


def _check_user_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"user_id must be an int or None, got {value!r:.80}")
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise ValueError(f"user_id {value} is outside the 64-bit integer range "
                         f"[-2**63, 2**63 - 1] of its SQL column (BIGINT)")
    return int(value)


def check_failure(fields: dict[str, Any], context: dict[str, Any], *,
                  max_data_bytes: int) -> tuple[dict[str, Any], int]:
    """The boundary check of a store: every field against every downstream limit.

    Args:
        fields: The failure's fields as bound by ``store_args``.
        context: The request context to add to ``metadata`` (may be empty).
        max_data_bytes: The four data fields' limit together
            (``DLQ_PAYLOAD_MAX_BYTES``).

    Returns:
        The fields as they will be stored (texts ``None`` -> ``""``, data
        copied, the context in ``metadata["request"]``), and the data's
        size in JSON bytes.

    Raises:
        ValueError: Naming the first field that is wrong and the limit.
    """
    values = dict(fields)
    _check_name("domain", values["domain"])
    _check_name("failure_type", values["failure_type"])
    values["user_id"] = _check_user_id(values["user_id"])
    for field in ("entity_type", "entity_id", "dedup_key"):
        check_text(field, values[field], max_chars=SHORT_TEXT_CHARS[field], optional=True)
    if values["dedup_key"] == "":
        raise ValueError("dedup_key must be a non-empty string or None, got ''")
    for field in TEXT_FIELDS:
        if values[field] is None:
            values[field] = ""
        check_text(field, values[field], max_chars=SHORT_TEXT_CHARS.get(field),
                   max_bytes=LONG_TEXT_BYTES if field in LONG_TEXT_FIELDS else None)
    sizes = {}
    for field in DATA_FIELDS:
        values[field], sizes[field] = check_data(field, values[field])
    if context:
        # Text taken from a request object is caller input like any other.
        context, sizes["request"] = check_data("request", context)
        values["metadata"] = {**values["metadata"], "request": context}
    data_bytes = sum(sizes.values())
    if data_bytes > max_data_bytes:
        listed = ", ".join(f"{f} {size / 2**20:.1f} MiB" for f, size in sizes.items())
        raise ValueError(f"entry data is {data_bytes / 2**20:.1f} MiB ({listed}), over the "
                         f"{max_data_bytes / 2**20:g} MiB limit (DLQ_PAYLOAD_MAX_BYTES)")
    return values, data_bytes


def check_entry(entry: EntryInput, *, max_data_bytes: int) -> None:
    """The boundary check of an :class:`~dlq.EntryInput` built by hand.

    ``store_entry`` takes an entry, which a caller can construct without
    ``new_entry_input``; this checks its fields as :func:`check_failure` would.

    Raises:
        ValueError: As :func:`check_failure`.
    """
    check_failure({f: getattr(entry, f) for f in FAILURE_FIELDS}, {},
                  max_data_bytes=max_data_bytes)
