"""``GET /metrics``: the ``dlq_*`` metrics of ``dlq serve`` (viewer role).

The same exposition as the worker's ``DLQ_METRICS_PORT``: this process's
counters (or the host's, with ``PROMETHEUS_MULTIPROC_DIR``) and the gauges
read from SQL and this process's outbox at scrape time. Prometheus sends a
viewer token (``authorization`` in its scrape config).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from dlq._http.auth import Identity, require

__all__ = ["router"]

router = APIRouter(tags=["metrics"])
Viewer = Annotated[Identity, require("viewer")]


def _registry(request: Request) -> Any:
    # Built on the first scrape: an API that is never scraped opens nothing more.
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        from dlq._exposition import DLQGaugeCollector, metrics_registry

        service = request.app.state.service
        engine = getattr(service.repository, "engine", None)
        registry = metrics_registry(DLQGaugeCollector(engine, service.outbox,
                                                      service.config.sla_thresholds))
        request.app.state.metrics_registry = registry
    return registry


@router.get("/metrics", summary="Prometheus metrics (dlq_*)")
def metrics(request: Request, _viewer: Viewer) -> Response:
    """The Prometheus text exposition of the ``dlq_*`` metrics (runs in a thread: SQL reads)."""
    from dlq._exposition import CONTENT_TYPE, render

    return Response(render(_registry(request)), media_type=CONTENT_TYPE)
