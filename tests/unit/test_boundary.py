"""The capture boundary check (dlq/_boundary.py): each limit, at and over it, with no server.

What the check accepts must encode with Temporal's pydantic converter; the
integration tests (tests/integration/test_boundary_capture.py) store it for real.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.contrib.pydantic import pydantic_data_converter

from dlq import DLQConfig, new_entry_input
from dlq._boundary import (
    BIGINT_MAX,
    BIGINT_MIN,
    FLOAT_LIMIT,
    LONG_TEXT_BYTES,
    MAX_DEPTH,
    check_json,
)
from dlq._messages import EntryInput
from dlq._patch import check_patch

# Redaction off: these tests are about what the boundary keeps unchanged (a
# Luhn-valid number would otherwise come back as "[Filtered:****1234]").
CONFIG = DLQConfig(redact_enabled=False)


def nested(depth: int, leaf: Any = 1) -> dict[str, Any]:
    """A dict nested ``depth`` levels deep (``{"a": 1}`` is one)."""
    value: Any = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def entry(**fields: Any) -> EntryInput:
    return new_entry_input("payment", "PG_TIMEOUT", config=CONFIG, **fields)


def encodes(e: EntryInput) -> EntryInput:
    """``e`` through Temporal's pydantic converter and back (what the worker gets)."""
    converter = pydantic_data_converter.payload_converter
    payloads = converter.to_payloads([e])
    assert payloads[0].ByteSize() < 2 * 2**20  # Temporal's payload limit
    return converter.from_payloads(payloads, [EntryInput])[0]


# --- refused: a ValueError naming the field and the limit --------------------------------

@pytest.mark.parametrize(("fields", "match"), [
    ({"user_id": 2**70}, r"user_id .* 64-bit integer range"),
    ({"user_id": BIGINT_MAX + 1}, r"user_id .*BIGINT"),
    ({"user_id": BIGINT_MIN - 1}, r"user_id .*BIGINT"),
    ({"error_message": "a\x00b"}, r"error_message contains a NUL character"),
    ({"entity_id": "\x00"}, r"entity_id contains a NUL"),
    ({"entity_type": "o\x00"}, r"entity_type contains a NUL"),
    ({"error_code": "\x00"}, r"error_code contains a NUL"),
    ({"next_action_hint": "\x00"}, r"next_action_hint contains a NUL"),
    ({"recommended_action": "\x00"}, r"recommended_action contains a NUL"),
    ({"dedup_key": "k\x00"}, r"dedup_key contains a NUL"),
    ({"snapshot_data": {"k": "v\x00"}}, r"snapshot_data\['k'\] contains a NUL"),
    ({"request_data": {"a\x00": 1}}, r"request_data has a key that contains a NUL"),
    ({"metadata": {"l": ["ok", "\x00"]}}, r"metadata\['l'\]\[1\] contains a NUL"),
    ({"error_code": "C" * 3_000_000}, r"error_code is 3000000 characters, over the 255"),
    ({"recommended_action": "r" * 101}, r"recommended_action is 101 characters, over the 100"),
    ({"entity_id": "e" * 256}, r"entity_id is 256 characters, over the 255"),
    ({"entity_type": "t" * 256}, r"entity_type is 256 characters, over the 255"),
    ({"dedup_key": "k" * 256}, r"dedup_key is 256 characters, over the 255"),
    ({"error_message": "e" * (LONG_TEXT_BYTES + 1)}, r"error_message is \d+ bytes, over"),
    # Control characters take 6 bytes each in JSON: counted as the payload carries them.
    ({"next_action_hint": "\x01" * 50_000}, r"next_action_hint is 300002 bytes, over the 262144"),
    ({"snapshot_data": nested(MAX_DEPTH + 1)}, r"snapshot_data is nested deeper than the 100"),
    ({"snapshot_data": nested(300)}, r"snapshot_data is nested deeper"),
    ({"response_data": {"s": "\udfff"}}, r"response_data\['s'\] contains a lone surrogate"),
    ({"error_message": "x\udfff"}, r"error_message contains a lone surrogate '\\udfff' at index 1"),
    ({"entity_id": "\ud800"}, r"entity_id contains a lone surrogate"),
    ({"snapshot_data": {"\udc80": 1}}, r"snapshot_data has a key that contains a lone surrogate"),
    ({"snapshot_data": {1: "int", "1": "str"}}, r"snapshot_data has the key 1 of type int"),
    ({"snapshot_data": {None: "n"}}, r"snapshot_data has the key None of type NoneType"),
    ({"metadata": {"x": {True: 1}}}, r"metadata\['x'\] has the key True of type bool"),
    ({"metadata": {(1, 2): 1}}, r"metadata has the key \(1, 2\) of type tuple"),
    ({"metadata": {"x": float("nan")}}, r"metadata\['x'\] is the float nan"),
    ({"metadata": {"x": float("-inf")}}, r"metadata\['x'\] is the float -inf"),
    ({"metadata": {"x": 1e300}}, r"metadata\['x'\] is the float 1e\+300, at or beyond"),
    ({"metadata": {"x": -FLOAT_LIMIT}}, r"metadata\['x'\] is the float"),
    ({"request_data": {"t": (1, 2)}}, r"request_data\['t'\] is a tuple"),
    ({"request_data": {"t": {1, 2}}}, r"request_data\['t'\] is a set"),
    ({"request_data": {"b": b"x"}}, r"request_data\['b'\] is a bytes"),
    ({"request_data": {"n": 10**5000}}, r"request_data must be JSON-serialisable"),
    ({"dedup_key": ""}, r"dedup_key must be a non-empty string"),
    ({"error_code": 5}, r"error_code must be a string, got int"),
])
def test_refused_with_a_value_error_naming_field_and_limit(fields: dict[str, Any],
                                                            match: str) -> None:
    with pytest.raises(ValueError, match=match):
        entry(**fields)


