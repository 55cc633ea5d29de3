"""Capture input, configuration and handler registry: no Temporal needed."""

from __future__ import annotations

import inspect
import math
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pydantic
import pytest
from sqlmodel import Session, select

import dlq
from dlq import AsyncDLQService, DLQConfig, DLQService, new_entry_input
from dlq._db import DLQEntry, create_db_engine, migrate
from dlq._outbox import Outbox


def valid(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = dict(domain="payment", failure_type="PG_TIMEOUT",
                                   snapshot_data={"order": 1})
    args.update(overrides)
    return args


@pytest.mark.parametrize(("overrides", "field"), [
    ({"domain": ""}, "domain"),
    ({"domain": None}, "domain"),
    ({"domain": "x" * 101}, "domain"),
    ({"domain": "pay ment"}, "domain"),
    ({"domain": "pay/ment"}, "domain"),
    ({"failure_type": ""}, "failure_type"),
    ({"failure_type": "PG TIMEOUT"}, "failure_type"),
    ({"failure_type": "é"}, "failure_type"),
    ({"failure_type": 42}, "failure_type"),
    ({"snapshot_data": {"when": object()}}, "snapshot_data"),
    ({"request_data": {"x": {1, 2}}}, "request_data"),
    ({"response_data": {"x": math.nan}}, "response_data"),
    ({"metadata": ["not", "a", "dict"]}, "metadata"),
    ({"user_id": "17"}, "user_id"),
    ({"user_id": True}, "user_id"),
    ({"entity_id": "x" * 256}, "entity_id"),
    ({"entity_type": 5}, "entity_type"),
    ({"error_message": b"bytes"}, "error_message"),
    ({"error_code": 500}, "error_code"),
])
def test_bad_input_is_a_value_error_naming_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        new_entry_input(**valid(**overrides), config=DLQConfig())


def test_valid_names_and_limits_accepted() -> None:
    entry = new_entry_input(**valid(domain="a" * 100, failure_type="v1.PG_time-out_2"),
                            config=DLQConfig())
    assert entry.domain == "a" * 100 and entry.failure_type == "v1.PG_time-out_2"


def test_entry_input_carries_config_and_request_context() -> None:
    request = SimpleNamespace(method="POST", path="/pay", headers={"X-Request-ID": "req-9"})
    config = DLQConfig(max_replay_attempts=5, retry_delay=1.5, expiry_hours=0.25)
    entry = new_entry_input(**valid(metadata={"k": "v"}), request=request, config=config)
    assert (entry.max_retries, entry.retry_delay, entry.expiry_hours) == (5, 1.5, 0.25)
    assert entry.metadata == {"k": "v", "request": {"method": "POST", "path": "/pay",
                                                     "request_id": "req-9"}}
    assert entry.created_at is not None and entry.created_at.tzinfo is not None


def test_config_defaults_are_the_reference_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("DLQ_"):
            monkeypatch.delenv(name)
    cfg = DLQConfig.from_settings()
    assert (cfg.enabled, cfg.retention_days, cfg.max_replay_attempts, cfg.retry_delay,
            cfg.expiry_hours, cfg.batch_size) == (True, 30, 2, 60, 72, 10)
    assert cfg == DLQConfig()
    assert (cfg.temporal_address, cfg.namespace, cfg.task_queue) == ("localhost:7233",
                                                                      "default", "dlq")


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"DLQ_ENABLED": "false", "DLQ_RETRY_DELAY": "1.5", "DLQ_EXPIRY_HOURS": "0.5",
           "DLQ_MAX_REPLAY_ATTEMPTS": "4", "DLQ_TEMPORAL_ADDRESS": "temporal:7233",
           "DLQ_NAMESPACE": "ops", "DLQ_TASK_QUEUE": "dlq-x", "DLQ_AUTO_REPLAY": "0",
           "DLQ_DATABASE_URL": "postgresql+psycopg://u@h/db",
           "DLQ_HANDLER_MODULES": "a.handlers, b.more ,"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = DLQConfig.from_settings()
    assert cfg.enabled is False and cfg.auto_replay is False
    assert (cfg.retry_delay, cfg.expiry_hours, cfg.max_replay_attempts) == (1.5, 0.5, 4)
    assert (cfg.temporal_address, cfg.namespace, cfg.task_queue) == ("temporal:7233", "ops",
                                                                      "dlq-x")
    assert cfg.database_url == "postgresql+psycopg://u@h/db"
    assert cfg.handler_modules == ("a.handlers", "b.more")


def test_bad_environment_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_RETRY_DELAY", "-3")
    with pytest.raises(pydantic.ValidationError, match="retry_delay"):
        DLQConfig.from_settings()


@pytest.mark.parametrize("field", ["max_replay_attempts", "retry_delay", "expiry_hours"])
def test_bad_config_in_code_fails_clearly(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DLQConfig(**{field: 0})


def test_registry_finds_specific_then_domain_wide() -> None:
    reg = dlq.HandlerRegistry()

    def specific(e: dlq.FailedOperationData) -> None: ...
    def wide(e: dlq.FailedOperationData) -> None: ...

    reg.register("payment", "PG_TIMEOUT", specific)
    reg.register("payment", None, wide)
    assert reg.find("payment", "PG_TIMEOUT") is specific
    assert reg.find("payment", "AMOUNT_MISMATCH") is wide
    assert reg.find("webhook", "PG_TIMEOUT") is None


def test_import_handler_modules_names_the_missing_module() -> None:
    with pytest.raises(ImportError, match="no_such_handlers_mod"):
        dlq._handlers.import_handler_modules(["no_such_handlers_mod"])


def test_sync_service_mirrors_async_signatures() -> None:
    for name in ("store_failure", "retry_entry", "force_redrive_entry", "resolve_entry",
                 "resolve_entries_batch", "get_entry", "get_entry_by_id", "create_test_entry"):
        assert inspect.signature(getattr(DLQService, name)) == inspect.signature(
            getattr(AsyncDLQService, name)), name
        assert not inspect.iscoroutinefunction(getattr(DLQService, name))


# --- store paths that need no worker -------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _row_count(url: str) -> int:
    engine = create_db_engine(url)
    migrate(engine)
    with Session(engine) as session:
        return len(session.exec(select(DLQEntry)).all())


def test_disabled_store_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    with DLQService(DLQConfig(enabled=False, database_url=url,
                              temporal_address=f"127.0.0.1:{_closed_port()}")) as svc:
        result = svc.store_failure("payment", "PG_TIMEOUT")
    assert result == dlq.DLQEntryResult(success=False, error="DLQ disabled")
    assert _row_count(url) == 0


def test_bad_mode_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with DLQService(DLQConfig(database_url=f"sqlite:///{tmp_path}/d.db",
                              outbox_path=str(tmp_path / "outbox.db"))) as svc:
        with pytest.raises(ValueError, match="mode"):
            svc.store_failure("payment", "PG_TIMEOUT", mode="later")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="domain"):
            svc.store_failure("", "PG_TIMEOUT", mode="async")
        assert svc.get_capture_stats()["outbox_depth"] == 0


class _WatchedRequest:
    """A request whose attributes record the thread that reads them."""

    def __init__(self) -> None:
        self.readers: set[str] = set()

    def _read(self, value: object) -> object:
        self.readers.add(threading.current_thread().name)
        return value

    method = property(lambda self: self._read("POST"))
    path = property(lambda self: self._read("/checkout"))
    headers = property(lambda self: self._read({"X-Request-ID": "req-77"}))


def test_async_store_keeps_the_request_context_read_on_the_callers_thread(
        tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    config = DLQConfig(database_url=f"sqlite:///{tmp_path}/d.db", outbox_path=str(outbox),
                       temporal_address=f"127.0.0.1:{_closed_port()}")
    request = _WatchedRequest()
    with DLQService(config) as svc:
        result = svc.store_failure("payment", "PG_TIMEOUT", mode="async", request=request,
                                   metadata={"k": "v"})
        # A context taken earlier (a plain dict) works the same way.
        svc.store_failure("payment", "PG_TIMEOUT", mode="async",
                          request={"method": "GET", "path": "/x", "cookie": "secret"})
    assert result.success and result.dlq_id
    assert request.readers == {threading.current_thread().name}
    records = Outbox(str(outbox)).claim(10)
    by_id = {r.entry.dlq_id: r.entry for r in records}
    assert by_id[result.dlq_id].metadata == {
        "k": "v", "request": {"method": "POST", "path": "/checkout", "request_id": "req-77"}}
    other = next(e for i, e in by_id.items() if i != result.dlq_id)
    assert other.metadata == {"request": {"method": "GET", "path": "/x"}}


def test_unreachable_temporal_falls_back_to_the_outbox_within_bound(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    bound = 1.0
    config = DLQConfig(temporal_address=f"127.0.0.1:{_closed_port()}", store_timeout=bound,
                       database_url=url, outbox_path=str(tmp_path / "outbox.db"))
    with DLQService(config) as svc:
        started = time.monotonic()
        result = svc.store_failure("payment", "PG_TIMEOUT", error_message="timeout")
        elapsed = timedelta(seconds=time.monotonic() - started)
        stats = svc.get_capture_stats()
    assert result.success is False and result.dlq_id
    assert "cannot reach Temporal" in result.error and "kept in the outbox" in result.error
    assert result.fallback_path == str(tmp_path / "outbox.db")
    # "Never hangs": generous slack over the bound, this is not a speed test.
    assert elapsed < timedelta(seconds=bound + 5)
    assert stats["outbox_depth"] == 1 and _row_count(url) == 0


def test_async_mode_returns_the_pre_assigned_id_at_once(tmp_path: Path) -> None:
    config = DLQConfig(temporal_address=f"127.0.0.1:{_closed_port()}",
                       database_url=f"sqlite:///{tmp_path}/d.db",
                       outbox_path=str(tmp_path / "outbox.db"), outbox_enabled=True)
    with DLQService(config) as svc:
        first = svc.store_failure("payment", "PG_TIMEOUT", mode="async")
        second = svc.store_failure("payment", "PG_TIMEOUT")  # mode=None -> DLQ_OUTBOX_ENABLED
        assert first.success and second.success and first.dlq_id != second.dlq_id
        assert first.fallback_path is None
        assert svc.get_capture_stats()["outbox_depth"] == 2


def test_outbox_append_is_idempotent_and_claims_are_leased(tmp_path: Path) -> None:
    from dlq._outbox import Outbox

    box = Outbox(tmp_path / "o.db")
    entry = new_entry_input(**valid(), config=DLQConfig())
    box.append(entry)
    box.append(entry)
    assert box.stats().depth == 1
    other = Outbox(tmp_path / "o.db")  # another process's view
    claimed = box.claim(10, lease=60)
    assert [r.dlq_id for r in claimed] == [entry.dlq_id] and claimed[0].entry == entry
    assert other.claim(10) == []  # leased to the first owner
    box.release(claimed[0].seq, "boom", retry_in=0)
    again = other.claim(10)
    assert again[0].attempts == 1 and box.stats().last_error == "boom"
    other.delete([again[0].seq])
    assert box.stats().depth == 0
