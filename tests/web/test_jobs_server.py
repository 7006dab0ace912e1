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
    go = tmp_path / "home" / "users" / "admin" / "files" / "go"  # where the sandboxed jobs look
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


def test_the_full_log_and_the_metrics_are_for_their_owner(server: Server) -> None:
    server.add_user("olga")
    code = (
        "import crispml_job\n"
        "print('hello log')\n"
        "for step in range(3): crispml_job.log_metrics({'loss': 1 / (step + 1)}, step=step)"
    )
    job_id = cli(server, "jobs", "submit", "--", sys.executable, "-c", code)
    quiet = cli(server, "jobs", "submit", "--", sys.executable, "-c", "pass")
    deadline = time.monotonic() + 60  # both have ended: their log and metrics are whole
    while not all(jobs_of(server.home)[j][0] == "succeeded" for j in (job_id, quiet)):
        assert time.monotonic() < deadline, jobs_of(server.home)
        time.sleep(0.1)
    with server.client() as client:
        server.login(client)
        log = client.get(f"/jobs/{job_id}/log")
        assert log.status_code == 200
        assert log.text == "hello log\n"
        assert log.headers["content-disposition"].startswith("attachment")
        metrics = client.get(f"/jobs/{job_id}/metrics.csv")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/csv")
        assert metrics.headers["content-disposition"].startswith("attachment")
        assert [step for step, _ in _times(metrics.text)] == [0, 1, 2]
        assert metrics.text.splitlines() == [
            "metric,step,epoch,time,value",
            *(f"loss,{step},,{t},{1 / (step + 1)!r}" for step, t in _times(metrics.text)),
        ]
        none = client.get(f"/jobs/{quiet}/metrics.csv")
        assert none.status_code == 404 and "no metrics" in none.json()["detail"]
    with server.client() as client:
        server.login(client, "olga", "lilac-harbor-93")
        assert client.get(f"/jobs/{job_id}/log").status_code == 404
        assert client.get(f"/jobs/{job_id}/metrics.csv").status_code == 404
    with server.client() as anonymous:
        assert anonymous.get(f"/jobs/{job_id}/log").status_code == 401
        assert anonymous.get(f"/jobs/{job_id}/metrics.csv").status_code == 401


def _times(text: str) -> list[tuple[int, str]]:
    """(step, time) of each data row, checked to be a plausible wall time."""
    rows = [line.split(",") for line in text.splitlines()[1:]]
    assert all(1.7e9 < float(r[3]) < 4e9 for r in rows)
    return [(int(r[1]), r[3]) for r in rows]
