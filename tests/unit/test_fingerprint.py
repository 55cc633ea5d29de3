"""Failure fingerprints: what lands in one group and what does not (pure, no I/O)."""

from __future__ import annotations

import pytest

from dlq._fingerprint import fingerprint, is_fingerprint, normalize_message


@pytest.mark.parametrize("messages", [
    ["order 12345 timed out after 30s", "order 9 timed out after 31s"],
    ["card 1b4e28ba-2fa1-11d2-883f-0016d3cca427 declined",
     "card 6F9619FF-8B86-D011-B42D-00C04FC964FF declined"],
    ["object 0x7f3a12 at deadbeef1234 failed", "object 0xFF at 0123abcdef99 failed"],
    ["payment ord_8f3k2 failed at 2026-11-29T06:30:00Z",
     "payment ord_zz91 failed at 2025-01-02 03:04:05.123+01:00"],
    ["connect to 10.0.0.12:5432 refused", "connect to 192.168.1.1:6543 refused"],
    ["user \"alice\" not found (mail alice@example.com)",
     "user \"bob\" not found (mail b.o+b@corp.example.org)"],
    ["txn-000123 rejected: balance -12.50", "txn-77 rejected: balance 3,000.00"],
])
def test_messages_that_differ_only_in_numbers_and_ids_share_a_fingerprint(
        messages: list[str]) -> None:
    prints = {fingerprint("payment", "PG_TIMEOUT", "E42", m) for m in messages}
    assert len(prints) == 1
    assert len({normalize_message(m) for m in messages}) == 1


def test_different_error_codes_domains_types_or_words_make_different_groups() -> None:
    base = fingerprint("payment", "PG_TIMEOUT", "E42", "order 1 timed out")
    assert fingerprint("payment", "PG_TIMEOUT", "E43", "order 1 timed out") != base
    assert fingerprint("webhook", "PG_TIMEOUT", "E42", "order 1 timed out") != base
    assert fingerprint("payment", "PG_DECLINED", "E42", "order 1 timed out") != base
    assert fingerprint("payment", "PG_TIMEOUT", "E42", "order 1 was refused") != base
    # Field boundaries matter: ("a b", "c") is not ("a", "b c").
    assert fingerprint("a b", "c", "", "") != fingerprint("a", "b c", "", "")


def test_normalised_message_keeps_the_words_and_drops_the_values() -> None:
    assert normalize_message("order 12345 timed out after 30s") == \
        "order <n> timed out after <n>s"
    assert normalize_message("Payment ord_8f3k2 for bob@example.com") == \
        "Payment <id> for <email>"
    assert normalize_message("  many   spaces\n\tand lines ") == "many spaces and lines"
    assert normalize_message(None) == ""
    # Only the start decides: a long trace after the message does not split the group.
    long_a = "boom " + "x" * 400 + " tail a"
    long_b = "boom " + "x" * 400 + " tail b"
    assert fingerprint("d", "t", "", long_a) == fingerprint("d", "t", "", long_b)


def test_a_fingerprint_is_sixteen_lowercase_hex_characters() -> None:
    value = fingerprint("payment", "PG_TIMEOUT", None, None)
    assert is_fingerprint(value) and len(value) == 16
    assert fingerprint("payment", "PG_TIMEOUT", None, None) == value  # stable
    assert not is_fingerprint(value.upper())
    assert not is_fingerprint(value[:-1])
    assert not is_fingerprint(None)
    # Lone surrogates (which the DLQ's boundary refuses anyway) do not crash hashing.
    assert is_fingerprint(fingerprint("d", "t", "", "bad \ud800 text"))
