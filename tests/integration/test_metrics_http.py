"""``dlq serve`` answers ``/metrics`` (viewer token) with the same exposition as the worker."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dlq import AsyncDLQService, DLQConfig
from tests.support.api import api_client, auth
from tests.support.helpers import store

pytestmark = pytest.mark.integration


async def test_serve_metrics_needs_a_token_and_reports_open_entries(
        config: DLQConfig, service: AsyncDLQService) -> None:
    domain = f"m-http-{uuid.uuid4().hex[:8]}"
    await store(service, domain)
    await store(service, domain)
    with api_client(config) as http:
        assert http.get("/metrics").status_code == 401
        response = http.get("/metrics", headers=auth("vera"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text)
               for s in family.samples}
    assert samples[("dlq_open_entries", (("domain", domain), ("status", "pending")))] == 2
    assert samples[("dlq_entries_stored_total",
                    (("domain", domain), ("failure_type", "PG_TIMEOUT"), ("mode", "sync")))] == 2
    assert ("dlq_outbox_depth", ()) in samples
