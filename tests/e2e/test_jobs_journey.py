"""The process table in a real browser: it follows jobs without a page reload, and stops one."""

from __future__ import annotations

import sys

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, settle, shot, wait_for_shell
from tests.helpers import Server

pytestmark = pytest.mark.e2e


def submit(server: Server, name: str, seconds: int) -> str:
    code = f"import time\nfor i in range({seconds}): print('step', i, flush=True); time.sleep(1)"
    return server.cli("jobs", "submit", "--name", name, "--", sys.executable, "-c", code)


def test_the_process_table_follows_and_stops_jobs(server: Server, new_page) -> None:
    page = new_page()
    page.goto(server.url + "/jobs")
    log_in(page, server)
    wait_for_shell(page)
    expect(page.get_by_text("No work is running or queued.")).to_be_visible()
    long_run = submit(server, "long-run", 120)
    submit(server, "short-run", 30)
    # The tables refresh themselves (st.fragment run_every): no reload from here on. With no
    # job active when the page was drawn, the sidebar's list looks every 15 s.
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("short-run · running", exact=False)).to_be_visible(timeout=25_000)
    expect(sidebar.get_by_text("long-run · running", exact=False)).to_be_visible()
    shot(page, "jobs")
    # short-run ends on its own and leaves the table, still without a reload
    expect(sidebar.get_by_text("short-run", exact=False)).to_have_count(0, timeout=50_000)
    expect(sidebar.get_by_text("1 job active")).to_be_visible()
    # ... and the history, refreshed with the table from the same query, within one refresh.
    expect(page.get_by_text("2 job(s), 1 finished.")).to_be_visible(timeout=5_000)

    settle(page)
    page.get_by_role("button", name="Stop job").click()
    settle(page)  # the click's rerun has drawn the question: Confirm answers this one
    expect(page.get_by_text("Stop long-run (")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Stopping long-run (").first).to_be_visible()  # the toast
    expect(sidebar.get_by_text("No jobs running.")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("No work is running or queued.")).to_be_visible()
    status = server.cli("jobs", "status", long_run)
    assert "stopped" in status
    assert "SIGTERM" in status
