"""OpenTelemetry traces (``DLQ_OTEL_ENABLED=true``, the ``otel`` extra).

Every Temporal client and worker the DLQ builds then gets temporalio's
``TracingInterceptor`` (through :data:`dlq._connect.BUILTIN_HOOKS`), and a
sync store opens a ``dlq.store`` span, so one trace runs from the caller's
span through the store, the entry workflow and each of its activities
(persist, replay). The blocking ``DLQService`` runs a call in a copy of the caller's context
on its loop thread (``run_coroutine_threadsafe`` copies it), so the span is kept.

If the application configured no tracer provider, one is set up that
exports with OTLP over HTTP, configured by the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_SERVICE_NAME``...). An application that sets its own provider first
(any exporter) keeps it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlq._config import DLQConfig
    from dlq._connect import TemporalHooks
    from dlq._messages import EntryInput

__all__ = ["store_span", "tracing_hooks"]

log = logging.getLogger("dlq")
_enabled = False
_setup_lock = threading.Lock()


def _ensure_provider() -> None:
    """An OTLP-exporting tracer provider, unless the application set one."""
    from opentelemetry import trace

    with _setup_lock:
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return  # the application's own provider
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # Resource.create() reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
        provider = TracerProvider(resource=Resource.create({"service.name": "temporal-dlq"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        log.info("tracing: exporting spans with OTLP/HTTP (OTEL_EXPORTER_OTLP_* variables)")


def tracing_hooks(config: DLQConfig) -> TemporalHooks | None:
    """The tracing interceptor for every client and worker, if ``config.otel_enabled``.

    Raises:
        ValueError: Tracing is on but the ``otel`` extra is not installed.
    """
    global _enabled
    if not config.otel_enabled:
        return None
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as err:
        raise ValueError("DLQ_OTEL_ENABLED=true needs OpenTelemetry: "
                         f"pip install 'temporal-dlq[otel]' ({err})") from err
    from dlq._connect import TemporalHooks

    _ensure_provider()
    _enabled = True
    return TemporalHooks(interceptors=[TracingInterceptor()])


@contextlib.contextmanager
def store_span(entry: EntryInput) -> Iterator[Any]:
    """A ``dlq.store`` span around a sync store (nothing unless tracing is on).

    Its attributes name the entry, never its data.
    """
    if not _enabled:
        yield None
        return
    from opentelemetry import trace

    tracer = trace.get_tracer("dlq")
    with tracer.start_as_current_span("dlq.store", attributes={
            "dlq.id": entry.dlq_id, "dlq.domain": entry.domain,
            "dlq.failure_type": entry.failure_type,
            "dlq.mode": entry.capture_mode or "sync"}) as span:
        yield span
