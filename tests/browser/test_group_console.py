"""Failure groups in the web console: the group list, a group, entries linked to their group.

Same stack as tests/browser/test_console.py (its fixtures): the app in this
process, the session's dev server and worker, SQLite, Debian's Chromium.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Browser, expect

from dlq._fingerprint import fingerprint
from tests.browser.test_console import (  # noqa: F401 - fixtures
    Console,
    browser,
    console,
    console_config,
    save_screenshot,
    server,
    signed_in,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]


async def test_groups_list_group_page_and_entry_links(browser: Browser,  # noqa: F811
                                                      console: Console) -> None:  # noqa: F811
    domain = f"grp-{uuid.uuid4().hex[:6]}"
    ids = []
    for i in range(2):
        result = await console.service.store_failure(
            domain, "CARD_DECLINED", error_code="E51", recommended_action="manual_check",
            error_message=f"card ending {4000 + i} declined for order ord_{i}x9")
        assert result.success, result
        ids.append(result.dlq_id)
    fp = fingerprint(domain, "CARD_DECLINED", "E51", "card ending 1 declined for order ord_1x9")

    page = await signed_in(browser, console.url, "olga")
    await page.click("header nav a[href='/groups']")
    await page.fill("form[data-testid=group-filters] input[name=domain]", domain)
    await page.select_option("form[data-testid=group-filters] select[name=open]", "true")
    await page.click("form[data-testid=group-filters] button[type=submit]")
    await expect(page.get_by_test_id("group-total")).to_have_text("1 groups")
    row = page.locator(f"tr[data-fingerprint='{fp}']")
    await expect(row.get_by_test_id("count")).to_have_text("2")
    await expect(row.get_by_test_id("open")).to_have_text("2")
    await expect(row).to_contain_text("card ending <n> declined for order <id>")
    await save_screenshot(page, "console-groups")

    # The group page: counts and its entries.
    await row.locator(f"a[href='/groups/{fp}']").click()
    await expect(page.get_by_test_id("group-fingerprint")).to_have_text(fp)
    await expect(page.get_by_test_id("group-count")).to_have_text("2")
    for pk in ids:
        await expect(page.locator(f"a[href='/entries/{pk}']")).to_be_visible()

    # An entry links back to its group; so does its row in the entry list.
    await page.click(f"a[href='/entries/{ids[0]}']")
    await expect(page.get_by_test_id("entry-group")).to_have_text(fp)
    await page.click("[data-testid=entry-group]")
    await expect(page).to_have_url(f"{console.url}/groups/{fp}")
    await page.goto(f"{console.url}/?domain={domain}")
    await expect(page.get_by_test_id("row-group")).to_have_count(2)
    await page.get_by_test_id("row-group").first.click()
    await expect(page).to_have_url(f"{console.url}/groups/{fp}")

    # The whole group in the entry list, and a bulk redrive of the group.
    await page.goto(f"{console.url}/?group={fp}")
    await expect(page.get_by_test_id("total")).to_have_text("2 entries")
    await expect(page.get_by_test_id("group-filter")).to_contain_text(fp)
    await page.goto(f"{console.url}/groups/{fp}")
    await page.click("[data-testid=redrive-group]")
    await expect(page.get_by_test_id("preview-count")).to_have_text("2")
    await expect(page.get_by_test_id("redrive-filters")).to_contain_text(fp)

    # A group that does not exist is a 404 page, a malformed one a 422.
    missing = await page.goto(f"{console.url}/groups/{'0' * 16}")
    assert missing is not None and missing.status == 404
    bad = await page.goto(f"{console.url}/groups/nope")
    assert bad is not None and bad.status == 422
