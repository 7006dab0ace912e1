"""Work survives refresh, restart and a change of browser; two tabs never lose values silently;
named saved work can be saved, loaded and deleted. In a real browser against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import log_in, settle, shot, wait_for_shell
from tests.helpers import Server

pytestmark = pytest.mark.e2e


def nav(page: Page, label: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(label, exact=True).click()
    expect(page.get_by_role("heading", name=label)).to_be_visible()


def type_into(page: Page, label: str, text: str, nth: int = 0) -> None:
    field = page.get_by_label(label, exact=True).nth(nth)
    field.fill(text)
    field.press("Tab")  # Streamlit sends the value on blur
    settle(page)


def new_project_name(page: Page):
    return page.get_by_label("Name", exact=True).last


def test_workspace_survives_refresh_restart_and_browsers(tmp_path: Path, new_page) -> None:
    server = Server(tmp_path / "home").start()
    try:
        page = new_page()
        page.goto(server.url + "/")
        log_in(page, server)
        wait_for_shell(page)
        # Page 1: a draft for a new project and an unsaved edit of the current one.
        page.get_by_text("New project").click()
        new_project_name(page).fill("Draft churn")
        new_project_name(page).press("Tab")
        settle(page)
        page.get_by_role("tab", name="Edit").click()
        type_into(page, "Goal", "An edited goal, not saved yet")
        # Page 2: the name for a save.
        nav(page, "Saved work")
        type_into(page, "Name", "first save")
        shot(page, "workspace-before-refresh")

        page.reload()
        wait_for_shell(page)
        expect(page.get_by_role("heading", name="Saved work")).to_be_visible()
        expect(page.get_by_label("Name", exact=True).first).to_have_value("first save")

        server.stop()
        server.start()
        page.reload()
        wait_for_shell(page)
        expect(page.get_by_role("heading", name="Saved work")).to_be_visible()
        expect(page.get_by_label("Name", exact=True).first).to_have_value("first save")

        other = new_page()  # another browser: its own cookies, a new login
        other.goto(server.url + "/")
        log_in(other, server)
        wait_for_shell(other)
        expect(other).to_have_url(server.url + "/saved-work")  # the page they were on
        expect(other.get_by_label("Name", exact=True).first).to_have_value("first save")
        nav(other, "Business understanding")
        other.get_by_text("New project").click()
        expect(new_project_name(other)).to_have_value("Draft churn")
        other.get_by_role("tab", name="Edit").click()
        expect(other.get_by_label("Goal").first).to_have_value("An edited goal, not saved yet")
        shot(other, "workspace-other-browser")
    finally:
        server.stop()


def test_two_tabs_see_each_others_changes(server: Server, new_page) -> None:
    tab_a = new_page()
    tab_a.goto(server.url + "/")
    log_in(tab_a, server)
    wait_for_shell(tab_a)
    nav(tab_a, "Saved work")
    tab_b = tab_a.context.new_page()
    tab_b.goto(server.url + "/saved-work")
    wait_for_shell(tab_b)

    type_into(tab_a, "Name", "from tab A")
    notice = tab_b.get_by_text("Your workspace changed in another tab or browser.")
    expect(notice).to_be_visible(timeout=15_000)  # polled, without a page rerun
    shot(tab_b, "workspace-changed-elsewhere")
    # Tab B, not yet reloaded, changes another value: both values are kept.
    type_into(tab_b, "Description (optional)", "from tab B")
    tab_b.get_by_role("button", name="Reload workspace").click()
    expect(tab_b.get_by_label("Name", exact=True).first).to_have_value("from tab A")
    expect(tab_b.get_by_label("Description (optional)")).to_have_value("from tab B")
    tab_a.reload()
    wait_for_shell(tab_a)
    expect(tab_a.get_by_label("Name", exact=True).first).to_have_value("from tab A")
    expect(tab_a.get_by_label("Description (optional)")).to_have_value("from tab B")


def server_saved_work(server: Server) -> list[str]:
    from crispml.services import build_services
    from crispml.settings import Settings

    svc = build_services(Settings(home=server.home))
    try:
        return [i.name for i in svc.saved_work.page(None).items]
    finally:
        svc.db.dispose()


def test_save_load_export_import_and_delete(server: Server, new_page, tmp_path: Path) -> None:
    page = new_page()
    page.goto(server.url + "/")
    log_in(page, server)
    wait_for_shell(page)
    nav(page, "Business understanding")
    page.get_by_role("tab", name="Edit").click()
    type_into(page, "Notes", "notes at save time")
    nav(page, "Saved work")
    type_into(page, "Name", "baseline")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved your workspace as 'baseline'.").first).to_be_visible()
    expect(page.get_by_role("button", name="Export as file")).to_be_visible()  # an item listed
    expect(page.get_by_text("Nothing saved yet.")).to_have_count(0)
    shot(page, "saved-work")

    nav(page, "Business understanding")
    page.get_by_role("tab", name="Edit").click()
    type_into(page, "Notes", "changed afterwards")
    nav(page, "Saved work")
    page.get_by_role("button", name="Load", exact=True).click()
    expect(page.get_by_text("Loading replaces them.")).to_be_visible()  # unsaved changes: ask
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Loaded 'baseline'.").first).to_be_visible()
    nav(page, "Business understanding")
    page.get_by_role("tab", name="Edit").click()
    expect(page.get_by_label("Notes").first).to_have_value("notes at save time")

    nav(page, "Saved work")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export as file").click()
    assert download.value.suggested_filename == "baseline.crispml.json"
    exported = str(tmp_path / download.value.suggested_filename)
    download.value.save_as(exported)
    assert json.loads(Path(exported).read_text())["name"] == "baseline"
    bad = tmp_path / "not-saved-work.json"
    bad.write_text('{"format": "crispml-saved-work", "schema": 99, "values": {}}')
    page.get_by_text("Import saved work").click()
    uploader = page.get_by_test_id("stFileUploaderDropzoneInput")
    uploader.set_input_files(str(bad))
    uploaded = page.get_by_test_id("stFileUploaderDropzoneInstructions")
    expect(uploaded).to_have_count(0)  # the file took the dropzone's place
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("made by a newer crispml (schema 99)")).to_be_visible()
    uploader.set_input_files(exported)
    expect(uploaded).to_have_count(0)
    page.get_by_label("Name (optional; the file's name otherwise)").fill("imported copy")
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_text("Imported 'imported copy'.").first).to_be_visible()

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Deleted").first).to_be_visible()
    assert len(server_saved_work(server)) == 1
