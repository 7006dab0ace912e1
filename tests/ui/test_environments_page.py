"""The Environments page with AppTest, on real services (a real uv build, no downloads)."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from crispml.services import Services
from tests.helpers import USER_PASSWORD
from tests.ui.test_data_pages import button, session
from tests.ui.test_views import login_as


def _place_of_table(at: AppTest) -> int:
    return next(k for k, node in at.main.children.items() if node.type == "dataframe")


def test_admin_builds_checks_and_deletes_a_venv(svc: Services) -> None:
    at = session("environments")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["Name"]) == ["system"] and list(table["Kind"]) == ["system"]
    table_at = _place_of_table(at)
    build_name = next(t for t in at.text_input if t.label == "Name")
    build_name.input("Not OK")
    at.text_area[0].input("numpy>=1\n--extra-index-url http://x")
    button(at, "Build").click().run()
    assert "cannot name an environment" in at.error[0].value
    assert at.text_area[0].value.startswith("numpy>=1")  # nothing the user typed is lost
    assert svc.jobs.history(None) == []
    next(t for t in at.text_input if t.label == "Name").input("plain")
    at.text_area[0].input("")
    button(at, "Build").click().run()
    assert not at.exception
    assert "Building plain as job" in at.success[0].value
    # The message does not move the table: a page whose elements move shows each one twice
    # (new, and stale one place off) until the next run ends.
    assert _place_of_table(at) == table_at
    job = svc.jobs.history(None)[0]
    assert job.kind == "environment build"
    deadline = time.monotonic() + 120
    while not svc.jobs.get(0, job.id, admin=True).finished and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()
    assert not at.success and _place_of_table(at) == table_at
    table = at.dataframe[0].value
    assert list(table["Name"]) == ["system", "plain"]
    assert list(table["Health"])[1] == "healthy"
    at.selectbox(key="env.chosen").select("plain").run()
    button(at, ":material/stethoscope: Check health").click().run()
    assert "plain: healthy." in at.success[0].value
    at.selectbox(key="env.chosen").select("plain").run()
    button(at, "Delete").click().run()
    button(at, "Confirm").click().run()
    assert "Deleted plain." in at.success[0].value
    assert list(at.dataframe[0].value["Name"]) == ["system"]


def test_users_pick_the_environment_their_jobs_run_in(svc: Services) -> None:
    admin = svc.auth.first_admin()
    svc.environments.register_interpreter(admin, "py-local", "/usr/bin/python3")
    svc.auth.create_user("bob", USER_PASSWORD, actor="t")
    svc.auth.set_code("bob", True, actor="t")  # commands on the Jobs page need the permission
    login_as(svc, "bob", USER_PASSWORD)
    at = session("environments")
    assert not at.exception
    assert not [e for e in at.expander if "Build" in e.label]  # admins only
    at.selectbox(key="wsu.env.default").select("py-local").run()
    at.selectbox(key="env.chosen").select("py-local").run()
    assert not [b for b in at.button if b.label == "Delete"]
    jobs_page = session("jobs")  # a new session: the choice was kept
    assert jobs_page.selectbox(key="wsu.jobs.env").value == "py-local"
    jobs_page.text_input(key="wsu.jobs.command").input(
        "python -c 'import sys; print(sys.executable)'"
    )
    button(jobs_page, "Submit").click().run()
    job = svc.jobs.history(svc.auth.get_user("bob").id)[0]
    assert job.env == "py-local"
