"""Benchmark: job start latency, the Jobs page with 1,000 jobs, and 20 jobs on a limit of 2.

Targets (issue 5):
- from submit to the process running: under 100 ms at the median beyond the time of starting
  the same command directly (subprocess.Popen), measured side by side;
- the Jobs page with 1,000 finished jobs in the history renders in under 300 ms of script time
  (compared with the same page and no jobs);
- 20 jobs submitted at once on a limit of 2: never more than 2 running, all 20 finish.

    .venv/bin/python bench/jobs.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from streamlit.testing.v1 import AppTest

from crispml import services as services_module
from crispml.core.jobs import JobRuntime, JobService, JobSpec, Limits
from crispml.services import bootstrap, build_services
from crispml.settings import Settings
from crispml.store.tables import JobRow
from crispml.ui import context

PASSWORD = "bench-password-4821"
STAMP = "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))"


def wait_file(path: Path, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return float(path.read_text())
        time.sleep(0.002)
    raise TimeoutError(path)


def start_latency(jobs: JobService, owner: tuple[int, str], tmp: Path, repeats: int):
    direct, via_job = [], []
    for i in range(repeats):
        stamp = tmp / f"direct-{i}"
        t = time.time()
        proc = subprocess.Popen([sys.executable, "-c", STAMP, str(stamp)])
        direct.append(wait_file(stamp) - t)
        proc.wait()
        stamp = tmp / f"job-{i}"
        t = time.time()
        job = jobs.submit(*owner, JobSpec([sys.executable, "-c", STAMP, str(stamp)]))
        via_job.append(wait_file(stamp) - t)
        while not jobs.get(owner[0], job.id).finished:
            time.sleep(0.01)
    return direct, via_job


def page_time(svc, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        at = AppTest.from_string(
            "import time\nfrom crispml.ui import context\nfrom crispml.ui.views import jobs\n"
            "context.require_login()\nt = time.perf_counter()\njobs.render()\n"
            "import streamlit as st\nst.session_state['_t'] = time.perf_counter() - t\n",
            default_timeout=120,
        ).run()
        times.append(at.session_state["_t"])
    return times


def add_history(svc, owner_id: int, count: int) -> None:
    now = datetime.now(UTC)
    with svc.db.session() as s:
        for i in range(count):
            job_id = uuid.uuid4().hex[:12]
            s.add(
                JobRow(
                    id=job_id,
                    owner_id=owner_id,
                    name=f"history-{i}",
                    kind="training",
                    argv=json.dumps(["python", "train.py"]),
                    env="system",
                    stdin="[]",
                    workdir=str(svc.settings.home / "runs" / job_id),
                    status="succeeded",
                    exit_code=0,
                    error="",
                    created_at=now,
                    started_at=now,
                    ended_at=now,
                )
            )


def burst(jobs: JobService, owner: tuple[int, str]) -> tuple[int, int, float]:
    t = time.monotonic()
    ids = [
        jobs.submit(*owner, JobSpec([sys.executable, "-c", "import time; time.sleep(0.3)"])).id
        for _ in range(20)
    ]
    most = 0
    while True:
        statuses = [jobs.get(owner[0], i).status for i in ids]
        most = max(most, sum(s in ("starting", "running") for s in statuses))
        if all(s in ("succeeded", "failed", "stopped", "lost") for s in statuses):
            break
        time.sleep(0.02)
    return most, sum(s == "succeeded" for s in statuses), time.monotonic() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="crispml-bench-jobs-"))
    svc = build_services(
        Settings(home=tmp / "home", admin_password=PASSWORD, seed_demo_project=False)
    )
    bootstrap(svc)
    services_module.install(svc)
    token = svc.auth.login("admin", PASSWORD).token
    context.use_token_source(lambda: token)
    admin = svc.auth.first_admin()
    owner = (admin.id, admin.username)
    jobs = JobService(JobRuntime(svc.db, svc.settings.home, Limits(2, 0, 5.0)), svc.audit)

    direct, via_job = start_latency(jobs, owner, tmp, args.repeats)
    empty_page = page_time(svc, 5)
    add_history(svc, admin.id, 1000 - len(jobs.history(None)))
    full_page = page_time(svc, 5)
    most, ok, seconds = burst(jobs, owner)

    ms = lambda v: f"{statistics.median(v) * 1000:.1f}"  # noqa: E731
    extra = statistics.median(via_job) - statistics.median(direct)
    print(f"Jobs on SQLite, {args.repeats} starts each way\n")
    print("| measure | median (ms) | target |")
    print("| --- | ---: | --- |")
    print(f"| command started directly (subprocess.Popen) | {ms(direct)} | |")
    print(f"| command started as a job (submit to running) | {ms(via_job)} | |")
    print(f"| extra time of a job | {extra * 1000:.1f} | < 100 ms |")
    print(f"| Jobs page, no jobs (script time) | {ms(empty_page)} | |")
    print(f"| Jobs page, 1,000 finished jobs (script time) | {ms(full_page)} | < 300 ms |")
    print(
        f"\n20 jobs at once on a limit of 2: at most {most} running, {ok} of 20 succeeded, "
        f"{seconds:.1f} s in all."
    )
    met = extra < 0.1 and statistics.median(full_page) < 0.3 and most <= 2 and ok == 20
    print(f"\ntargets {'met' if met else 'NOT met'}")
    svc.db.dispose()


if __name__ == "__main__":
    main()
