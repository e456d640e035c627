"""Real-browser fixtures: Debian's chromium driven by Playwright (never `playwright install`).

A failing test keeps a screenshot and the console log of every page it opened, under its
pytest tmp path, and prints where they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from playwright.sync_api import Page as SyncPage
from playwright.sync_api import Route, sync_playwright

from browser_support import CHROMIUM, CHROMIUM_ARGS, WEB, Pages

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(REPORTS, {})
    return any(report.failed for report in reports.values())


@pytest.fixture
async def pages(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pages]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        opened = Pages(browser)
        try:
            yield opened
        finally:
            if _failed(request):
                kept = await opened.keep(tmp_path)
                print(f"\nbrowser evidence kept in {tmp_path}: {[p.name for p in kept]}")
            await browser.close()


@pytest.fixture(scope="module")
def module_page() -> Iterator[SyncPage]:
    """One page (sync API) at a made-up origin whose requests are served from web/ without a
    server: for testing the app's modules on their own (no asyncio loop may run meanwhile)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page()

        def serve(route: Route) -> None:
            path = route.request.url.removeprefix("http://web.test/").split("?")[0]
            file = WEB / path
            if path == "blank.html":
                route.fulfill(
                    body="<!doctype html><title>modules</title>", content_type="text/html"
                )
            elif file.is_file() and WEB in file.resolve().parents:
                route.fulfill(body=file.read_bytes(), content_type="text/javascript")
            else:
                route.fulfill(status=404, body="not found")

        page.route("http://web.test/**", serve)
        page.goto("http://web.test/blank.html")
        yield page
        browser.close()
