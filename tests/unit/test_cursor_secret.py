"""The cursor signing key without DLQ_CURSOR_SECRET: random, kept in DLQ_HOME, never derived."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest

from dlq import DLQConfig, DLQService
from dlq._db import create_db_engine, migrate
from dlq._filters import encode_cursor, parse_filters
from dlq._local_secret import local_secret


def _config(home: Path, **kwargs: object) -> DLQConfig:
    return DLQConfig(home=str(home), database_url=f"sqlite:///{home}/dlq.db", **kwargs)


def test_the_key_is_random_kept_in_home_with_mode_0600_and_reused(tmp_path: Path) -> None:
    key = _config(tmp_path).cursor_key
    path = tmp_path / "cursor.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(path.read_text().strip())) == 32
    # A later process (a new configuration) signs with the same key...
    assert _config(tmp_path).cursor_key == key
    # ...another home with the same database URL does not.
    other = DLQConfig(home=str(tmp_path / "other"), database_url=f"sqlite:///{tmp_path}/dlq.db")
    assert other.cursor_key != key


def test_the_key_is_not_derived_from_the_database_url(tmp_path: Path) -> None:
    config = _config(tmp_path)
    old = hashlib.sha256(f"dlq-cursor:{config.database_url}".encode()).digest()
    assert config.cursor_key != old


def test_a_configured_secret_is_used_and_no_file_is_made(tmp_path: Path) -> None:
    config = _config(tmp_path, cursor_secret="s" * 32)
    assert config.cursor_key == hashlib.sha256(b"s" * 32).digest()
    assert not (tmp_path / "cursor.key").exists()


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    seen: list[bytes] = []
    threads = [threading.Thread(target=lambda: seen.append(local_secret(str(tmp_path), "k")))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1 and len(seen) == 8
    assert os.listdir(tmp_path) == ["k"]  # no temporary file left behind


def test_a_damaged_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cursor.key").write_text("not hex")
    with pytest.raises(ValueError, match="cursor.key must hold a hex secret"):
        _ = _config(tmp_path).cursor_key


def test_a_cursor_forged_with_the_old_url_derivation_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    migrate(create_db_engine(config.database_url))
    old_key = hashlib.sha256(f"dlq-cursor:{config.database_url}".encode()).digest()
    forged = encode_cursor(created_at="2026-01-02T03:04:05+00:00", entry_id="x",
                           filters=parse_filters({}), secret=old_key)
    service = DLQService(config)
    try:
        with pytest.raises(ValueError, match="forged, altered or truncated"):
            service.iter_entries({}, cursor=forged)
        # The real key still pages (an empty listing here, so no next cursor).
        assert service.iter_entries({}, limit=10) == {"results": [], "next_cursor": None}
    finally:
        service.close()


def test_a_home_that_cannot_hold_the_file_names_it_and_the_settings(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    home = tmp_path / "plain-file" / "dlq"  # under a file: no folder can be made there
    with pytest.raises(OSError, match="cursor.key .*set DLQ_CURSOR_SECRET or DLQ_HOME"):
        _ = DLQConfig(home=str(home), database_url="sqlite://").cursor_key
