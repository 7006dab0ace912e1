"""An admin builds a venv in the browser, watches uv's output, and runs a job in it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import choose, log_in, settle, shot, wait_for_shell
from tests.helpers import Server

pytestmark = pytest.mark.e2e


def test_build_a_venv_and_run_a_job_in_it(server: Server, new_page) -> None:
    page = new_page()
    page.goto(server.url + "/environments")
    log_in(page, server)
    wait_for_shell(page)
    expect(page.get_by_role("heading", name="Environments")).to_be_visible()
    settle(page)
    page.get_by_text("Build a new venv with uv").click()
    form = page.get_by_test_id("stForm").first
    expect(form.get_by_label("Name")).to_be_visible()
    settle(page)
    form.get_by_label("Name").fill("old-packaging")
    form.get_by_role("textbox", name="Requirements, one per line").fill("packaging==23.2")
    settle(page)
    form.get_by_role("button", name="Build").click()
    expect(page.get_by_text("Building old-packaging as job", exact=False).first).to_be_visible()
    # While it builds, the page follows uv's output (a fragment); then the table shows it ready.
    table = page.get_by_test_id("stDataFrame")
    expect(table).to_contain_text("building")
    expect(table).to_contain_text("healthy", timeout=90_000)  # the system's is "not checked"
    settle(page)
    choose(page, "Environment details", re.escape("old-packaging (venv)"))
    expect(page.get_by_text("Healthy when checked at", exact=False)).to_be_visible()
    expect(page.get_by_role("link", name="Build log")).to_be_visible()
    shot(page, "environments")

    page.goto(server.url + "/jobs")
    wait_for_shell(page)
    settle(page)
    page.get_by_text("Run a command as a job").click()
    page.get_by_role("textbox", name="Command").fill(
        "python -c \"import packaging, sys; print('saw', packaging.__version__, sys.prefix)\""
    )
    page.get_by_label("Name (optional)").fill("which-packaging")
    page.get_by_label("Name (optional)").press("Enter")
    settle(page)
    choose(page, "Environment", "old-packaging")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text("Submitted job", exact=False).first).to_be_visible()
    job_id = server.cli("jobs", "list").splitlines()[1].split()[0]
    assert "which-packaging" in server.cli("jobs", "list").splitlines()[1]
    for _ in range(60):
        if "succeeded" in server.cli("jobs", "status", job_id):
            break
    log = server.cli("jobs", "logs", job_id)
    assert log.startswith("saw 23.2 ") and log.strip().endswith("/envs/old-packaging")
