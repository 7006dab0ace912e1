"""Playwright driving Debian's Chromium (Playwright cannot download its own browsers here)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.helpers import ADMIN_PASSWORD, Server

CHROMIUM = os.environ.get("CRISPML_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A cold server's first table imports pandas and pyarrow: allow for it on a slow machine.
expect.set_options(timeout=20_000)
SCREENSHOTS = Path(os.environ.get("CRISPML_SCREENSHOTS", "build/screenshots"))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator:
    contexts: list[BrowserContext] = []

    def make() -> Page:
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        ctx.set_default_timeout(20_000)
        contexts.append(ctx)
        return ctx.new_page()

    make.contexts = contexts  # type: ignore[attr-defined]  # read by pytest_runtest_makereport
    yield make
    for ctx in contexts:
        ctx.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator:
    """When a browser test fails, say what each of its pages showed at that moment: a
    screenshot in build/screenshots/failed-*.png and the page's text in the report (CI keeps
    only the report)."""
    report = yield
    make = getattr(item, "funcargs", {}).get("new_page")
    if report.when == "call" and report.failed and make is not None:
        for n, ctx in enumerate(getattr(make, "contexts", [])):
            for m, page in enumerate(ctx.pages):
                name = f"failed-{item.name[:60]}-{n}-{m}"
                try:
                    shot(page, name)
                    text = page.locator("body").inner_text(timeout=5_000)
                except Exception as exc:  # a closed or hung page: say so
                    text = f"(could not read the page: {exc})"
                report.sections.append((f"page {n}.{m} at {page.url}", text[-4_000:]))
    return report


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def log_in(
    page: Page, server: Server, username: str = "admin", password: str = ADMIN_PASSWORD
) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def wait_for_shell(page: Page) -> None:
    # The first page a new server renders imports pandas and friends: slow while the suite runs.
    page.get_by_text("Signed in as").wait_for(timeout=60_000)
    page.wait_for_load_state("networkidle")


def settle(page: Page) -> None:
    """Wait until Streamlit has finished the current script run (its running icon is gone)."""
    page.wait_for_timeout(300)  # a rerun may be about to start
    expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0)
    expect(page.get_by_test_id("stStatusWidgetRunningManIcon")).to_have_count(0)


def choose(page: Page, label: str, option: str) -> None:
    """Pick an option of a selectbox; a rerun elsewhere on the page (the process table's
    refresh) can close an open list, so try again if the option does not show."""
    box = page.get_by_test_id("stSelectbox").filter(has_text=label).first
    shown = box.get_by_role("combobox")
    for _ in range(5):
        box.click()
        item = page.get_by_role("option", name=re.compile(option))
        try:
            item.first.click(timeout=3_000)
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            continue
        settle(page)
        try:  # the choice holds once the app's rerun has taken it
            expect(shown).to_have_value(re.compile(option), timeout=5_000)
        except AssertionError:
            # Streamlit can drop a widget change that lands while a timed fragment rerun
            # (the runs table, the live charts) is under way: the box shows the old value.
            continue
        return
    raise AssertionError(f"option {option!r} of {label!r} was never chosen")
