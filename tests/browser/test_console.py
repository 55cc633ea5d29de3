"""The web console as an operator uses it, in Debian's Chromium driven by Playwright.

``dlq serve``'s app runs in this process (uvicorn on a thread) against the
session's dev server, worker and SQLite read model. Without /usr/bin/chromium
the tests fail (``.ci/run`` installs it); no browser is ever downloaded.
Screenshots of the list and entry pages go to ``build/screenshots/``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from dlq import AsyncDLQService, DLQConfig
from dlq._http import create_app
from dlq._procs import ROOT, free_port
from tests.support.api import API_TOKENS, TOKENS
from tests.support.helpers import store

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOTS = ROOT / "build" / "screenshots"
expect.set_options(timeout=20_000)


@dataclass
class Console:
    url: str
    service: AsyncDLQService


class _Server(threading.Thread):
    def __init__(self, config: DLQConfig, port: int) -> None:
        super().__init__(name="dlq-serve-test", daemon=True)
        self.server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1",
                                                    port=port, log_level="warning"))

    def run(self) -> None:
        self.server.run()

    def stop(self) -> None:
        self.server.should_exit = True
        self.join(15)


@pytest.fixture(scope="module")
def console_config(base_configs: dict[str, DLQConfig], worker) -> DLQConfig:
    return replace(base_configs["sqlite"], api_tokens=API_TOKENS,
                   temporal_ui_url="http://localhost:8233")


@pytest.fixture(scope="module")
def server(console_config: DLQConfig) -> Iterator[str]:
    port = free_port()
    thread = _Server(console_config, port)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    import time
    import urllib.request

    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/login", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield url
    thread.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), (f"{CHROMIUM} is missing: install Debian's chromium "
                               "(apt-get install -y chromium; .ci/run does)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def console(server: str, console_config: DLQConfig) -> AsyncIterator[Console]:
    service = AsyncDLQService(console_config)
    yield Console(server, service)
    await service.close()


async def signed_in(browser: Browser, url: str, name: str) -> Page:
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    page = await context.new_page()
    await page.goto(f"{url}/")
    await expect(page).to_have_url(f"{url}/login?next=/")
    await page.fill("input[name=token]", TOKENS[name][1])
    await page.click("button[type=submit]")
    await expect(page.get_by_test_id("whoami")).to_contain_text(name)
    return page


async def save_screenshot(page: Page, name: str) -> None:
    """Save a full-page screenshot to build/screenshots/ and check it holds a picture.

    docs/images/ holds a copy of each, taken from build/screenshots/ by hand.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000


async def test_filter_open_retry_and_force_redrive(browser: Browser, console: Console) -> None:
    kind = f"BR{uuid.uuid4().hex[:6]}"
    ok = [await store(console.service, "t-ok", failure_type=kind) for _ in range(2)]
    echo = await store(console.service, "t-echo", failure_type=kind,
                       request_data={"amount": 100}, snapshot_data={"fixed": False})
    for _ in range(2):  # the poison pill uses its budget: requires_review
        await console.service.retry_entry(echo)

    page = await signed_in(browser, console.url, "olga")
    # Filter by facet: the t-ok domain, then narrow to this test's failure type.
    await page.click("[data-facet=domain][data-value=t-ok]")
    await expect(page).to_have_url(f"{console.url}/?domain=t-ok")
    await page.fill("input[name=failure_type]", kind)
    await page.click("form[data-testid=filters] button[type=submit]")
    await expect(page.get_by_test_id("total")).to_have_text("2 entries")
    await save_screenshot(page, "console-list")

    # Open an entry and retry it (its handler succeeds).
    await page.click(f"a[href='/entries/{ok[0]}']")
    await expect(page.get_by_test_id("status")).to_have_text("pending")
    await expect(page.get_by_test_id("audit")).to_contain_text("created")
    await page.click("[data-testid=retry]")
    await expect(page.get_by_test_id("flash")).to_have_text("replay succeeded")
    await expect(page.get_by_test_id("status")).to_have_text("resolved")
    await expect(page.get_by_test_id("audit")).to_contain_text("by olga")

    # An operator sees force-redrive disabled, and the server refuses it too.
    await page.goto(f"{console.url}/entries/{echo}")
    await expect(page.get_by_test_id("status")).to_have_text("requires_review")
    await expect(page.get_by_test_id("force-redrive")).to_be_disabled()
    refused = await page.evaluate("""async (id) => {
        const csrf = document.querySelector('meta[name=csrf-token]').content;
        const r = await fetch(`/api/entries/${id}/force-redrive`, {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
            body: JSON.stringify({reason: 'try'})});
        return r.status; }""", echo)
    assert refused == 403
    # Edit before replay in the page, then force-redrive as an admin.
    await page.click("[data-testid=edit-snapshot_data]")
    await page.fill("details.edit[open] textarea[name=patch]", '{"fixed": true}')
    await page.fill("details.edit[open] input[name=reason]", "flag set by hand")
    await page.click("details.edit[open] button[type=submit]")
    await expect(page.get_by_test_id("flash")).to_contain_text("data edited")
    await expect(page.get_by_test_id("edited")).to_contain_text("edited 1")
    await expect(page.get_by_test_id("original-snapshot_data")).to_be_attached()

    admin = await signed_in(browser, console.url, "adam")
    await admin.goto(f"{console.url}/entries/{echo}")
    await admin.fill("input[name=reason]", "data fixed, PG back (INC-7)")
    await admin.click("[data-testid=force-redrive]")
    await expect(admin.get_by_test_id("flash")).to_have_text("force-redrive succeeded")
    await expect(admin.get_by_test_id("status")).to_have_text("resolved")
    await expect(admin.get_by_test_id("audit")).to_contain_text("force_redrive by adam")
    await expect(admin.get_by_test_id("audit")).to_contain_text("edit_data by olga")
    await save_screenshot(admin, "console-entry")


async def test_bulk_redrive_from_a_dry_run_preview(browser: Browser, console: Console) -> None:
    kind = f"BB{uuid.uuid4().hex[:6]}"
    ids = [await store(console.service, "t-ok", failure_type=kind) for _ in range(5)]
    page = await signed_in(browser, console.url, "olga")
    await page.goto(f"{console.url}/?failure_type={kind}")
    await expect(page.get_by_test_id("total")).to_have_text("5 entries")
    await page.click("[data-testid=redrive-these]")
    await expect(page.get_by_test_id("preview-count")).to_have_text("5")
    await page.fill("[data-testid=redrive-reason]", "downstream back")
    await page.click("[data-testid=launch]")
    await expect(page.get_by_test_id("flash")).to_contain_text("redrive of 5 entries started")
    await expect(page.get_by_test_id("redrive-status")).to_have_text("completed")
    await expect(page.get_by_test_id("done")).to_have_text("5")
    await expect(page.get_by_test_id("succeeded")).to_have_text("5")
    statuses = {(await console.service.get_entry(i))["status"] for i in ids}
    assert statuses == {"resolved"}

