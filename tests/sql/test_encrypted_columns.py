"""Encrypted data columns on SQLite and PostgreSQL, and key rotation (``dlq keys rotate``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dlq import _sql as repo
from dlq import _state as sm
from dlq._errors import DLQError, DLQKeyError
from dlq._keys import generate_key, parse_key_ring
from dlq._messages import EntryInput
from dlq._sealed import attach_key_ring
from dlq._sql.rotation import reencrypt_read_model

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY_A, KEY_B = generate_key("keyA"), generate_key("keyB")
MARK = "zebra-quartz-"  # distinctive, not secret-shaped: only encryption hides it


@pytest.fixture(autouse=True)
def _no_payloads(read_model: Engine) -> None:
    # The read model fixture empties entries and audit events; payloads too here.
    with read_model.begin() as conn:
        conn.execute(sa.text("DELETE FROM dlq_payloads"))


def _state(marker: str) -> sm.EntryState:
    entry = EntryInput(dlq_id=uuid.uuid4().hex, domain="payment", failure_type="PG_TIMEOUT",
                       entity_id="order-1", snapshot_data={"s": marker + "snap"},
                       request_data={"r": marker + "req"}, response_data={"p": marker + "resp"},
                       metadata={"m": marker + "meta"}, created_at=T0)
    state = sm.new_state(entry, workflow_id=f"dlq-{entry.dlq_id}", now=T0, rand=0.5)
    state.original_data = {"request_data": {"r": marker + "orig"}}
    return state


def _write(engine: Engine, marker: str) -> str:
    state = _state(marker)
    with Session(engine) as session:
        repo.upsert_entry(session=session, state=state, include_data=True)
        repo.append_audit_events(session=session, entry_id=state.id, events=state.audit)
        repo.save_payload(session=session, entry_id=state.id, data={"big": marker + "payload"})
        session.commit()
    return state.id


def _raw_text(engine: Engine) -> str:
    """Every data column as the database stores it (no unsealing)."""
    parts = []
    with engine.connect() as conn:
        for table, columns in (("dlq_entries", ("snapshot_data", "request_data", "response_data",
                                                "metadata", "original_data")),
                               ("dlq_audit_events", ("details",)), ("dlq_payloads", ("data",))):
            sql = ", ".join(f"CAST({c} AS TEXT)" for c in columns)
            parts += [str(v) for row in conn.execute(sa.text(f"SELECT {sql} FROM {table}"))
                      for v in row]
    return "\n".join(parts)


def _read(engine: Engine, entry_id: str) -> dict:
    with Session(engine) as session:
        data = repo.get_entry(session=session, entry_id=entry_id)
        payload = repo.load_payload(session=session, entry_id=entry_id)
    assert data is not None
    return {"snapshot": data.snapshot_data, "request": data.request_data,
            "response": data.response_data, "metadata": data.metadata, "payload": payload}


def _assert_reads(engine: Engine, entry_id: str, marker: str) -> None:
    assert _read(engine, entry_id) == {
        "snapshot": {"s": marker + "snap"}, "request": {"r": marker + "req"},
        "response": {"p": marker + "resp"}, "metadata": {"m": marker + "meta"},
        "payload": {"big": marker + "payload"}}


def test_data_columns_are_sealed_and_read_back_in_clear(read_model: Engine) -> None:
    attach_key_ring(read_model, parse_key_ring(KEY_A))
    entry_id = _write(read_model, MARK)
    raw = _raw_text(read_model)
    assert MARK not in raw
    assert raw.count("dlqenc:v1:keyA:") == 7  # 5 entry columns, 1 audit event, 1 payload
    _assert_reads(read_model, entry_id, MARK)
    with Session(read_model) as session:  # filtering columns stay in clear
        row = session.execute(sa.text("SELECT domain, status, entity_id FROM dlq_entries")).one()
    assert tuple(row) == ("payment", "pending", "order-1")


def test_without_the_ring_a_sealed_row_names_its_key(read_model: Engine) -> None:
    attach_key_ring(read_model, parse_key_ring(KEY_A))
    entry_id = _write(read_model, MARK)
    attach_key_ring(read_model, None)
    with pytest.raises(DLQKeyError, match="'keyA'.*DLQ_ENCRYPTION_KEYS is not set"):
        _read(read_model, entry_id)
    attach_key_ring(read_model, parse_key_ring(KEY_B))
    with pytest.raises(DLQKeyError, match="'keyA', which is not in DLQ_ENCRYPTION_KEYS") as err:
        _read(read_model, entry_id)
    assert err.value.key_id == "keyA"


def test_rotation_from_a_to_b_then_b_alone_reads_everything(read_model: Engine) -> None:
    plain = _write(read_model, MARK + "plain-")  # written before encryption was on
    attach_key_ring(read_model, parse_key_ring(KEY_A))
    under_a = _write(read_model, MARK + "a-")
    attach_key_ring(read_model, parse_key_ring(f"{KEY_B},{KEY_A}"))
    under_b = _write(read_model, MARK + "b-")  # the new first key encrypts new data
    raw = _raw_text(read_model)
    assert raw.count("dlqenc:v1:keyB:") == 7 and raw.count("dlqenc:v1:keyA:") == 7

    result = reencrypt_read_model(engine=read_model, batch=2)
    assert result.key_id == "keyB"
    assert result.scanned == {"dlq_entries": 3, "dlq_audit_events": 3, "dlq_payloads": 3}
    assert result.rewritten == {"dlq_entries": 2, "dlq_audit_events": 2, "dlq_payloads": 2}
    raw = _raw_text(read_model)
    assert MARK not in raw and "keyA" not in raw and raw.count("dlqenc:v1:keyB:") == 21

    attach_key_ring(read_model, parse_key_ring(KEY_B))
    for entry_id, marker in ((plain, "plain-"), (under_a, "a-"), (under_b, "b-")):
        _assert_reads(read_model, entry_id, MARK + marker)
    again = reencrypt_read_model(engine=read_model)
    assert again.rewritten == {"dlq_entries": 0, "dlq_audit_events": 0, "dlq_payloads": 0}


def test_rotation_needs_a_ring(read_model: Engine) -> None:
    attach_key_ring(read_model, None)
    with pytest.raises(DLQError, match="DLQ_ENCRYPTION_KEYS is not set"):
        reencrypt_read_model(engine=read_model)
