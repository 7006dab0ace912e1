"""An admin walks the newcomer's whole path (tests/e2e/journey.py) in a real browser, on a
server as the README's first command leaves it plus a second environment."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crispml.services import build_services
from crispml.settings import Settings
from tests.e2e.journey import Newcomer, train_what_the_form_shows, walk_the_path
from tests.helpers import ADMIN_PASSWORD, Server, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.needs("torch")]


@pytest.fixture(scope="module")
def journey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("journey") / "home"
    server = Server(home, env_extra={"CRISPML_API_PORT": str(free_port())}).start()
    # What an admin sets up once: a second environment (here: another name for this Python).
    server.cli("env", "create", "elsewhere", "--interpreter", sys.executable)
    yield server
    server.stop()


@pytest.mark.long
@pytest.mark.timeout(600)
def test_the_newcomers_path(journey_server: Server, new_page, tmp_path: Path) -> None:
    admin = Newcomer(
        journey_server, new_page, tmp_path, "admin", ADMIN_PASSWORD,
        "Flowers and shapes", "iris-mlp", "my laptop", "my first model", "journey",
    )  # fmt: skip
    walk_the_path(admin)
    shown = train_what_the_form_shows(admin)

    # The run trained what the form showed: its parameters, as an operator reads them.
    services = build_services(Settings(home=journey_server.home))
    try:
        user = services.auth.get_user("admin")
        latest = max(
            (
                r
                for p in services.projects.list(user.id)
                for r in services.modeling.all(user.id, p.id)
            ),
            key=lambda r: r.created_at,
        )
        assert {k: str(v) for k, v in latest.params.items() if k in shown} == shown
    finally:
        services.db.dispose()

    # What the path left on the server, as an operator sees it.
    listed = journey_server.cli("models", "list")
    assert re.search(r"^iris-mlp\s+1\s.*\byes\b", listed, re.M), listed  # registered, deployed
    written = journey_server.home / "users" / "admin" / "files" / "admin-classes.txt"
    assert written.read_text() == "['setosa', 'versicolor', 'virginica']"  # by the notebook
