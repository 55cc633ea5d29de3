"""Which delivery errors quarantine an outbox record, and records that cannot be read.

The relay runs for real against a real outbox file; its destination is a
function that answers as Temporal does (``RPCError`` with a status).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from temporalio.service import RPCError, RPCStatusCode

from dlq import DLQConfig
from dlq._entry import new_entry_input
from dlq._messages import EntryInput
from dlq._outbox import Outbox
from dlq._quarantine import permanent_rejection
from dlq._relay import Relay


def _rpc(status: RPCStatusCode, message: str) -> RPCError:
    return RPCError(message, status, b"")


@pytest.mark.parametrize(("err", "permanent"), [
    (_rpc(RPCStatusCode.INVALID_ARGUMENT, "Blob data size exceeds limit."), "invalid"),
    (_rpc(RPCStatusCode.RESOURCE_EXHAUSTED,
          "grpc: received message after decompression larger than max 4194304"), "too large"),
    (_rpc(RPCStatusCode.RESOURCE_EXHAUSTED, "namespace rate limit exceeded"), None),
    (_rpc(RPCStatusCode.UNAVAILABLE, "tcp connect error"), None),
    (_rpc(RPCStatusCode.DEADLINE_EXCEEDED, "deadline exceeded"), None),
    (TimeoutError(), None),
    (ConnectionRefusedError(), None),
    (RecursionError("maximum recursion depth exceeded"), "cannot be encoded"),
    (UnicodeEncodeError("utf-8", "\udfff", 0, 1, "surrogates not allowed"), "cannot be encoded"),
])
def test_only_permanent_refusals_quarantine(err: BaseException, permanent: str | None) -> None:
    reason = permanent_rejection(err)
    if permanent is None:
        assert reason is None
    else:
        assert reason is not None and permanent in reason


def _entry(failure_type: str) -> EntryInput:
    return new_entry_input("quarantine", failure_type, config=DLQConfig())


def test_the_relay_quarantines_the_refused_record_and_delivers_the_rest(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    poison, good = _entry("POISON"), _entry("GOOD")
    outbox.append(poison)
    outbox.append(good)
    delivered: list[str] = []

    async def deliver(entry: EntryInput) -> None:
        if entry.failure_type == "POISON":
            raise _rpc(RPCStatusCode.INVALID_ARGUMENT, "Blob data size exceeds limit.")
        delivered.append(entry.dlq_id)

    relay = Relay(outbox, deliver, permanent=permanent_rejection)
    assert asyncio.run(relay.drain(timeout=10)) == 1
    assert delivered == [good.dlq_id] and relay.quarantined == 1
    stats = outbox.stats()
    assert stats.depth == 0 and stats.quarantined == 1
    [record] = outbox.quarantined()
    assert record.dlq_id == poison.dlq_id and record.attempts == 1
    assert record.reason == "Temporal refused the record as invalid: Blob data size exceeds limit."
    assert EntryInput.model_validate_json(record.payload) == poison


def test_a_transient_error_is_retried_not_quarantined(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.append(_entry("FLAKY"))

    async def deliver(entry: EntryInput) -> None:
        raise _rpc(RPCStatusCode.UNAVAILABLE, "tcp connect error")

    relay = Relay(outbox, deliver, permanent=permanent_rejection)
    assert asyncio.run(relay.drain_once()) == 0
    stats = outbox.stats()
    assert stats.depth == 1 and stats.failing == 1 and stats.quarantined == 0


def test_an_unreadable_record_is_quarantined_at_claim_not_blocking_the_batch(
        tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    good = _entry("GOOD")
    with sqlite3.connect(tmp_path / "outbox.db") as conn:
        conn.execute("INSERT INTO outbox (dlq_id, payload, created_at) VALUES (?, ?, 0)",
                     ("damaged-1", '{"domain": "x"'))
    outbox.append(good)
    claimed = outbox.claim(10)
    assert [r.dlq_id for r in claimed] == [good.dlq_id]
    record = outbox.get_quarantined("damaged-1")
    assert record is not None and record.reason.startswith("unreadable record: ValidationError")
    assert outbox.delete_quarantined("damaged-1") is True
    assert outbox.delete_quarantined("damaged-1") is False
    assert outbox.stats().quarantined == 0


def test_a_sealed_record_is_shown_opened_and_listed_without_its_key(tmp_path: Path) -> None:
    from dlq._keys import generate_key, parse_key_ring
    from dlq._quarantine import _summary

    ring = parse_key_ring(generate_key("q"))
    sealed = Outbox(tmp_path / "outbox.db", key_ring=ring)
    poison = _entry("POISON")
    sealed.append(poison)
    [record] = sealed.claim(10)
    sealed.quarantine(record.seq, "Temporal refused the record as too large")
    with sqlite3.connect(tmp_path / "outbox.db") as conn:
        (stored,) = conn.execute("SELECT payload FROM outbox_quarantine").fetchone()
    assert "POISON" not in stored  # still encrypted at rest
    shown = _summary(sealed.get_quarantined(poison.dlq_id), with_entry=True)
    assert (shown["domain"], shown["failure_type"]) == ("quarantine", "POISON")
    assert shown["entry"]["dlq_id"] == poison.dlq_id
    # Without the key the list still works; the entry reads as unreadable.
    [listed] = Outbox(tmp_path / "outbox.db").quarantined()
    keyless = _summary(listed, with_entry=True)
    assert keyless["domain"] is None and "unreadable_payload" in keyless["entry"]
