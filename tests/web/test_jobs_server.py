"""Jobs against a real server: they outlive a SIGKILLed web server; logs are per user."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from crispml.services import build_services
from crispml.settings import Settings
from tests.helpers import Server

pytestmark = pytest.mark.server


def cli(server: Server, *args: str) -> str:
    return server.cli(*args)


def jobs_of(home: Path) -> dict[str, tuple[str, int | None]]:
    svc = build_services(Settings(home=home))
    try:
        return {j.id: (j.status, j.exit_code) for j in svc.jobs.history(None)}
    finally:
        svc.db.dispose()


def test_jobs_finish_after_the_web_server_is_killed(tmp_path: Path) -> None:
    server = Server(tmp_path / "home", env_extra={"CRISPML_JOBS_MAX_CONCURRENT": "3"}).start()
    go = tmp_path / "go"
    try:
        ids = {
            cli(
                server,
                "jobs",
                "submit",
                "--name",
                f"j{code}",
                "--",
                sys.executable,
                "-c",
                # Each waits for a go signal, so none ends before the server is killed, however
                # slow the submissions are.
                f"import os, sys, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
                f"sys.exit({code})",
            ): code
            for code in (0, 3, 0)
        }
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(s == "running" for s, _ in jobs_of(server.home).values()):
                break
            time.sleep(0.1)
        assert all(s == "running" for s, _ in jobs_of(server.home).values())
        server.stop(signal.SIGKILL)  # the web server dies mid-run
        go.touch()  # the jobs end while no web server runs
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(s not in ("running", "starting") for s, _ in jobs_of(server.home).values()):
                break
            time.sleep(0.1)
        server.start()
        final = jobs_of(server.home)
        for job_id, code in ids.items():
            assert final[job_id] == ("succeeded" if code == 0 else "failed", code)
    finally:
        server.stop()


def test_the_full_log_is_for_its_owner(server: Server) -> None:
    server.add_user("olga")
    job_id = cli(server, "jobs", "submit", "--", sys.executable, "-c", "print('hello log')")
    time.sleep(3)
    with server.client() as client:
        server.login(client)
        log = client.get(f"/jobs/{job_id}/log")
        assert log.status_code == 200
        assert log.text == "hello log\n"
        assert log.headers["content-disposition"].startswith("attachment")
    with server.client() as client:
        server.login(client, "olga", "lilac-harbor-93")
        assert client.get(f"/jobs/{job_id}/log").status_code == 404
    with server.client() as anonymous:
        assert anonymous.get(f"/jobs/{job_id}/log").status_code == 401
