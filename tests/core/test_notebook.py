"""Notebook servers as jobs: permission, ports, and a JupyterLab that cannot start."""

from __future__ import annotations

import sys
import time

import pytest

from crispml.core.errors import Conflict, PermissionDenied
from crispml.core.jobs import JobSpec
from crispml.core.notebook import NotebookSettings
from crispml.services import Services, bootstrap, build_services
from crispml.settings import Settings


def test_notebooks_are_a_permission_admins_grant(services: Services) -> None:
    services.auth.create_user("nina", "lilac-harbor-93", actor="test")
    nina = services.auth.get_user("nina")
    assert not services.notebooks.allowed(nina)
    with pytest.raises(PermissionDenied, match="crispml user code NAME --allow"):
        services.notebooks.start(nina)
    assert not (services.settings.home / "notebooks" / "nina.json").exists()
    services.auth.set_code("nina", True, actor="admin")
    assert services.notebooks.allowed(services.auth.get_user("nina"))
    assert services.notebooks.allowed(services.auth.first_admin())
    entries = services.audit.recent(10)
    assert any(e.action == "user.code.allow" and e.target == "nina" for e in entries)


def test_a_home_too_deep_for_a_socket_is_a_clear_refusal(settings: Settings) -> None:
    deep = settings.home / ("d" * 100)
    services = build_services(settings.model_copy(update={"home": deep}))
    bootstrap(services, samples=False)
    admin = services.auth.first_admin()
    with pytest.raises(Conflict, match="longer than a Unix socket allows"):
        services.notebooks.start(admin)
    assert services.notebooks.state(admin).job is None
    assert services.jobs.history(None) == []
    services.db.dispose()


def test_a_jupyterlab_that_fails_to_start_says_why(settings: Settings) -> None:
    """Something other than a socket takes its socket's place while it waits in the queue:
    JupyterLab itself refuses to start, the job fails, and the state says so with the log's
    end."""
    services = build_services(settings.model_copy(update={"services_max_concurrent": 1}))
    bootstrap(services, samples=False)
    admin = services.auth.first_admin()
    blocker = services.jobs.submit(  # another service holds the one service slot
        admin.id,
        admin.username,
        JobSpec([sys.executable, "-c", "import time; time.sleep(60)"], kind="api server"),
    )
    state = services.notebooks.start(admin)
    assert state.job is not None and state.job.status == "queued"
    assert "Starting" in state.message
    (services.notebooks.folder(admin.username) / "jupyter.sock").write_text("not a socket")
    services.jobs.stop(admin.id, blocker.id, actor="test")
    deadline = time.monotonic() + 90
    while not services.notebooks.state(admin).job.finished:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, services.jobs.log_tail(state.job)
        time.sleep(0.3)
    final = services.notebooks.state(admin)
    assert final.upstream is None and final.message.startswith("Not running: it ended: failed")
    assert "not a socket" in services.jobs.log_tail(final.job)  # type: ignore[arg-type]
    services.db.dispose()


def test_settings_reach_jupyterlab(services: Services) -> None:
    notebooks = NotebookSettings(terminals=True)
    object.__setattr__(services.notebooks, "settings", notebooks)
    config = services.notebooks._config("admin", "/x/jupyter.sock", "t" * 10, ["crispml-system"])
    assert config["ServerApp"]["terminals_enabled"] is True
    assert config["ServerApp"]["shutdown_no_activity_timeout"] == 3600
    assert config["MappingKernelManager"]["cull_idle_timeout"] == 3600
    assert config["ServerApp"]["sock"] == "/x/jupyter.sock"
    assert config["ServerApp"]["sock_mode"] == "0600"
