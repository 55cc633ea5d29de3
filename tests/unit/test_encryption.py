"""The key ring, the payload codec and sealed outbox records (pure logic, no server)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

from dlq._codec import ENCODING, EncryptionCodec
from dlq._config import DLQConfig, DLQSettings
from dlq._connect import client_options
from dlq._errors import DLQKeyError
from dlq._keys import generate_key, parse_key_ring
from dlq._messages import EntryInput
from dlq._outbox import Outbox

KEY_A, KEY_B = generate_key("a"), generate_key("b")
MARK = "walrus-tangerine-7731"


def test_generated_keys_have_the_ring_format() -> None:
    key = generate_key()
    key_id, material = key.split(":")
    assert re.fullmatch(r"k\d{14}", key_id)
    assert len(base64.b64decode(material)) == 32
    assert generate_key("x") != generate_key("x")
    ring = parse_key_ring(f" {key} , {KEY_A} ")
    assert ring is not None and ring.current == key_id and ring.ids == (key_id, "a")


@pytest.mark.parametrize(("value", "message"), [
    ("a", "item 1 must be key_id:base64"),
    (f"{KEY_A},", "item 2 is empty"),
    ("bad id:" + KEY_A.split(":")[1], "item 1: key id must be"),
    ("a:not base64!", "key 'a' is not valid base64"),
    ("a:" + base64.b64encode(b"short").decode(), "key 'a' must be 32 bytes"),
    (f"{KEY_A},{KEY_A}", "key id 'a' appears twice"),
])
def test_a_malformed_ring_is_refused_naming_the_item(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_key_ring(value)
    assert str(err.value).startswith("DLQ_ENCRYPTION_KEYS")
    assert KEY_A.split(":")[1] not in str(err.value)  # never the key material


def test_settings_refuse_a_bad_ring_and_never_show_the_keys(monkeypatch) -> None:
    monkeypatch.setenv("DLQ_ENCRYPTION_KEYS", "a:xx")
    with pytest.raises(ValueError, match="DLQ_ENCRYPTION_KEYS: key 'a' is not valid base64"):
        DLQSettings()
    monkeypatch.setenv("DLQ_ENCRYPTION_KEYS", KEY_A)
    config = DLQConfig.from_settings()
    assert config.key_ring is not None and config.key_ring.current == "a"
    secret = KEY_A.split(":")[1]
    assert secret not in repr(config) and secret not in repr(DLQSettings())
    assert secret not in repr(config.key_ring)
    assert DLQConfig().key_ring is None


def test_sealed_text_round_trips_and_a_missing_key_is_named() -> None:
    ring_a, ring_ba, ring_b = (parse_key_ring(v) for v in (KEY_A, f"{KEY_B},{KEY_A}", KEY_B))
    assert ring_a and ring_ba and ring_b
    sealed = ring_a.seal_text(MARK)
    assert sealed.startswith("dlqenc:v1:a:") and MARK not in sealed
    assert ring_ba.open_text(sealed) == MARK  # old data while the old key stays in the ring
    assert ring_ba.seal_text(MARK).startswith("dlqenc:v1:b:")  # new data under the new key
    assert ring_b.open_text("written in clear") == "written in clear"
    with pytest.raises(DLQKeyError, match="key 'a', which is not in DLQ_ENCRYPTION_KEYS"):
        ring_b.open_text(sealed)
    with pytest.raises(DLQKeyError, match="does not decrypt"):
        ring_a.open_text(sealed, aad=b"another use")
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(DLQKeyError, match="altered"):
        ring_a.open_text(tampered)


async def test_codec_round_trip_with_rotation_and_missing_key() -> None:
    payload = (await pydantic_data_converter.encode([{"card": MARK}]))[0]
    ring_a, ring_ba, ring_b = (parse_key_ring(v) for v in (KEY_A, f"{KEY_B},{KEY_A}", KEY_B))
    assert ring_a and ring_ba and ring_b
    [encoded] = await EncryptionCodec(ring_a).encode([payload])
    assert encoded.metadata["encoding"] == ENCODING
    assert encoded.metadata["encryption-key-id"] == b"a"
    assert MARK.encode() not in encoded.SerializeToString()
    assert await EncryptionCodec(ring_ba).decode([encoded]) == [payload]
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b"{}")
    assert await EncryptionCodec(ring_b).decode([plain]) == [plain]  # unencrypted passes
    with pytest.raises(DLQKeyError, match="key 'a'") as err:
        await EncryptionCodec(ring_b).decode([encoded])
    assert err.value.key_id == "a"


async def test_every_client_gets_the_codec_and_encoded_failures_when_keys_are_set() -> None:
    plain = client_options(DLQConfig(temporal_envconfig=False))["data_converter"]
    assert plain.payload_codec is None
    converter = client_options(DLQConfig(temporal_envconfig=False,
                                          encryption_keys=KEY_A))["data_converter"]
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert isinstance(converter.failure_converter, DefaultFailureConverterWithEncodedAttributes)
    [payload] = await converter.encode([{"x": MARK}])
    assert MARK.encode() not in payload.SerializeToString()
    assert await converter.decode([payload]) == [{"x": MARK}]


def _entry() -> EntryInput:
    return EntryInput(dlq_id="e1", domain="payment", failure_type="T",
                      request_data={"r": MARK}, created_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_outbox_records_are_sealed_and_unsealed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = Outbox(path, key_ring=parse_key_ring(KEY_A))
    outbox.append(_entry())
    [record] = outbox.claim(10)
    assert record.entry.request_data == {"r": MARK}
    outbox.release(record.seq, f"failed on {MARK}", retry_in=0)
    assert outbox.stats().last_error == f"failed on {MARK}"
    outbox.checkpoint()
    outbox.close()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("outbox.db")]
    assert files and all(MARK.encode() not in p.read_bytes() for p in files)
    with pytest.raises(DLQKeyError, match="'a'.*DLQ_ENCRYPTION_KEYS is not set"):
        Outbox(path).claim(10, lease=0)  # its claim lapses at once
    rotated = Outbox(path, key_ring=parse_key_ring(f"{KEY_B},{KEY_A}"))
    assert rotated.claim(10)[0].entry.request_data == {"r": MARK}


def test_outbox_reads_records_written_before_encryption(tmp_path: Path) -> None:
    Outbox(tmp_path / "o.db").append(_entry())
    [record] = Outbox(tmp_path / "o.db", key_ring=parse_key_ring(KEY_A)).claim(10)
    assert record.entry.request_data == {"r": MARK}
