"""The login journey in a real browser: wrong password, lockout, login, refresh, logout, back."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, shot, wait_for_shell
from tests.helpers import Server

pytestmark = pytest.mark.e2e


def test_login_journey(server: Server, new_page) -> None:
    page = new_page()
    page.goto(server.url + "/modeling")
    expect(page).to_have_url(server.url + "/login?next=%2Fmodeling")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    shot(page, "login")

    log_in(page, server, password="not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Invalid user name or password.")
    expect(page.locator("#username")).to_have_value("admin")
    shot(page, "login-wrong-password")

    log_in(page, server)
    wait_for_shell(page)
    expect(page).to_have_url(server.url + "/modeling")  # the page first asked for
    expect(page.get_by_role("heading", name="Modeling")).to_be_visible()
    nav = page.get_by_test_id("stSidebarNav")
    for label in [
        "CRISP-DM",
        "Business understanding",
        "Data understanding",
        "Data preparation",
        "Evaluation",
        "Deployment",
        "Workspace",
        "Files",
        "Jobs",
        "Saved work",
        "Notebook",
        "Account",
        "My account",
        "Admin",
        "Users and sessions",
    ]:
        expect(nav.get_by_text(label, exact=True)).to_be_visible()
    expect(page.get_by_text("Signed in as admin (admin)")).to_be_visible()

    nav.get_by_text("Business understanding", exact=True).click()
    expect(page.get_by_role("heading", name="Business understanding")).to_be_visible()
    expect(page.get_by_text("Iris species").first).to_be_visible()
    shot(page, "shell")

    page.reload()
    wait_for_shell(page)
    expect(page.get_by_role("heading", name="Business understanding")).to_be_visible()

    # Another tab of the same browser shares the login; logging out in one ends it in both.
    other = page.context.new_page()
    other.goto(server.url + "/evaluation")
    wait_for_shell(other)

    page.get_by_role("link", name="Log out").click()
    expect(page).to_have_url(server.url + "/login?logged_out=1")
    expect(page.get_by_role("alert")).to_have_text("You have logged out.")
    shot(page, "logged-out")

    page.go_back()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_text("Signed in as")).to_have_count(0)

    other.reload()
    expect(other.get_by_role("button", name="Log in")).to_be_visible()


def test_lockout_message_in_the_browser(server: Server, new_page) -> None:
    server.add_user("grace")
    page = new_page()
    page.goto(server.url + "/login")
    for _ in range(5):
        log_in(page, server, "grace", "wrong-password")
        expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts. Try again after")
    log_in(page, server, "grace", "lilac-harbor-93")
    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts")
    shot(page, "login-locked")


def test_non_admin_sees_no_admin_section(server: Server, new_page) -> None:
    server.add_user("heidi")
    page = new_page()
    page.goto(server.url + "/")
    log_in(page, server, "heidi", "lilac-harbor-93")
    wait_for_shell(page)
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_text("Business understanding", exact=True)).to_be_visible()
    expect(nav.get_by_text("Admin", exact=True)).to_have_count(0)
    expect(nav.get_by_text("Users and sessions", exact=True)).to_have_count(0)
    page.goto(server.url + "/admin-users")
    wait_for_shell(page)
    expect(page.get_by_text("Users and sessions")).to_have_count(0)
    expect(page.get_by_text("You have no projects yet.")).to_be_visible()
