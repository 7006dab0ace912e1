"""Playwright driving Debian's Chromium (Playwright cannot download its own browsers here)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
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
    contexts = []

    def make() -> Page:
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        ctx.set_default_timeout(20_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


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
    for _ in range(5):
        page.get_by_test_id("stSelectbox").filter(has_text=label).first.click()
        item = page.get_by_role("option", name=re.compile(option))
        try:
            item.first.click(timeout=3_000)
            settle(page)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"option {option!r} of {label!r} never showed")
