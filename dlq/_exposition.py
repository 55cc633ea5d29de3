"""``/metrics``: the DLQ's counters plus gauges read at scrape time.

:class:`DLQGaugeCollector` reads SQL (through :mod:`dlq._sql.gauges`), the
outbox of this process and the running redrives' throttles whenever
Prometheus scrapes. :func:`metrics_registry` puts it beside the counters of
this process (or, with ``PROMETHEUS_MULTIPROC_DIR`` set, of every process of
the host); :func:`start_metrics_server` serves that on a port (the worker),
and :func:`render` gives the text for an HTTP route (``dlq serve``).
:func:`serve_worker_metrics` and :func:`sdk_metrics_runtime` are what the
worker starts with.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from dlq import _metrics
from dlq._sql.gauges import open_entry_gauges

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from dlq._config import DLQConfig
    from dlq._outbox import Outbox

__all__ = ["CONTENT_TYPE", "DLQGaugeCollector", "metrics_registry", "render",
           "sdk_metrics_runtime", "serve_worker_metrics", "start_metrics_server"]

log = logging.getLogger("dlq.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HEALTH_STATES = ("healthy", "degraded", "emergency")


class DLQGaugeCollector(Collector):
    """Gauges computed at scrape time.

    Args:
        engine: The SQL read model (open entries, oldest age, SLA breaches);
            None leaves those out.
        outbox: The outbox this process drains (depth, oldest age, quarantined);
            None leaves those out.
        sla_thresholds: SLA seconds by domain (``DLQ_SLA_THRESHOLDS``).
    """

    def __init__(self, engine: Engine | None, outbox: Outbox | None,
                 sla_thresholds: dict[str, float] | None = None) -> None:
        self.engine = engine
        self.outbox = outbox
        self.sla_thresholds = dict(sla_thresholds or {})
        # One scrape at a time: two Prometheus servers scraping together
        # must not double the SQL work.
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Any]:
        """Nothing: the families are known only at scrape time (no registration clash check)."""
        return iter(())

    def collect(self) -> Iterator[Any]:
        """The gauges, as of now; a failing source is logged and left out of this scrape."""
        with self._lock:
            yield from self._entries()
            yield from self._outbox()
            yield from self._redrives()

    def _entries(self) -> Iterator[GaugeMetricFamily]:
        if self.engine is None:
            return
        try:
            with self.engine.connect() as conn:
                gauges = open_entry_gauges(conn=conn, thresholds=self.sla_thresholds)
        except Exception as err:  # noqa: BLE001 - SQL down: the other gauges still report
            log.warning("metrics: cannot read the entry gauges: %r", err)
            return
        open_entries = GaugeMetricFamily("dlq_open_entries", "Open entries (pending, replaying, "
                                         "requires_review) by domain and status.",
                                         labels=["domain", "status"])
        for (domain, status), n in sorted(gauges.open.items()):
            open_entries.add_metric([domain, status], n)
        oldest = GaugeMetricFamily("dlq_oldest_open_entry_age_seconds",
                                   "Age of the oldest open entry by domain.", labels=["domain"])
        for domain, age in sorted(gauges.oldest_age_seconds.items()):
            oldest.add_metric([domain], age)
        breached = GaugeMetricFamily("dlq_sla_breached_entries",
                                     "Open entries older than their domain's SLA "
                                     "(DLQ_SLA_THRESHOLDS).", labels=["domain"])
        for domain, n in sorted(gauges.sla_breached.items()):
            breached.add_metric([domain], n)
        yield from (open_entries, oldest, breached)

    def _outbox(self) -> Iterator[GaugeMetricFamily]:
        if self.outbox is None:
            return
        try:
            stats = self.outbox.stats()
        except Exception as err:  # noqa: BLE001 - an unreadable outbox must not fail the scrape
            log.warning("metrics: cannot read the outbox %s: %r", self.outbox.path, err)
            return
        yield GaugeMetricFamily("dlq_outbox_depth", "Records waiting in this host's outbox.",
                                value=stats.depth)
        yield GaugeMetricFamily("dlq_outbox_oldest_age_seconds",
                                "Age of the oldest outbox record (0 when empty).",
                                value=stats.oldest_age_seconds or 0.0)
        yield GaugeMetricFamily("dlq_outbox_quarantined",
                                "Outbox records Temporal refused for good, set aside "
                                "for an operator (dlq outbox quarantine).",
                                value=float(stats.quarantined))

    def _redrives(self) -> Iterator[GaugeMetricFamily]:
        limit = GaugeMetricFamily("dlq_redrive_limit", "Concurrency the adaptive throttle of a "
                                  "running bulk redrive allows now.", labels=["redrive"])
        health = GaugeMetricFamily("dlq_redrive_health", "Health of a running bulk redrive's "
                                   "downstream: 1 for its current state.",
                                   labels=["redrive", "state"])
        for bulk_id, throttle in sorted(_metrics.running_redrives().items()):
            limit.add_metric([bulk_id], throttle.limit)
            current = throttle.health
            for state in HEALTH_STATES:
                health.add_metric([bulk_id, state], 1.0 if state == current else 0.0)
        yield from (limit, health)


class _Counters(Collector):
    """This process's counters, or with ``PROMETHEUS_MULTIPROC_DIR`` the whole host's."""

    def __init__(self) -> None:
        self._source: Any = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            self._source = registry

    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        return iter(self._source.collect())


def metrics_registry(gauges: DLQGaugeCollector | None = None) -> CollectorRegistry:
    """A registry with the counters and, if given, the scrape-time gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Counters())
    if gauges is not None:
        registry.register(gauges)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry`` (what ``/metrics`` answers)."""
    return generate_latest(registry)


def start_metrics_server(port: int, gauges: DLQGaugeCollector | None, *,
                         addr: str = "0.0.0.0") -> Any:
    """Serve ``/metrics`` on ``port`` from a daemon thread; returns the server (``shutdown()``).

    Raises:
        OSError: The port is taken.
    """
    server, _thread = start_http_server(port, addr=addr, registry=metrics_registry(gauges))
    log.info("metrics: serving /metrics on %s:%d", addr, server.server_port)
    return server


def serve_worker_metrics(config: DLQConfig, engine: Engine, outbox: Any) -> Any:
    """Serve ``/metrics`` on ``config.metrics_port`` (None if 0 or the port is taken).

    A taken port is logged, not fatal: a worker that cannot be scraped
    must still replay entries.
    """
    if not config.metrics_port:
        return None
    try:
        return start_metrics_server(
            config.metrics_port, DLQGaugeCollector(engine, outbox, config.sla_thresholds))
    except OSError as err:
        log.error("metrics: cannot serve /metrics on port %d (DLQ_METRICS_PORT): %s; the "
                  "worker runs without it", config.metrics_port, err)
        return None


def sdk_metrics_runtime(port: int) -> Any:
    """A Temporal runtime exporting the SDK's metrics to Prometheus on ``port`` (None if 0).

    Each call makes a new runtime (its own Rust threads): one per worker process.
    A port that cannot be bound is logged and the default runtime used.
    """
    if not port:
        return None
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    try:
        return Runtime(telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"0.0.0.0:{port}")))
    except Exception as err:  # noqa: BLE001 - the SDK raises its own error types here
        log.error("metrics: cannot serve the Temporal SDK's metrics on port %d "
                  "(DLQ_SDK_METRICS_PORT): %s; the worker runs without them", port, err)
        return None
