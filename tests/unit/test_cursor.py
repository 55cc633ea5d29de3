"""The keyset cursor codec (pure logic; the listings that use it are in test_queries)."""

from __future__ import annotations

import base64
import hmac
from datetime import UTC, datetime

import pytest

from dlq._filters import decode_cursor, encode_cursor, parse_filters

KEY = b"k" * 32
WEBHOOK = parse_filters({"domain": "webhook"})


@pytest.mark.parametrize("entry_id", ["0b6c1f2e-3d4a-4b5c-9d8e-7f6a5b4c3d2e", "a|b|c", "é|ü"])
@pytest.mark.parametrize("created", ["2026-01-02T03:04:05+00:00",
                                     "2026-01-02T03:04:05.000123+00:00"])
def test_a_cursor_round_trips_any_id_and_time(entry_id: str, created: str) -> None:
    cursor = encode_cursor(created_at=created, entry_id=entry_id, filters=WEBHOOK, secret=KEY)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor  # URL-safe, unpadded
    when, got = decode_cursor(cursor, filters=WEBHOOK, secret=KEY)
    assert (when, got) == (datetime.fromisoformat(created), entry_id)
    assert when.tzinfo is not None and when.utcoffset() == UTC.utcoffset(None)


def test_another_key_or_listing_is_refused() -> None:
    cursor = encode_cursor(created_at="2026-01-02T03:04:05+00:00", entry_id="x",
                           filters=WEBHOOK, secret=KEY)
    with pytest.raises(ValueError, match="forged, altered or truncated"):
        decode_cursor(cursor, filters=WEBHOOK, secret=b"other key")
    with pytest.raises(ValueError, match="listing with other filters"):
        decode_cursor(cursor, filters=parse_filters({"domain": "payment"}), secret=KEY)


@pytest.mark.parametrize("mangle", [
    lambda c: c[:-4],                                   # truncated
    lambda c: c[:30] + ("A" if c[30] != "A" else "B") + c[31:],  # one character changed
    lambda c: "",                                       # empty
    lambda c: "!!not base64!!",
])
def test_a_damaged_cursor_is_a_clear_value_error(mangle) -> None:
    cursor = encode_cursor(created_at="2026-01-02T03:04:05+00:00", entry_id="x",
                           filters=WEBHOOK, secret=KEY)
    with pytest.raises(ValueError, match="invalid cursor"):
        decode_cursor(mangle(cursor), filters=WEBHOOK, secret=KEY)


def test_a_validly_signed_body_of_the_wrong_shape_is_refused() -> None:
    # Only the key holder can sign, but a body it never wrote must still fail cleanly.
    for body in (b"no separators", b"not-a-time|0123456789abcdef|x", b"\xff\xfe|x|y"):
        sig = hmac.digest(KEY, body, "sha256")[:16]
        cursor = base64.urlsafe_b64encode(sig + body).rstrip(b"=").decode()
        with pytest.raises(ValueError, match="invalid cursor"):
            decode_cursor(cursor, filters=WEBHOOK, secret=KEY)
