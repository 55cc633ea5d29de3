"""``dlq keys generate`` and ``dlq keys rotate`` (a real SQLite read model, no Temporal needed)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from dlq import _sql as repo
from dlq._cli import app
from dlq._cli._common import BAD_INPUT, ERROR
from dlq._db import create_db_engine, migrate
from dlq._keys import generate_key, parse_key_ring


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("DLQ_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("DLQ_HOME", str(tmp_path))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_generate_prints_a_key_in_the_ring_format(invoke) -> None:
    out = invoke("keys", "generate", "--id", "prod-2026")
    assert out.exit_code == 0
    key_id, material = out.output.strip().split(":")
    assert key_id == "prod-2026" and len(base64.b64decode(material)) == 32
    assert parse_key_ring(out.output.strip()) is not None
    bad = invoke("keys", "generate", "--id", "no spaces")
    assert bad.exit_code == BAD_INPUT and "Traceback" not in bad.output


def test_rotate_reencrypts_the_read_model(invoke, monkeypatch, tmp_path: Path) -> None:
    out = invoke("keys", "rotate")
    assert out.exit_code == ERROR
    assert "DLQ_ENCRYPTION_KEYS is not set" in out.output and "Traceback" not in out.output

    key_a, key_b = generate_key("a"), generate_key("b")
    engine = create_db_engine(f"sqlite:///{tmp_path}/dlq.db", key_ring=parse_key_ring(key_a))
    migrate(engine)
    with Session(engine) as session:
        repo.save_payload(session=session, entry_id="e1", data={"x": "kept"})
        session.commit()
    monkeypatch.setenv("DLQ_ENCRYPTION_KEYS", f"{key_b},{key_a}")
    out = invoke("keys", "rotate", "--batch", "1")
    assert out.exit_code == 0, out.output
    assert "now encrypted with key 'b'" in out.output
    engine.dispose()
    only_b = create_db_engine(f"sqlite:///{tmp_path}/dlq.db", key_ring=parse_key_ring(key_b))
    with Session(only_b) as session:
        assert repo.load_payload(session=session, entry_id="e1") == {"x": "kept"}
    only_b.dispose()
