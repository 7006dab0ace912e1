"""Real services on a real SQLite file, installed for AppTest, logged in as the admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crispml import services as services_module
from crispml.services import Services, bootstrap, build_services
from crispml.settings import Settings
from crispml.ui import context
from tests.helpers import ADMIN_PASSWORD


@pytest.fixture
def app_services(tmp_path: Path) -> Iterator[Services]:
    svc = build_services(Settings(home=tmp_path / "home", admin_password=ADMIN_PASSWORD))
    bootstrap(svc, samples=False)  # the demo project, empty: the tests add what they need
    services_module.install(svc)
    yield svc
    context.use_token_source(context.browser_token)
    svc.db.dispose()


@pytest.fixture
def svc(app_services: Services) -> Services:
    """The same services, with AppTest logged in as the first admin."""
    token = app_services.auth.login("admin", ADMIN_PASSWORD).token
    context.use_token_source(lambda: token)
    return app_services
