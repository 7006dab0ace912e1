"""A colleague without admin rights walks the newcomer's same path (tests/e2e/journey.py) on a
server where the admin already has work of every kind: a project, a file, a job, a registered
and deployed model, an API key, saved work and a running JupyterLab. The colleague must find
only their own, and their key must not reach the admin's model. (The model registry and the list
of deployments are shared by design, see the user guide; deploying and calling are not.)"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from crispml.core.saved_work import Snapshot
from tests.e2e.journey import Newcomer, options, walk_the_path
from tests.helpers import USER_PASSWORD, Server, free_port
from tests.models import IRIS_ROW, admin_home, wait_finished

pytestmark = [pytest.mark.e2e, pytest.mark.needs("torch")]


@dataclass
class AdminsWork:
    server: Server
    job_ids: list[str]
    key: str


@pytest.fixture(scope="module")
def admins_work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminsWork]:
    home = tmp_path_factory.mktemp("colleague") / "home"
    svc, admin, project = admin_home(home)
    iris = svc.modeling.resolve_data(admin, project, "sample:iris")
    run = svc.modeling.start(admin, iris.id, "logistic_regression", {})
    wait_finished(svc, run.id)
    svc.modeling.register(admin, run.id, "admins-iris")
    svc.deployments.deploy(admin, "admins-iris")
    _, key = svc.apikeys.create(admin, "admin's laptop")
    svc.saved_work.save(admin.id, "admin's work", "", Snapshot("modeling", {}), actor="admin")
    (svc.files.user_root("admin").path / "admin-notes.txt").write_text("the admin's own\n")
    svc.db.dispose()
    server = Server(home, env_extra={"CRISPML_API_PORT": str(free_port())}).start()
    server.cli("env", "create", "elsewhere", "--interpreter", sys.executable)
    server.add_user("bob")
    server.cli("user", "notebook", "bob")  # the admin allows bob JupyterLab
    server.cli("notebook", "start", "--user", "admin")
    jobs = re.findall(r"^([0-9a-f]{12})\s", server.cli("jobs", "list", "--user", "admin"), re.M)
    assert len(jobs) == 2  # the training run and JupyterLab
    yield AdminsWork(server, jobs, key)
    server.cli("notebook", "stop", "--user", "admin")
    server.stop()


@pytest.mark.long
@pytest.mark.timeout(600)
def test_a_colleague_walks_the_same_path_and_finds_only_their_own(
    admins_work: AdminsWork, new_page, tmp_path: Path
) -> None:
    server = admins_work.server
    bob = Newcomer(
        server, new_page, tmp_path, "bob", USER_PASSWORD,
        "Bob's flowers", "bob-iris", "bob's laptop", "bob's first model", "journey-colleague",
    )  # fmt: skip
    walk_the_path(bob)

    page = bob.page
    bob.nav("Business understanding")
    assert options(page, "Current project") == [bob.project]
    bob.nav("Files")
    items = options(page, "Item")
    assert "bob-classes.txt" in items and "admin-notes.txt" not in items, items  # notebook's
    bob.nav("Jobs")
    expect(page.get_by_text("No work is running or queued.")).to_be_visible()
    assert not any(job in page.content() for job in admins_work.job_ids)
    bob.nav("Saved work")
    assert options(page, "Saved work") == [bob.saved]
    bob.nav("Deployment")
    keys = options(page, "Key")
    assert len(keys) == 1 and bob.key_name in keys[0], keys
    assert options(page, "Model") == [bob.model]  # only their own to deploy
    bob.nav("Notebook")
    expect(page.get_by_text(re.compile(r"JupyterLab: Not running"))).to_be_visible()
    assert page.request.get(server.url + "/jupyter/admin/lab").status == 403
    assert page.request.get(server.url + "/files/~admin/admin-notes.txt").status in (403, 404)
    bob.step(12, "colleague")

    # The admin's key reaches the admin's model; the colleague's does not, and reaches theirs.
    def call(model: str, key: str) -> int:
        url = f"{server.url}/api/invocations?model={model}"
        headers = {"Authorization": f"Bearer {key}"}
        body = {"dataframe_records": [IRIS_ROW]}
        return requests.post(url, json=body, headers=headers, timeout=30).status_code

    assert call("admins-iris", admins_work.key) == 200
    assert call("admins-iris", bob.key) == 403
    assert call(bob.model, bob.key) == 200
    assert requests.get(f"{server.url}/api/models", timeout=30).status_code == 401