def test_depth_ten_thousand_is_a_value_error_not_a_recursion_error() -> None:
    with pytest.raises(ValueError, match=r"snapshot_data is nested deeper than the 100 level"):
        entry(snapshot_data=nested(10_000))
    deep_list: Any = 1
    for _ in range(10_000):
        deep_list = [deep_list]
    with pytest.raises(ValueError, match=r"metadata is nested deeper"):
        entry(metadata={"l": deep_list})


def test_a_cycle_is_refused_as_too_deep() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError, match=r"metadata is nested deeper.*\['self'\]"):
        entry(metadata=cyclic)


def test_a_long_path_in_an_error_is_clipped() -> None:
    with pytest.raises(ValueError) as caught:
        entry(snapshot_data=nested(5_000))
    assert len(str(caught.value)) < 200 and "more)" in str(caught.value)


def test_request_context_is_checked_too() -> None:
    request = {"method": "POST", "path": "/pay\x00", "request_id": "r"}
    with pytest.raises(ValueError, match=r"request\['path'\] contains a NUL"):
        entry(request=request)


def test_a_bad_metadata_type_in_create_test_entry_is_a_value_error() -> None:
    import asyncio

    from dlq import AsyncDLQService

    async def create() -> None:
        svc = AsyncDLQService(DLQConfig(temporal_address="127.0.0.1:1"))
        try:
            await svc.create_test_entry(metadata=["x"])  # type: ignore[arg-type]
        finally:
            await svc.close()

    with pytest.raises(ValueError, match="metadata must be a dict"):
        asyncio.run(create())


def test_an_edit_patch_crosses_the_same_check() -> None:
    with pytest.raises(ValueError, match=r"snapshot_data has the key 1 of type int"):
        check_patch({"snapshot_data": {1: "x"}})
    with pytest.raises(ValueError, match=r"request_data\['a'\] contains a NUL"):
        check_patch({"request_data": {"a": "\x00"}})
    assert check_patch({"snapshot_data": {"gone": None}}) == {"snapshot_data": {"gone": None}}


# --- accepted: at each limit, and it encodes and round-trips unchanged ------------------

