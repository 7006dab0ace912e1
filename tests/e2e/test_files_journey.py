"""The file explorer in a real browser: create a folder, upload a CSV, preview, rename,
download, delete; another user sees none of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.e2e.conftest import choose, log_in, settle, shot, wait_for_shell
from tests.helpers import Server

pytestmark = pytest.mark.e2e
CSV = "sepal_length,species\n5.1,setosa\n6.2,virginica\n"


def test_files_journey(server: Server, new_page, tmp_path: Path) -> None:
    upload = tmp_path / "iris.csv"
    upload.write_text(CSV)
    page = new_page()
    page.goto(server.url + "/files")
    log_in(page, server)
    wait_for_shell(page)
    expect(page.get_by_role("heading", name="Files")).to_be_visible()

    expect(page.get_by_role("button", name="New folder")).to_have_count(1)
    page.get_by_role("button", name="New folder").click()
    page.get_by_label("Folder name").fill("datasets")
    page.get_by_role("button", name="Create folder").click()
    expect(page.get_by_text("Created folder 'datasets'.").first).to_be_visible()
    page.get_by_role("button", name="datasets").first.click()  # open it from the tree
    expect(page.get_by_text("This folder is empty.")).to_be_visible()

    upload_button = page.get_by_role("button", name="Upload")
    dropzone = page.get_by_test_id("stFileUploaderDropzoneInput")
    for _ in range(3):  # a rerun in flight (on a loaded machine) can swallow the first click
        settle(page)
        # Streamlit can show the previous run's button beside the new one for a moment.
        expect(upload_button).to_have_count(1)
        upload_button.click()
        try:
            dropzone.wait_for(state="attached", timeout=8_000)
            break
        except PlaywrightTimeout:
            continue
    dropzone.set_input_files(str(upload))
    expect(page.get_by_test_id("stFileUploaderDropzoneInstructions")).to_have_count(0)
    page.get_by_role("button", name="Upload", exact=True).last.click()
    expect(page.get_by_text("Uploaded iris.csv.").first).to_be_visible()

    choose(page, "Item", re.escape("iris.csv"))  # the grid is a canvas
    expect(page.get_by_text("The first 2 rows.")).to_be_visible()  # the CSV preview
    shot(page, "files")

    with page.expect_download() as download:
        page.evaluate(
            "url => { const a = document.createElement('a'); a.href = url; a.download = '';"
            " document.body.appendChild(a); a.click(); }",
            page.get_by_role("link", name="Download").get_attribute("href"),
        )
    saved = tmp_path / "downloaded.csv"
    download.value.save_as(saved)
    assert saved.read_text() == CSV

    page.get_by_label("Rename to").fill("iris-2026.csv")
    page.get_by_role("button", name="Rename", exact=True).click()
    expect(page.get_by_text("Renamed 'iris.csv' to 'iris-2026.csv'.").first).to_be_visible()
    assert (server.home / "users/admin/files/datasets/iris-2026.csv").read_text() == CSV

    page.get_by_role("button", name="My files").first.click()
    expect(page.get_by_role("button", name="/ datasets")).to_have_count(0)  # back at the root
    expect(page.get_by_text("1 item · page 1 of 1.")).to_have_count(1)
    choose(page, "Item", re.escape("datasets"))  # the grid is a canvas
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("the folder 'datasets' and the 1 file in it")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Deleted 'datasets' (1 file).").first).to_be_visible()
    assert not (server.home / "users/admin/files/datasets").exists()


def test_another_user_sees_only_their_own_files(server: Server, new_page) -> None:
    (server.home / "users/admin/files/private-report.txt").parent.mkdir(parents=True, exist_ok=True)
    (server.home / "users/admin/files/private-report.txt").write_text("secret")
    server.add_user("ivan")
    page = new_page()
    page.goto(server.url + "/files")
    log_in(page, server, "ivan", "lilac-harbor-93")
    wait_for_shell(page)
    expect(page.get_by_text("This folder is empty.")).to_be_visible()
    expect(page.get_by_text("private-report.txt")).to_have_count(0)
    page.get_by_test_id("stSelectbox").first.click()
    expect(page.get_by_role("option")).to_have_count(1)  # only "My files"
    page.keyboard.press("Escape")
    response = page.request.get(server.url + "/files/~admin/private-report.txt")
    assert response.status == 403
