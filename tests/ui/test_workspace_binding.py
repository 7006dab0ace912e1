"""Autosave and restore through the real entry script (crispml/ui/main.py) with AppTest.

Each ``AppTest`` is a new browser session: a refresh, a new tab or another browser.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from crispml.core.workspace import USER_SCOPE, encode
from crispml.services import Services

MAIN = str(Path(__file__).parents[2] / "crispml" / "ui" / "main.py")


def session() -> AppTest:
    return AppTest.from_file(MAIN, default_timeout=30).run()


def revision(svc: Services) -> int:
    return svc.workspace.revision(svc.auth.first_admin().id)[0]


def test_one_write_per_changed_run_and_none_otherwise(svc: Services) -> None:
    at = session()
    assert not at.exception
    after_first = revision(svc)
    assert after_first == 1  # the page and the current project, in one write
    at.run()
    at.run()
    assert revision(svc) == after_first  # nothing changed: no write
    at.text_input(key="wsu.business.new.name").input("Draft").run()
    assert revision(svc) == after_first + 1
    at.text_area(key="wsu.business.new.goal").input("A goal")
    at.text_area(key="wsu.business.new.notes").input("Notes")
    at.run()  # two changes in one run: still one write
    assert revision(svc) == after_first + 2


def test_a_new_session_gets_the_same_values(svc: Services) -> None:
    at = session()
    at.text_input(key="wsu.business.new.name").input("Draft churn").run()
    at.text_input(key="ws.business.edit.name").input("Iris (edited)").run()
    again = session()  # refresh, another tab, another browser, or after a server restart
    assert again.text_input(key="wsu.business.new.name").value == "Draft churn"
    assert again.text_input(key="ws.business.edit.name").value == "Iris (edited)"
    assert any("Unsaved edits" in c.value for c in again.caption)


def test_values_follow_their_project(svc: Services) -> None:
    admin = svc.auth.first_admin()
    at = session()
    iris = at.selectbox(key="wsu.project").value
    at.text_input(key="ws.business.edit.name").input("Iris draft").run()
    at.text_input(key="wsu.business.new.name").input("Second").run()
    next(b for b in at.button if b.label == "Create project").click().run()
    second = at.selectbox(key="wsu.project").value
    assert second != iris
    assert at.text_input(key="ws.business.edit.name").value == "Second"  # its own values
    at.selectbox(key="wsu.project").select(iris).run()
    assert at.text_input(key="ws.business.edit.name").value == "Iris draft"
    stored = svc.workspace.load(admin.id, (f"p{iris}",)).values
    assert stored["ws.business.edit.name"] == encode("Iris draft")


def test_a_new_session_lands_on_the_last_page(svc: Services) -> None:
    admin = svc.auth.first_admin()
    svc.workspace.save(
        admin.id, {USER_SCOPE: {"wsu.page": encode("saved-work")}}, writer="other", known_revision=0
    )
    at = session()
    assert not at.exception
    assert at.title[0].value == "Saved work"


def test_start_fresh_clears_the_workspace(svc: Services) -> None:
    at = session()
    at.text_input(key="wsu.business.new.name").input("Draft").run()
    admin = svc.auth.first_admin()
    svc.workspace.clear(admin.id, writer="another tab")
    fresh = session()
    assert fresh.text_input(key="wsu.business.new.name").value == ""


def saved_work_page() -> AppTest:
    return AppTest.from_string(
        "from crispml.ui import context, workspace\nfrom crispml.ui.views import saved_work\n"
        "a = context.require_login()\nworkspace.restore(a.user.id)\nsaved_work.render()\n"
        "workspace.autosave(a.user.id)\n",
        default_timeout=30,
    ).run()


def click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def test_saving_with_a_bad_name_says_why(svc: Services) -> None:
    at = saved_work_page()
    click(at, "Save")
    assert at.error[0].value == "Saved work needs a name."
    at.text_input(key="wsu.saved.name").input("n" * 100).run()
    click(at, "Save")
    at.text_input(key="wsu.saved.name").input("n" * 100).run()
    click(at, "Save")
    assert "already have saved work named" in at.error[0].value
    assert at.text_input(key="wsu.saved.name").value == "n" * 100  # kept, to fix and retry


def test_loading_work_whose_project_is_gone_lists_it(svc: Services) -> None:
    from crispml.core.projects import ProjectFields

    admin = svc.auth.first_admin()
    doomed = svc.projects.create(admin.id, ProjectFields("Doomed"), actor="t")
    at = session()
    at.selectbox(key="wsu.project").select(doomed.id).run()
    page = saved_work_page()
    page.text_input(key="wsu.saved.name").input("on doomed").run()
    click(page, "Save")
    svc.projects.delete(admin.id, doomed.id, actor="t")
    page = saved_work_page()
    click(page, "Load")
    if any(b.label == "Confirm" for b in page.button):
        click(page, "Confirm")
    assert "Loaded 'on doomed'." in page.success[0].value
    assert "These no longer exist: project 'Doomed'" in page.warning[0].value


def test_start_fresh_needs_confirmation(svc: Services) -> None:
    at = session()
    at.text_input(key="wsu.business.new.name").input("Draft").run()
    page = saved_work_page()
    click(page, "Start fresh")
    assert "Clear your whole workspace?" in page.warning[0].value
    assert session().text_input(key="wsu.business.new.name").value == "Draft"  # not yet
    click(page, "Confirm")
    assert "Your workspace is fresh." in page.success[0].value
    assert session().text_input(key="wsu.business.new.name").value == ""


def test_a_wrong_typed_stored_value_does_not_break_the_page(svc: Services) -> None:
    admin = svc.auth.first_admin()
    svc.workspace.save(
        admin.id,
        {USER_SCOPE: {"wsu.business.new.name": encode({"not": "text"})}},
        writer="old version",
        known_revision=0,
    )
    at = session()
    assert not at.exception
    assert at.text_input(key="wsu.business.new.name").value == ""


def test_an_unexpected_page_error_shows_a_reference_not_a_traceback(svc: Services) -> None:
    at = AppTest.from_string(
        "from crispml.app import on_script_error\non_script_error(ValueError('boom'))\n",
        default_timeout=30,
    ).run()
    message = at.error[0].value
    assert message.startswith("Something went wrong on this page (reference ")
    assert "boom" not in message
    assert "Traceback" not in message


def test_saved_work_is_listed_a_page_at_a_time(svc: Services) -> None:
    from crispml.core.saved_work import Snapshot

    admin = svc.auth.first_admin()
    for i in range(60):
        svc.saved_work.save(admin.id, f"work {i:02d}", "", Snapshot("business", {}), actor="t")
    page = saved_work_page()
    assert len(page.dataframe[0].value) == 50
    assert page.dataframe[0].value["Name"].iloc[0] == "work 59"  # the newest first
    assert any(c.value == "Saved work 1 to 50 of 60" for c in page.caption)
    page.number_input(key="saved.page").set_value(2).run()
    assert list(page.dataframe[0].value["Name"]) == [f"work {i:02d}" for i in range(9, -1, -1)]
    assert any(c.value == "Saved work 51 to 60 of 60" for c in page.caption)
    assert page.selectbox(key="saved.chosen").options[0] == "work 09"  # chosen from this page