def test_every_limit_at_once_is_accepted_and_fits_one_temporal_payload() -> None:
    inline = CONFIG.payload_inline_bytes
    e = entry(
        entity_type="t" * 255, entity_id="\U0001F600" * 255, user_id=BIGINT_MIN,
        error_code="c" * 255, recommended_action="r" * 100, dedup_key="k" * 255,
        # Worst-case JSON: every character escaped to 6 bytes.
        error_message="\x01" * ((LONG_TEXT_BYTES - 2) // 6),
        next_action_hint="\x1f" * ((LONG_TEXT_BYTES - 2) // 6),
        snapshot_data={"blob": "x" * (inline - 1000), "deep": nested(MAX_DEPTH - 1)},
    )
    assert e.data_bytes <= inline  # stays inline: Temporal carries all of it
    back = encodes(e)
    assert back == e


def test_limits_in_range_are_accepted() -> None:
    e = entry(user_id=BIGINT_MAX, snapshot_data=nested(MAX_DEPTH),
              metadata={"big": 2**70, "huge": 10**100, "f": FLOAT_LIMIT / 10, "neg": -0.5,
                        "tiny": 5e-324, "uni": "é😀\uffff", "empty": "", "none": None,
                        "l": [1, "a", [], {}], "esc": '"\\\n'})
    assert encodes(e) == e


def test_subclasses_are_stored_as_the_plain_values_a_reader_gets_back() -> None:
    class Colour(enum.IntEnum):
        RED = 1

    class Name(enum.StrEnum):
        A = "a"

    e = entry(snapshot_data=OrderedDict(c=Colour.RED, n=Name.A))
    assert e.snapshot_data == {"c": 1, "n": "a"}
    assert type(e.snapshot_data["c"]) is int and type(e.snapshot_data) is dict


def test_the_entry_does_not_share_the_callers_dict() -> None:
    data = {"l": [1]}
    e = entry(snapshot_data=data)
    data["l"].append(2)
    assert e.snapshot_data == {"l": [1]}


# --- property: accepted means it encodes and comes back equal; refused means ValueError --

# Mostly valid JSON, with now and then (1 in 20) what the check must refuse: a
# non-str key, NaN, a float PostgreSQL would change, NUL or a lone surrogate.


def _mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 19).flatmap(lambda i: odd if i == 0 else valid)


_ODD_TEXT = st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc"]),
                    min_size=1, max_size=3)
_KEYS = _mostly(st.text(max_size=8),
                st.one_of(st.integers(), st.none(), st.booleans(), _ODD_TEXT))
_SCALARS = _mostly(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
              st.floats(min_value=-1e15, max_value=1e15), st.text(max_size=20)),
    st.one_of(st.floats(), st.floats(min_value=1e15, max_value=1e300), _ODD_TEXT))
_JSONISH = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4),
    _mostly(st.lists(inner, max_size=4), st.tuples(inner))), max_leaves=12)


def _storable(value: Any) -> bool:
    """An independent, recursive statement of the data rules (small inputs only)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _storable(k) and _storable(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    if isinstance(value, str):
        return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, float):
        return abs(value) < FLOAT_LIMIT  # False for NaN and infinities too
    return value is None or isinstance(value, int)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(_KEYS, _JSONISH, max_size=5), text=st.text(max_size=30),
       user_id=st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70)))
def test_accepted_exactly_when_storable_and_then_unchanged(data: dict[Any, Any], text: str,
                                                           user_id: int | None) -> None:
    storable = (_storable(data) and _storable(text)
                and (user_id is None or BIGINT_MIN <= user_id <= BIGINT_MAX))
    try:
        e = entry(snapshot_data=data, error_message=text, entity_id=text[:255],
                  user_id=user_id)
    except ValueError:
        assert not storable
        return
    assert storable
    assert e.snapshot_data == data  # unchanged: no key merged or renamed
    assert encodes(e) == e


def test_check_json_accepts_plain_json() -> None:
    check_json("x", {"a": [1, 2.5, "s", None, True, {"b": []}]})


def test_the_text_limits_are_the_sql_column_widths() -> None:
    import sqlalchemy as sa

    from dlq._boundary import NAME_CHARS, SHORT_TEXT_CHARS
    from dlq._db import DLQEntry

    columns = DLQEntry.__table__.c  # type: ignore[attr-defined]
    for field, chars in {**SHORT_TEXT_CHARS, "domain": NAME_CHARS,
                         "failure_type": NAME_CHARS}.items():
        assert columns[field].type.length == chars, field
    assert isinstance(columns["user_id"].type, sa.BigInteger)
    for field in ("error_message", "next_action_hint"):  # unbounded in SQL: bytes limit instead
        assert isinstance(columns[field].type, sa.Text), field
