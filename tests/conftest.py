from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import pytest
from filelock import FileLock

from crispml.services import Services, bootstrap, build_services
from crispml.settings import Settings
from crispml.store.db import Database
from crispml.store.migrate import upgrade
from tests.helpers import ADMIN_PASSWORD, Server, create_pg_database, drop_pg_database
from tests.models import Trained, open_trained, train_template


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a test marked ``long`` first, so that with ``--dist loadfile`` the two
    workers start on them and finish together on the many short files."""
    long_files = {item.path for item in items if item.get_closest_marker("long")}
    items.sort(key=lambda item: item.path not in long_files)  # stable: the rest keep their order
    for item in items:  # @pytest.mark.needs("torch"): skipped, with the reason, without it
        wanted = [name for mark in item.iter_markers("needs") for name in mark.args]
        if missing := [name for name in wanted if find_spec(name) is None]:
            reason = f"needs {', '.join(missing)}: install the dev extra (./dev test does)"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on a real SQLite file and on the real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        seed_demo_project=False,
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = build_services(settings)
    bootstrap(svc)
    yield svc
    svc.db.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server per test module (SQLite in a temporary CRISPML_HOME)."""
    srv = Server(tmp_path_factory.mktemp("srv") / "home").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The trained home (see ``Trained``), built once per run: under xdist the first worker
    that asks builds it while holding a file lock, and the other waits and shares it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' common folder
    ids = root / "trained" / "runs.json"
    with FileLock(root / "trained.lock"):
        if not ids.exists():
            runs = train_template(root / "trained" / "home")
            ids.write_text(json.dumps(runs))
    return root / "trained" / "home", json.loads(ids.read_text())


@pytest.fixture(scope="module")
def trained(
    trained_template: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Trained]:
    """A copy of the trained home for this module, its services open."""
    template, runs = trained_template
    copy = open_trained(template, runs, tmp_path_factory.mktemp("trained") / "home")
    yield copy
    copy.svc.jobs.stop_all(None, actor="test")
    copy.svc.db.dispose()
