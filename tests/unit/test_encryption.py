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
from dlq._keys import generate_key, local_key_ring, parse_key_ring
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


def test_local_key_ring_is_created_once_owner_only(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "home" / "encryption-keys"
    ring = local_key_ring(path)
    assert path.stat().st_mode & 0o777 == 0o600
    parsed = parse_key_ring(ring)
    assert parsed is not None and parsed.current.startswith("local-")
    assert local_key_ring(path) == ring  # the next `make run` reads the same key
    path.chmod(0o644)
    with pytest.raises(ValueError, match="readable by its owner only"):
        local_key_ring(path)
    path.chmod(0o600)
    path.write_text("nonsense")
    with pytest.raises(ValueError, match="encryption-keys: DLQ_ENCRYPTION_KEYS: item 1"):
        local_key_ring(path)


def test_make_run_encrypts_with_the_local_ring_unless_one_is_set(tmp_path: Path,
                                                                 monkeypatch) -> None:
    from dlq._devstack import _encrypt_locally

    monkeypatch.setenv("DLQ_HOME", str(tmp_path))
    # Empty (not absent), so that monkeypatch restores what _encrypt_locally sets:
    # delenv of an absent variable records nothing to undo.
    monkeypatch.setenv("DLQ_ENCRYPTION_KEYS", "")
    monkeypatch.setenv("DLQ_CODEC_CORS_ORIGINS", "")
    monkeypatch.delenv("DLQ_CODEC_CORS_ORIGINS")
    _encrypt_locally(9233)
    import os

    assert os.environ["DLQ_ENCRYPTION_KEYS"] == (tmp_path / "encryption-keys").read_text().strip()
    assert os.environ["DLQ_CODEC_CORS_ORIGINS"] == "http://localhost:9233,http://127.0.0.1:9233"
    monkeypatch.setenv("DLQ_ENCRYPTION_KEYS", KEY_B)
    _encrypt_locally(9233)
    assert os.environ["DLQ_ENCRYPTION_KEYS"] == KEY_B


def test_the_dev_server_points_its_web_ui_at_the_codec_server(tmp_path: Path) -> None:
    from dlq._devstack import DevStack

    stack = DevStack(DLQConfig(home=str(tmp_path), encryption_keys=KEY_A), port=7999,
                     ui_port=8999, state_dir=tmp_path, http_port=8111)
    argv = stack.server.argv
    assert argv[argv.index("--ui-codec-endpoint") + 1] == "http://127.0.0.1:8111/codec"
    plain = DevStack(DLQConfig(home=str(tmp_path)), port=7999, ui_port=8999,
                     state_dir=tmp_path, http_port=8111)
    assert "--ui-codec-endpoint" not in plain.server.argv


def test_commands_read_the_local_ring_of_dlq_home_unless_keys_are_set(tmp_path: Path,
                                                                      monkeypatch) -> None:
    monkeypatch.setenv("DLQ_HOME", str(tmp_path))
    monkeypatch.delenv("DLQ_ENCRYPTION_KEYS", raising=False)
    assert DLQConfig.from_settings().key_ring is None  # no file: no encryption
    ring = local_key_ring(tmp_path / "encryption-keys")
    assert DLQConfig.from_settings().encryption_keys == ring
    monkeypatch.setenv("DLQ_ENCRYPTION_KEYS", KEY_B)
    assert DLQConfig.from_settings().encryption_keys == KEY_B
    monkeypatch.delenv("DLQ_ENCRYPTION_KEYS")
    monkeypatch.setenv("DLQ_DATABASE_URL", f"sqlite:///{tmp_path}/elsewhere.db")
    assert DLQConfig.from_settings().key_ring is None  # another read model: not make run's
    monkeypatch.delenv("DLQ_DATABASE_URL")
    (tmp_path / "encryption-keys").chmod(0o640)
    with pytest.raises(ValueError, match="readable by its owner only"):
        DLQConfig.from_settings()


def test_the_guide_s_temporal_commands_decode_through_the_codec_server(tmp_path: Path) -> None:
    from dlq._devguide import _cli
    from dlq._devstack import DevStack

    stack = DevStack(DLQConfig(home=str(tmp_path), encryption_keys=KEY_A), port=7999,
                     ui_port=8999, state_dir=tmp_path, http_port=8111)
    assert "--codec-endpoint http://127.0.0.1:8111/codec" in _cli(stack, "workflow", "show")


def test_a_configuration_with_keys_can_be_copied_and_pickled() -> None:
    import copy
    import pickle

    config = DLQConfig(encryption_keys=f"{KEY_A},{KEY_B}")
    for twin in (copy.deepcopy(config), pickle.loads(pickle.dumps(config))):
        ring = twin.key_ring
        assert ring is not None and ring.ids == ("a", "b")
        assert ring.open_text(config.key_ring.seal_text(MARK)) == MARK  # type: ignore[union-attr]
