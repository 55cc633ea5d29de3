"""OpenTelemetry traces (``DLQ_OTEL_ENABLED=true``, the ``otel`` extra).

Every Temporal client and worker the DLQ builds then gets temporalio's
``TracingInterceptor`` (through :data:`dlq._connect.BUILTIN_HOOKS`), and a
sync store opens a ``dlq.store`` span, so one trace runs from the caller's
span through the store, the entry workflow and each of its activities
(persist, replay). The blocking ``DLQService`` runs a call in a copy of the
caller's context on its loop thread (``run_coroutine_threadsafe`` copies it),
so the span is kept. A store through the outbox keeps the caller's trace
context with the record; the relay's ``dlq.deliver`` span continues it.

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

__all__ = ["current_trace_context", "delivery_span", "store_span", "tracing_hooks"]

log = logging.getLogger("dlq")
_setup_lock = threading.Lock()
_provider_ready = False


def _ensure_provider() -> None:
    """An OTLP-exporting tracer provider, unless the application set one (once per process).

    Raises:
        ImportError: OpenTelemetry (the ``otel`` extra) is not installed.
    """
    global _provider_ready
    if _provider_ready:
        return
    from opentelemetry import trace

    with _setup_lock:
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            _provider_ready = True  # the application's own provider
            return
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # Resource.create() reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
        provider = TracerProvider(resource=Resource.create({"service.name": "temporal-dlq"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _provider_ready = True
        log.info("tracing: exporting spans with OTLP/HTTP (OTEL_EXPORTER_OTLP_* variables)")


def _active(enabled: bool) -> bool:
    """Whether tracing is on (``DLQ_OTEL_ENABLED``); sets the provider up if so.

    So a store made before any client was built still gets its span.
    """
    if not enabled:
        return False
    try:
        _ensure_provider()
    except ImportError:
        return False  # connecting says why (tracing_hooks); a store must not fail for it
    return True


def tracing_hooks(config: DLQConfig) -> TemporalHooks | None:
    """The tracing interceptor for every client and worker, if ``config.otel_enabled``.

    Raises:
        ValueError: Tracing is on but the ``otel`` extra is not installed.
    """
    if not config.otel_enabled:
        return None
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor

        _ensure_provider()
    except ImportError as err:
        raise ValueError("DLQ_OTEL_ENABLED=true needs OpenTelemetry: "
                         f"pip install 'temporal-dlq[otel]' ({err})") from err
    from dlq._connect import TemporalHooks

    return TemporalHooks(interceptors=[TracingInterceptor()])


@contextlib.contextmanager
def store_span(entry: EntryInput, enabled: bool) -> Iterator[Any]:
    """A ``dlq.store`` span around a sync store (nothing unless ``enabled``).

    Its attributes name the entry, never its data.
    """
    if not _active(enabled):
        yield None
        return
    from opentelemetry import trace

    tracer = trace.get_tracer("dlq")
    with tracer.start_as_current_span("dlq.store", attributes={
            "dlq.id": entry.dlq_id, "dlq.domain": entry.domain,
            "dlq.failure_type": entry.failure_type,
            "dlq.mode": entry.capture_mode or "sync"}) as span:
        yield span


def current_trace_context(enabled: bool) -> dict[str, str] | None:
    """The caller's trace context (``traceparent``...) to keep with an outbox record.

    None unless ``enabled`` and a span is active.
    """
    if not _active(enabled):
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier or None


@contextlib.contextmanager
def delivery_span(entry: EntryInput, enabled: bool) -> Iterator[Any]:
    """A ``dlq.deliver`` span for the relay's delivery, child of the storing caller's span.

    The relay delivers an outbox record later, outside the caller; the trace
    context kept with the record puts the delivery, and so the entry's
    workflow, in the caller's trace.
    """
    if not _active(enabled):
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    parent = extract(entry.trace_context) if entry.trace_context else None
    tracer = trace.get_tracer("dlq")
    with tracer.start_as_current_span("dlq.deliver", context=parent, attributes={
            "dlq.id": entry.dlq_id, "dlq.domain": entry.domain,
            "dlq.failure_type": entry.failure_type,
            "dlq.mode": entry.capture_mode or "async"}) as span:
        yield span
