"""Pages through Streamlit's AppTest, against real services on a real SQLite file.

AppTest cannot send cookies, so the token comes from ``context.use_token_source``: the page still
validates it through the real AuthService, exactly as with a browser cookie.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crispml.core.projects import ProjectFields
from crispml.services import Services
from crispml.ui import context
from tests.helpers import ADMIN_PASSWORD

MAIN = str(Path(__file__).parents[2] / "crispml" / "ui" / "main.py")


def login_as(svc: Services, username: str, password: str = ADMIN_PASSWORD) -> None:
    token = svc.auth.login(username, password).token
    context.use_token_source(lambda: token)


def page(module: str, function: str = "render") -> AppTest:
    return AppTest.from_string(
        f"from crispml.ui.views import {module}\n{module}.{function}()\n", default_timeout=30
    )


def test_shell_shows_sections_and_who_is_logged_in(app_services: Services) -> None:
    login_as(app_services, "admin")
    at = AppTest.from_file(MAIN, default_timeout=30).run()
    assert not at.exception
    assert "Signed in as **admin** (admin)" in at.sidebar.markdown[0].value
    assert at.title[0].value == "Business understanding"  # the default page
    assert at.selectbox[0].value is not None  # the demo project made on first start


def test_a_page_that_fails_shows_a_message_with_a_reference_not_a_traceback(
    app_services: Services, monkeypatch, caplog
) -> None:
    from crispml.ui.views import business

    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(business, "current_project", broken)
    login_as(app_services, "admin")
    at = AppTest.from_file(MAIN, default_timeout=30).run()
    assert not at.exception  # Streamlit's own error box (with the traceback) is not shown
    message = at.error[0].value
    assert message.startswith("This page failed (RuntimeError: a bug)")
    reference = message.split("the reference ")[1].split(" ")[0]
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the server log
    assert "Signed in as" in at.sidebar.markdown[0].value  # the rest of the app still works


def test_no_session_stops_the_page(app_services: Services) -> None:
    context.use_token_source(lambda: "not-a-valid-token")
    at = AppTest.from_file(MAIN, default_timeout=30).run()
    assert "Your session has ended" in at.error[0].value
    assert not at.title


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_create_switch_and_edit_projects(app_services: Services) -> None:
    login_as(app_services, "admin")
    admin = app_services.auth.first_admin()
    at = page("business").run()
    at.text_input(key="wsu.business.new.name").input("Churn")
    at.text_area(key="wsu.business.new.goal").input("Keep customers")
    button(at, "Create project").click().run()
    assert not at.exception
    assert "Created project 'Churn'." in at.success[0].value
    churn = next(p for p in app_services.projects.list(admin.id) if p.name == "Churn")
    assert at.selectbox(key="wsu.project").value == churn.id
    assert at.text_input(key="wsu.business.new.name").value == ""  # the draft is cleared
    # Same name again: a readable error, nothing created, the draft kept.
    at.text_input(key="wsu.business.new.name").input("Churn")
    button(at, "Create project").click().run()
    assert "already have a project named 'Churn'" in at.error[0].value
    assert at.text_input(key="wsu.business.new.name").value == "Churn"
    # No name: the message in the panel, which stays open.
    at.text_input(key="wsu.business.new.name").input("")
    button(at, "Create project").click().run()
    panel = next(e for e in at.expander if e.label == "New project")
    assert panel.proto.expanded
    assert [e.value for e in panel.error] == ["A project needs a name."]
    names = [p.name for p in app_services.projects.list(admin.id)]
    assert sorted(names) == ["Churn", "Iris species"]


def test_edit_the_current_project(app_services: Services) -> None:
    login_as(app_services, "admin")
    admin = app_services.auth.first_admin()
    at = page("business").run()
    assert button(at, "Save changes").disabled  # nothing edited yet
    at.text_input(key="ws.business.edit.name").input("Iris, renamed").run()
    assert any("Unsaved edits" in c.value for c in at.caption)
    button(at, "Save changes").click().run()
    assert "Saved project 'Iris, renamed'." in at.success[0].value
    assert [p.name for p in app_services.projects.list(admin.id)] == ["Iris, renamed"]
    at.text_area(key="ws.business.edit.goal").input("something else").run()
    button(at, "Discard edits").click().run()
    assert at.text_area(key="ws.business.edit.goal").value == (
        app_services.projects.list(admin.id)[0].goal
    )


def test_users_only_see_their_own_projects(app_services: Services) -> None:
    bob = app_services.auth.create_user("bob", "lilac-harbor-93", actor="t")
    app_services.projects.create(bob.id, ProjectFields("Bob's project"), actor="bob")
    login_as(app_services, "bob", "lilac-harbor-93")
    at = page("business").run()
    options = at.selectbox[0].options
    assert options == ["Bob's project"]


def test_admin_pages_refuse_non_admins(app_services: Services) -> None:
    app_services.auth.create_user("bob", "lilac-harbor-93", actor="t")
    login_as(app_services, "bob", "lilac-harbor-93")
    for function in ("render_users", "render_audit"):
        at = page("admin", function).run()
        assert at.error[0].value == "This page is for admins."
        assert not at.dataframe
    shell = AppTest.from_file(MAIN, default_timeout=30).run()
    assert "(user)" in shell.sidebar.markdown[0].value


def test_admin_creates_a_user_with_a_generated_password(app_services: Services) -> None:
    login_as(app_services, "admin")
    at = page("admin", "render_users").run()
    create_name = next(t for t in at.text_input if t.label == "User name")
    create_name.input("frank")
    next(b for b in at.button if b.label == "Create user").click().run()
    assert not at.exception
    shown = at.code[0].value
    assert app_services.auth.login("frank", shown).user.role == "user"


def test_admin_disables_a_user_after_confirming(app_services: Services) -> None:
    app_services.auth.create_user("bob", "lilac-harbor-93", actor="t")
    login_as(app_services, "admin")
    at = page("admin", "render_users").run()
    at.selectbox(key="admin.manage_user").select("bob").run()
    next(b for b in at.button if b.label == "Disable account").click().run()
    assert "Their sessions end at once" in at.warning[0].value
    assert app_services.auth.get_user("bob").active  # nothing happens before confirming
    next(b for b in at.button if b.label == "Confirm").click().run()
    assert "Disabled 'bob'." in at.success[0].value
    assert not app_services.auth.get_user("bob").active


def test_admin_revokes_a_session(app_services: Services) -> None:
    app_services.auth.create_user("bob", "lilac-harbor-93", actor="t")
    bob = app_services.auth.login("bob", "lilac-harbor-93")
    login_as(app_services, "admin")
    at = page("admin", "render_users").run()
    at.selectbox(key="admin.session").select(bob.session_id).run()
    next(b for b in at.button if b.label == "Revoke session").click().run()
    next(b for b in at.button if b.label == "Confirm").click().run()
    assert f"Revoked session {bob.session_id}." in at.success[0].value
    assert app_services.auth.authenticate(bob.token) is None


def test_user_changes_their_own_password(app_services: Services) -> None:
    app_services.auth.create_user("bob", "lilac-harbor-93", actor="t")
    other = app_services.auth.login("bob", "lilac-harbor-93")
    login_as(app_services, "bob", "lilac-harbor-93")
    at = AppTest.from_string(
        "from crispml.ui import context\nfrom crispml.ui.views import account\n"
        "context.require_login()\naccount.render()\n",
        default_timeout=30,
    ).run()
    at.text_input[0].input("lilac-harbor-93")
    at.text_input[1].input("new-orchid-771")
    at.text_input[2].input("new-orchid-772")
    at.button[0].click().run()
    assert "The two new passwords differ." in at.error[0].value
    at.text_input[0].input("lilac-harbor-93")
    at.text_input[1].input("new-orchid-771")
    at.text_input[2].input("new-orchid-771")
    at.button[0].click().run()
    assert not at.exception
    assert "Password changed." in at.success[0].value
    assert app_services.auth.authenticate(other.token) is None
    assert app_services.auth.login("bob", "new-orchid-771")


def test_notebooks_need_permission_and_admins_grant_it(app_services: Services) -> None:
    app_services.auth.create_user("nina", "lilac-harbor-93", actor="test")
    login_as(app_services, "nina", "lilac-harbor-93")
    at = page("notebook").run()
    assert not at.exception
    assert "Running code is not enabled for your account" in at.warning[0].value
    assert "your own OS account" in at.warning[0].value
    assert not at.button  # nothing to start
    login_as(app_services, "admin")
    users = page("admin", "render_users").run()
    users.selectbox(key="admin.manage_user").select("nina").run()
    users.toggle(key="code-nina").set_value(True).run()
    assert not users.exception
    assert "'nina' may run code." in users.success[0].value
    assert app_services.auth.get_user("nina").code
    login_as(app_services, "nina", "lilac-harbor-93")
    at = page("notebook").run()
    assert [b.label for b in at.button] == ["Start"]
    assert "Not started." in at.markdown[0].value


def test_the_command_box_needs_the_code_permission(app_services: Services) -> None:
    app_services.auth.create_user("nina", "lilac-harbor-93", actor="test")
    login_as(app_services, "nina", "lilac-harbor-93")
    at = page("jobs").run()
    assert not at.exception
    notes = [i.value for i in at.info]
    assert "No work is running or queued. Train a model." in notes
    assert any("Running commands is not enabled for your account" in n for n in notes)
    assert "Command" not in [t.label for t in at.text_input]
    app_services.auth.set_code("nina", True, actor="test")
    at = page("jobs").run()
    assert "Command" in [t.label for t in at.text_input]


@pytest.mark.needs("torch")
def test_about_shows_the_version_license_and_notices(app_services: Services) -> None:
    login_as(app_services, "admin")
    at = page("about").run()
    assert not at.exception
    assert at.title[0].value == "About crispml"
    packages = at.dataframe[0].value
    assert {"streamlit", "jupyterlab", "torch"} <= {p.lower() for p in packages["Package"]}
    streamlit_license = packages[packages["Package"].str.lower() == "streamlit"]["License"]
    assert "Apache" in streamlit_license.iloc[0]


def test_admin_lists_users_and_events_a_page_at_a_time(
    app_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crispml.ui.views import admin

    monkeypatch.setattr(admin, "USERS_PAGE_SIZE", 3)
    monkeypatch.setattr(admin, "AUDIT_PAGE_SIZE", 4)
    for name in ("ann", "bea", "cal", "dan", "eve"):
        app_services.auth.create_user(name, "lilac-harbor-93", actor="t")
    login_as(app_services, "admin")
    at = page("admin", "render_users").run()
    assert list(at.dataframe[0].value["User"]) == ["admin", "ann", "bea"]
    assert any(c.value == "Users 1 to 3 of 6" for c in at.caption)
    at.number_input(key="admin.users.page").set_value(2).run()
    assert list(at.dataframe[0].value["User"]) == ["cal", "dan", "eve"]
    assert at.selectbox(key="admin.manage_user").options == ["cal", "dan", "eve"]
    at.text_input(key="admin.users.search").input("AN").run()  # back to the first page
    assert list(at.dataframe[0].value["User"]) == ["ann", "dan"]
    assert any(c.value == "Users 1 to 2 of 2" for c in at.caption)
    at.text_input(key="admin.users.search").input("zz").run()
    assert "No user matches the search." in [c.value for c in at.caption]
    assert not at.exception

    events = page("admin", "render_audit").run()
    assert len(events.dataframe[0].value) == 4
    total = len(app_services.audit.recent(1000))
    assert any(c.value == f"Events 1 to 4 of {total}" for c in events.caption)
    events.text_input(key="admin.audit.actor").input("t").run()
    assert set(events.dataframe[0].value["Who"]) == {"t"}
    assert any(c.value == "Events 1 to 4 of 5" for c in events.caption)
    events.number_input(key="admin.audit.page").set_value(2).run()
    assert list(events.dataframe[0].value["Target"]) == ["ann"]  # the oldest of the five
