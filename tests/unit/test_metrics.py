"""The counting rules of dlq._metrics, the gauges without SQL, and the metrics settings."""

from __future__ import annotations

import logging
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dlq import DLQConfig, DLQSettings
from dlq import _metrics as metrics
from dlq._exposition import DLQGaugeCollector, metrics_registry, render
from dlq._messages import EntryInput
from dlq._models import AuditEvent
from dlq._outbox import Outbox
from dlq._state import new_state


def sample(name: str, **labels: str) -> float | None:
    text = render(metrics_registry()).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


def event(seq: int, action: str, **details: object) -> AuditEvent:
    return AuditEvent(seq=seq, at=datetime.now(UTC), action=action, details=details)


def test_persisted_events_count_arrivals_replays_and_force_redrives() -> None:
    domain = f"u-{uuid.uuid4().hex[:8]}"
    metrics.count_persisted_events(domain, "T", [
        event(1, "created", mode="async"),
        event(2, "replay_started", trigger="manual"),
        event(3, "replay_failed", trigger="manual", outcome="failure"),
        event(4, "force_redrive", trigger="force"),
        event(5, "replay_succeeded", trigger="force", outcome="success"),
        event(6, "resolve"),
    ])
    assert sample("dlq_entries_stored_total", domain=domain, failure_type="T",
                  mode="async") == 1
    assert sample("dlq_replays_total", domain=domain, trigger="manual", outcome="failure") == 1
    assert sample("dlq_replays_total", domain=domain, trigger="force", outcome="success") == 1
    assert sample("dlq_force_redrives_total", domain=domain) == 1
    # replay_started is not a finished attempt: counted once, when it ends.
    assert sample("dlq_replays_total", domain=domain, trigger="manual", outcome="") is None


def test_an_entry_created_before_capture_modes_counts_as_direct() -> None:
    domain = f"u-{uuid.uuid4().hex[:8]}"
    metrics.count_persisted_events(domain, "T", [event(1, "created")])
    assert sample("dlq_entries_stored_total", domain=domain, failure_type="T",
                  mode="direct") == 1


def test_the_created_event_records_the_capture_mode() -> None:
    entry = EntryInput(dlq_id="x", domain="d", failure_type="T", capture_mode="fallback")
    state = new_state(entry, workflow_id="w", now=datetime.now(UTC), rand=0.5)
    assert state.audit[0].action == "created"
    assert state.audit[0].details["mode"] == "fallback"


def test_counting_can_be_switched_off() -> None:
    domain = f"u-{uuid.uuid4().hex[:8]}"
    metrics.set_enabled(False)
    try:
        metrics.count_persisted_events(domain, "T", [event(1, "created", mode="sync")])
    finally:
        metrics.set_enabled(True)
    assert sample("dlq_entries_stored_total", domain=domain, failure_type="T",
                  mode="sync") is None


def test_the_outbox_gauges_read_a_real_outbox(tmp_path: Path) -> None:
    outbox = Outbox(str(tmp_path / "outbox.db"))
    outbox.append(EntryInput(dlq_id=str(uuid.uuid4()), domain="d", failure_type="T"))
    registry = metrics_registry(DLQGaugeCollector(None, outbox))
    families = {f.name: f for f in text_string_to_metric_families(render(registry).decode())}
    assert families["dlq_outbox_depth"].samples[0].value == 1
    assert families["dlq_outbox_oldest_age_seconds"].samples[0].value >= 0
    # Until the outbox has a quarantine, nothing is quarantined.
    assert families["dlq_outbox_quarantined"].samples[0].value == 0
    assert "dlq_open_entries" not in families  # no engine: no SQL gauges


@pytest.mark.parametrize("name", ["metrics_port", "sdk_metrics_port"])
def test_ports_out_of_range_are_refused_naming_the_setting(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DLQConfig(**{name: 70000})  # type: ignore[arg-type]


def test_metrics_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_METRICS_PORT", "0")
    monkeypatch.setenv("DLQ_SDK_METRICS_PORT", "9999")
    monkeypatch.setenv("DLQ_OTEL_ENABLED", "true")
    monkeypatch.setenv("DLQ_TEMPORAL_ENVCONFIG", "false")
    config = DLQConfig.from_settings(DLQSettings())
    assert (config.metrics_port, config.sdk_metrics_port, config.otel_enabled) == (0, 9999, True)


def test_a_taken_metrics_port_is_logged_and_the_worker_goes_on(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from dlq._exposition import serve_worker_metrics

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="dlq.metrics"):
            server = serve_worker_metrics(DLQConfig(metrics_port=port, home=str(tmp_path)),
                                          engine=None, outbox=None)  # type: ignore[arg-type]
    assert server is None
    assert f"cannot serve /metrics on port {port} (DLQ_METRICS_PORT)" in caplog.text


def test_multiprocess_mode_adds_up_the_producer_processes_of_a_host(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = ("from dlq import _metrics as m; "
             "m.count_store_failure('unavailable'); m.count_relay_error()")
    for _ in range(3):  # three producer processes (web workers, Celery children)
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=60)
    render_ = ("from dlq._exposition import metrics_registry, render; "
               "print(render(metrics_registry()).decode())")
    text = subprocess.run([sys.executable, "-c", render_], env=env, check=True, timeout=60,
                          capture_output=True, text=True).stdout
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("dlq_store_failures_total", (("reason", "unavailable"),))] == 3
    assert samples[("dlq_relay_errors_total", ())] == 3
