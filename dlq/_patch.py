"""Edit before replay: JSON merge patches (RFC 7396) on an entry's data, and their diff.

Pure functions, so the entry workflow applies an edit deterministically and
tests call them directly. Only ``request_data`` and ``snapshot_data`` are
editable: they are what a replay handler re-sends; the response and the
metadata are evidence of what happened and stay as captured.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from dlq._boundary import check_data

__all__ = ["EDITABLE_FIELDS", "apply_edit", "check_patch", "data_diff", "merge_patch",
           "parse_assignments"]

EDITABLE_FIELDS = ("request_data", "snapshot_data")
# A value in an audited diff is cut to this many characters of JSON: the diff
# says what changed, and a huge value would bloat the workflow's history.
DIFF_VALUE_CHARS = 500
MAX_DIFF_ITEMS = 200
_MISSING = object()


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7396): objects merge, ``null`` removes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def check_patch(patch: Any) -> dict[str, dict[str, Any]]:
    """Check an edit's shape: ``{"request_data": {...}, "snapshot_data": {...}}`` (either or both).

    Raises:
        ValueError: Naming what is wrong.
    """
    if not isinstance(patch, dict) or not patch:
        raise ValueError("an edit needs request_data and/or snapshot_data, each a JSON "
                         "merge patch object")
    unknown = sorted(set(patch) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValueError(f"cannot edit {', '.join(map(repr, unknown))}; editable: "
                         f"{', '.join(EDITABLE_FIELDS)}")
    for name, value in patch.items():
        if not isinstance(value, dict):
            raise ValueError(f"{name} patch must be a JSON object, got {type(value).__name__}")
        # The capture boundary's data check: an edit must fit every store as
        # captured data does.
        check_data(name, value)
    return patch


def _short(value: Any) -> Any:
    text = json.dumps(value, sort_keys=True)
    if len(text) <= DIFF_VALUE_CHARS:
        return value
    return {"truncated": True, "json_prefix": text[:DIFF_VALUE_CHARS], "chars": len(text)}


def data_diff(before: Any, after: Any, path: str) -> list[dict[str, Any]]:
    """What changed from ``before`` to ``after``, one item per changed leaf.

    Each item has ``path`` (dotted, from ``path``), ``op`` (``add``,
    ``remove`` or ``replace``) and ``old``/``new`` values (long ones cut).
    """
    out: list[dict[str, Any]] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, _MISSING), b.get(key, _MISSING), f"{where}.{key}")
            return
        if a is _MISSING and b is not _MISSING:
            out.append({"path": where, "op": "add", "new": _short(b)})
        elif b is _MISSING and a is not _MISSING:
            out.append({"path": where, "op": "remove", "old": _short(a)})
        elif a != b or type(a) is not type(b):
            out.append({"path": where, "op": "replace", "old": _short(a), "new": _short(b)})

    walk(before, after, path)
    return out[:MAX_DIFF_ITEMS]


def apply_edit(data: dict[str, dict[str, Any]], patch: dict[str, dict[str, Any]], *,
               max_bytes: int) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Apply an edit to an entry's editable data.

    Args:
        data: The current ``request_data`` and ``snapshot_data``.
        patch: Merge patches by field (see :func:`check_patch`).
        max_bytes: Largest JSON size the edited fields may have together.

    Returns:
        The edited fields (only those patched) and the diff.

    Raises:
        ValueError: The edit is malformed, changes nothing, or makes the data too large.
    """
    check_patch(patch)
    edited = {name: merge_patch(data.get(name) or {}, value) for name, value in patch.items()}
    diff = [item for name in edited for item in data_diff(data.get(name) or {}, edited[name],
                                                         name)]
    if not diff:
        raise ValueError("the edit changes nothing")
    size = sum(len(json.dumps({**data, **edited}[name]).encode()) for name in EDITABLE_FIELDS)
    if size > max_bytes:
        raise ValueError(f"edited data would be {size} bytes, over the {max_bytes} byte "
                         "limit for data carried by the entry's workflow "
                         "(DLQ_PAYLOAD_INLINE_BYTES)")
    return edited, diff


def parse_assignments(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """Turn ``field.path=value`` strings into a merge patch (for ``dlq edit --set``).

    The value is parsed as JSON when it is valid JSON (``42``, ``true``,
    ``null``, ``{"a": 1}``, ``"text"``) and taken as a string otherwise;
    ``null`` removes the key.

    Raises:
        ValueError: For an item without ``=`` or a path outside the editable fields.
    """
    patch: dict[str, Any] = {}
    for item in assignments:
        path, sep, raw = item.partition("=")
        keys = path.strip().split(".")
        if not sep or len(keys) < 2 or not all(keys):
            raise ValueError(f"--set {item!r}: use field.key[.key...]=value, e.g. "
                             "request_data.amount=1299")
        if keys[0] not in EDITABLE_FIELDS:
            raise ValueError(f"--set {item!r}: {keys[0]!r} is not editable; editable: "
                             f"{', '.join(EDITABLE_FIELDS)}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = patch
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = value
    return patch
