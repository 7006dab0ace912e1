"""In a real browser: start JupyterLab from the Notebook page, run a cell in the embedded Lab,
open the license in a new tab from About, stop the server."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import WebSocket, expect

from tests.e2e.conftest import log_in, settle, shot, wait_for_shell
from tests.helpers import Server

pytestmark = pytest.mark.e2e


def test_jupyterlab_in_the_page_runs_a_cell(server: Server, new_page) -> None:
    page = new_page()
    page.goto(server.url + "/notebook")
    log_in(page, server)
    wait_for_shell(page)
    settle(page)
    expect(page.get_by_text("runs on the server as the crispml server's own account").first)
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_text(re.compile(r"JupyterLab: Running"))).to_be_visible(timeout=90_000)
    # The kernel's channels go through the proxy's WebSocket: count the frames that come back.
    frames: list[object] = []

    def follow(ws: WebSocket) -> None:
        if "/channels" in ws.url:
            ws.on("framereceived", lambda frame: frames.append(frame))

    page.on("websocket", follow)
    lab = page.frame_locator("iframe").first
    card = lab.locator(".jp-LauncherCard[data-category='Notebook']").first
    expect(card).to_be_visible(timeout=90_000)
    card.click()
    editor = lab.locator(".jp-Notebook .jp-Cell .cm-content").first
    expect(editor).to_be_visible(timeout=60_000)
    for _ in range(600):  # the kernel answered JupyterLab's first requests: it is connected
        if len(frames) >= 4:
            break
        page.wait_for_timeout(100)
    assert len(frames) >= 4, "the kernel's WebSocket carried nothing"
    page.wait_for_timeout(1000)
    editor.click()
    editor.type("import crispml_job, sys\nprint(6 * 7, sys.version_info[:2])")
    lab.get_by_title(re.compile("^Run this cell and advance")).first.click()
    output = lab.locator(".jp-OutputArea-output").first
    expect(output).to_contain_text("42 (3, 11)", timeout=60_000)
    page.get_by_role("heading", name="Notebook").scroll_into_view_if_needed()
    shot(page, "notebook")
    assert page.get_by_role("link", name="Open in a new tab").get_attribute("href") == (
        "/jupyter/admin/lab"
    )

    page.get_by_role("link", name="About").click()
    expect(page.get_by_role("heading", name="About crispml")).to_be_visible()
    with page.expect_popup() as popup:
        page.get_by_role("link", name="License").click()
    license_page = popup.value
    license_page.wait_for_load_state()
    assert license_page.url.endswith("/files/about/LICENSE")
    expect(license_page.locator("body")).to_contain_text("License")
    license_page.close()

    page.get_by_role("link", name="Notebook").click()
    settle(page)
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text(re.compile(r"JupyterLab: Not running"))).to_be_visible(timeout=60_000)
    assert "Not running" in server.cli("notebook", "status")
