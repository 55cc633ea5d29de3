"""The Temporal Web UI shows encrypted entries decoded, through ``dlq serve``'s codec server.

As ``make run`` sets it up: a dev server whose UI has ``--ui-codec-endpoint``
pointing at the codec server of ``dlq serve`` (``--insecure-local``, CORS for
the UI's origin), and a worker and producer with a key ring. Chromium opens
the entry's page: its input shows the data in clear, which the history holds
only encrypted (the browser decoded it by calling ``/codec/decode``).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, async_playwright, expect

from dlq import AsyncDLQService, DLQConfig, workflow_id_for
from dlq._http import create_app
from dlq._keys import generate_key
from dlq._procs import ROOT, DevServer, WorkerProcess, free_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
TASK_QUEUE = "dlq-web-ui-codec"
KEYS = generate_key("ui")
MARK = f"albatross-vermilion-{uuid.uuid4().hex[:6]}"
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: the browser tests drive Debian's "
                    "Chromium (apt-get install -y chromium; .ci/run installs it)",
                    pytrace=False)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                            args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


class _Serve:
    """``dlq serve --insecure-local`` (its codec server) on a thread, counting decode calls."""

    def __init__(self, config: DLQConfig, port: int) -> None:
        app = create_app(config, insecure_local=True)
        self.decodes = 0

        @app.middleware("http")
        async def count(request, call_next):  # type: ignore[no-untyped-def]
            if request.url.path == "/codec/decode" and request.method == "POST":
                self.decodes += 1
            return await call_next(request)

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "dlq serve did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


async def test_the_web_ui_shows_an_encrypted_entry_decoded(browser: Browser,
                                                           tmp_path: Path) -> None:
    http_port = free_port()
    server = DevServer(log_path=tmp_path / "temporal.log", log_level="error",
                       extra_args=["--ui-codec-endpoint", f"http://127.0.0.1:{http_port}/codec"])
    assert server.ui_url is not None
    database_url = f"sqlite:///{tmp_path}/dlq.db"
    env = {**os.environ, "DLQ_DATABASE_URL": database_url, "DLQ_MAINTENANCE_ENABLED": "false",
           "DLQ_ENCRYPTION_KEYS": KEYS, "DLQ_OUTBOX_PATH": str(tmp_path / "worker-outbox.db")}
    worker = WorkerProcess(address=server.address, task_queue=TASK_QUEUE,
                           log_path=tmp_path / "worker.log", handlers=["tests.support.handlers"],
                           cwd=ROOT, env=env)
    config = DLQConfig(temporal_address=server.address, temporal_envconfig=False,
                       task_queue=TASK_QUEUE, database_url=database_url, store_timeout=15.0,
                       outbox_path=str(tmp_path / "outbox.db"), encryption_keys=KEYS,
                       codec_cors_origins=(server.ui_url,))
    serve = _Serve(config, http_port)
    service: AsyncDLQService | None = None
    try:
        server.start()
        await server.wait_ready()
        worker.start()
        await worker.wait_ready()
        serve.start()
        service = AsyncDLQService(config)
        result = await service.store_failure("t-ok", "UI_CODEC", entity_id="order-ui",
                                             request_data={"note": MARK},
                                             recommended_action="manual_check")
        assert result.success and result.dlq_id
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            await page.goto(f"{server.ui_url}/namespaces/default/workflows/"
                            f"{workflow_id_for(result.dlq_id)}")
            await expect(page.get_by_text(MARK, exact=False).first).to_be_visible()
        finally:
            await page.close()
        assert serve.decodes > 0  # the browser decoded through the codec server
    finally:
        if service is not None:
            await service.close()
        serve.stop()
        worker.stop()
        server.stop()
