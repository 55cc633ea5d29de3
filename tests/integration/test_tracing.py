"""DLQ_OTEL_ENABLED: one trace from the caller's span through the store, the entry
workflow and its replay activity (in-memory span exporter, real server and worker)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import AsyncIterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dlq
from dlq import AsyncDLQService, DLQConfig, DLQService
from dlq._connect import connect
from dlq._db import create_db_engine
from dlq._handlers import registry
from dlq._worker import build_worker
from tests.support.helpers import wait_status

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Finished spans of this process (the provider is process-wide and set once)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
async def traced(config: DLQConfig, spans: InMemorySpanExporter
                 ) -> AsyncIterator[tuple[DLQConfig, str]]:
    """A tracing worker on a task queue of its own, and a fresh domain whose handler succeeds."""
    traced_config = dataclasses.replace(config, task_queue=f"dlq-otel-{uuid.uuid4().hex[:8]}",
                                        otel_enabled=True)
    domain = f"otel-{uuid.uuid4().hex[:8]}"
    registry.register(domain, None, lambda entry: None)
    engine = create_db_engine(traced_config.database_url)
    client = await connect(traced_config)
    async with build_worker(client, task_queue=traced_config.task_queue, engine=engine,
                            config=traced_config):
        yield traced_config, domain
    registry.unregister(domain)
    engine.dispose()


def names_in(spans: InMemorySpanExporter, trace_id: int) -> list[str]:
    return [s.name for s in spans.get_finished_spans() if s.context.trace_id == trace_id]


async def test_one_trace_runs_from_the_caller_through_the_workflow_and_its_replay(
        traced: tuple[DLQConfig, str], spans: InMemorySpanExporter) -> None:
    config, domain = traced
    service = AsyncDLQService(config)
    tracer = trace.get_tracer("test")
    try:
        with tracer.start_as_current_span("caller") as caller:
            result = await service.store_failure(domain, "PG_TIMEOUT", error_message="x",
                                                 recommended_action="replay")
        assert result.success, result
        await wait_status(service, result.dlq_id, "resolved")
    finally:
        await service.close()
    trace_id = caller.get_span_context().trace_id

    async def traced_names() -> list[str]:
        for _ in range(100):  # the replay's spans end a moment after the row says resolved
            names = names_in(spans, trace_id)
            if "RunActivity:run_replay_handler" in names:
                return names
            await asyncio.sleep(0.1)
        return names_in(spans, trace_id)

    names = await traced_names()
    assert "caller" in names and "dlq.store" in names
    assert any(n.startswith("RunWorkflow:DLQEntryWorkflow") for n in names), names
    assert "StartActivity:run_replay_handler" in names, names
    assert "RunActivity:run_replay_handler" in names, names
    # The replay's span descends from the caller's, through the store.
    finished = {s.context.span_id: s for s in spans.get_finished_spans()
                if s.context.trace_id == trace_id}
    replay = next(s for s in finished.values() if s.name == "RunActivity:run_replay_handler")
    chain = [replay.name]
    while replay.parent is not None:
        replay = finished[replay.parent.span_id]
        chain.append(replay.name)
    assert chain == ["RunActivity:run_replay_handler", "StartActivity:run_replay_handler",
                     "StartUpdateWithStartWorkflow:DLQEntryWorkflow", "dlq.store", "caller"]
    store = next(s for s in spans.get_finished_spans() if s.name == "dlq.store"
                 and s.context.trace_id == trace_id)
    assert store.parent is not None and store.parent.span_id == caller.get_span_context().span_id
    assert store.attributes is not None and store.attributes["dlq.domain"] == domain


async def test_the_blocking_service_carries_the_callers_span_to_its_loop_thread(
        traced: tuple[DLQConfig, str], spans: InMemorySpanExporter) -> None:
    config, domain = traced
    tracer = trace.get_tracer("test")
    outcome: dict[str, object] = {}

    def web_request() -> None:  # a Django view or Celery task on its own thread
        with DLQService(config) as svc, tracer.start_as_current_span("view") as view:
            outcome["result"] = svc.store_failure(domain, "PG_TIMEOUT", error_message="x",
                                                  recommended_action="manual_check")
            outcome["trace_id"] = view.get_span_context().trace_id

    thread = threading.Thread(target=web_request)
    thread.start()
    await asyncio.to_thread(thread.join, 60)
    result = outcome["result"]
    assert isinstance(result, dlq.DLQEntryResult) and result.success, result
    names = names_in(spans, int(outcome["trace_id"]))  # type: ignore[call-overload]
    assert "view" in names and "dlq.store" in names, names
    assert any(n.startswith("StartUpdateWithStartWorkflow") or n.startswith("StartWorkflow")
               for n in names), names


async def test_an_async_store_is_delivered_in_the_callers_trace(
        traced: tuple[DLQConfig, str], spans: InMemorySpanExporter, tmp_path) -> None:
    config, domain = traced
    service = AsyncDLQService(dataclasses.replace(config, outbox_path=str(tmp_path / "ob.db")))
    tracer = trace.get_tracer("test")
    try:
        with tracer.start_as_current_span("producer") as producer:
            result = await service.store_failure(domain, "PG_TIMEOUT", error_message="x",
                                                 recommended_action="manual_check",
                                                 mode="async")
        assert result.success and result.dlq_id
        await wait_status(service, result.dlq_id, "pending")
    finally:
        await service.close()
    trace_id = producer.get_span_context().trace_id
    finished = {s.context.span_id: s for s in spans.get_finished_spans()
                if s.context.trace_id == trace_id}
    deliver = next(s for s in finished.values() if s.name == "dlq.deliver")
    assert deliver.parent is not None
    assert deliver.parent.span_id == producer.get_span_context().span_id
    assert deliver.attributes is not None and deliver.attributes["dlq.mode"] == "async"
    names = {s.name for s in finished.values()}
    assert "StartWorkflow:DLQEntryWorkflow" in names, names
    assert "RunWorkflow:DLQEntryWorkflow" in names, names
