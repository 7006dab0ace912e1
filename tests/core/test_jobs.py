"""Jobs as real processes: supervisor, scheduler, stop, faults and recovery (SQLite and
PostgreSQL)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from crispml.core.errors import InvalidInput
from crispml.core.executors import same_process
from crispml.core.jobs import JobRuntime, JobService, JobSpec, Limits
from crispml.core.sandbox import probe
from crispml.services import Services
from crispml.store.tables import JobRow

PY = sys.executable
LOCAL = "crispml.core.executors:LocalExecutor"


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def jobs(services: Services) -> JobService:
    runtime = JobRuntime(services.db, services.settings.home, Limits(2, 0, 1.0))
    return JobService(runtime, services.audit)


@pytest.fixture
def owner(services: Services) -> tuple[int, str]:
    admin = services.auth.first_admin()
    return admin.id, admin.username


def run(jobs: JobService, owner: tuple[int, str], code: str, **kw: object) -> str:
    return jobs.submit(*owner, JobSpec([PY, "-c", code], **kw)).id  # type: ignore[arg-type]


def final(jobs: JobService, owner: tuple[int, str], job_id: str, timeout: float = 30):
    wait_for(lambda: jobs.get(owner[0], job_id).finished, timeout)
    return jobs.get(owner[0], job_id)


def test_a_job_runs_with_its_output_in_order_and_stdin(jobs: JobService, owner) -> None:
    code = (
        "import sys; print('out 1', flush=True); print('err 2', file=sys.stderr, flush=True);"
        "print('read', input(), input(), flush=True)"
    )
    job_id = run(jobs, owner, code, name="hello", stdin_lines=["alpha", "beta"])
    job = final(jobs, owner, job_id)
    assert (job.status, job.exit_code, job.name) == ("succeeded", 0, "hello")
    assert jobs.log_tail(job) == "out 1\nerr 2\nread alpha beta\n"
    assert Path(job.workdir).name == job_id
    assert (Path(job.workdir) / "command.json").exists()


def test_failures_are_recorded_at_once(jobs: JobService, owner, services: Services) -> None:
    bad_exit = final(jobs, owner, run(jobs, owner, "import sys; sys.exit(3)"))
    assert (bad_exit.status, bad_exit.exit_code) == ("failed", 3)
    missing = final(jobs, owner, jobs.submit(*owner, JobSpec(["no-such-command-xyz"])).id)
    assert missing.status == "failed"
    assert "could not start 'no-such-command-xyz'" in missing.error
    assert "No such file or directory" in jobs.log_tail(missing)
    with pytest.raises(InvalidInput, match="The environment 'gpu-env' does not exist"):
        jobs.submit(*owner, JobSpec([PY, "-V"], env="gpu-env"))  # refused before it is queued
    assert all(j.env != "gpu-env" for j in jobs.history(None))


def test_a_working_folder_that_cannot_be_created(jobs: JobService, owner, services) -> None:
    runs = services.settings.home / "runs"
    if runs.exists():
        runs.rmdir()  # empty: no job ran in this home yet
    runs.write_text("a file where the runs folder should be")
    job = final(jobs, owner, jobs.submit(*owner, JobSpec([PY, "-V"])).id)
    assert job.status == "failed"
    assert "cannot be created" in job.error


def test_the_concurrency_limit_holds_and_every_job_finishes(jobs: JobService, owner) -> None:
    ids = [run(jobs, owner, "import time; time.sleep(0.4)") for _ in range(6)]
    most = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # One query, one snapshot: read job by job, a job could end and the next start between
        # two reads, and the test would count three at once where the store never held three.
        snapshot = {job.id: job.status for job in jobs.history(owner[0])}
        statuses = [snapshot[i] for i in ids]
        most = max(most, sum(s in ("starting", "running") for s in statuses))
        if all(s == "succeeded" for s in statuses):
            break
        time.sleep(0.05)
    assert [jobs.get(owner[0], i).status for i in ids] == ["succeeded"] * 6
    assert most <= 2


def test_services_do_not_take_the_slots_of_work(services: Services, owner) -> None:
    """A notebook and an API server running, the default work limit of 2 on this 2-core machine:
    two training runs still start at once. Services have their own limits (2 per user here)."""
    runtime = JobRuntime(
        services.db, services.settings.home, Limits(2, 0, 1.0, services_max_per_user=2)
    )
    jobs = JobService(runtime, services.audit)
    wait = "import time; time.sleep(60)"
    notebook = run(jobs, owner, wait, kind="notebook server")
    api = run(jobs, owner, wait, kind="api server")
    third = run(jobs, owner, wait, kind="notebook server")  # over the per-user service limit
    wait_for(lambda: all(jobs.get(owner[0], j).status == "running" for j in (notebook, api)))
    first = run(jobs, owner, wait, kind="training")
    second = run(jobs, owner, wait, kind="training")
    wait_for(lambda: all(jobs.get(owner[0], j).status == "running" for j in (first, second)))
    assert jobs.get(owner[0], third).status == "queued"
    queued = run(
        jobs, owner, wait, kind="training"
    )  # work is still limited to 2 (scheduled at submit)
    assert jobs.get(owner[0], queued).status == "queued"
    jobs.stop(owner[0], notebook, actor="t")
    wait_for(lambda: jobs.get(owner[0], third).status == "running")  # a service slot freed
    assert jobs.get(owner[0], queued).status == "queued"  # not a work slot
    jobs.stop_all(None, actor="t")


def test_stop_sends_sigterm_then_sigkill(jobs: JobService, owner) -> None:
    polite = run(jobs, owner, "import time; print('up', flush=True); time.sleep(60)")
    wait_for(lambda: "up" in jobs.log_tail(jobs.get(owner[0], polite)))
    jobs.stop(owner[0], polite, actor="t")
    job = final(jobs, owner, polite, 10)
    assert (job.status, job.signal) == ("stopped", "SIGTERM")
    stubborn = run(
        jobs,
        owner,
        (
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            "print('up', flush=True); time.sleep(60)"
        ),
    )
    wait_for(lambda: "up" in jobs.log_tail(jobs.get(owner[0], stubborn)))
    t = time.monotonic()
    jobs.stop(owner[0], stubborn, actor="t")
    job = final(jobs, owner, stubborn, 10)
    assert (job.status, job.signal) == ("stopped", "SIGKILL")
    assert time.monotonic() - t >= 0.9  # the grace period (1 s here) was given


def test_sigkill_of_the_job_is_a_failure_with_the_signal(jobs: JobService, owner) -> None:
    job_id = run(jobs, owner, "import time; time.sleep(60)")
    wait_for(lambda: jobs.get(owner[0], job_id).status == "running")
    os.kill(jobs.get(owner[0], job_id).pid, signal.SIGKILL)
    job = final(jobs, owner, job_id)
    assert (job.status, job.signal) == ("failed", "SIGKILL")


def test_sigkill_of_the_supervisor_means_lost_after_recovery(
    jobs: JobService,
    owner,
    services: Services,
) -> None:
    job_id = run(jobs, owner, "import time; time.sleep(60)")
    wait_for(lambda: jobs.get(owner[0], job_id).status == "running")
    with services.db.session() as s:
        row = s.get(JobRow, job_id)
        supervisor, child = row.supervisor_pid, row.pid
    assert psutil.Process(supervisor).ppid() != os.getpid()  # detached: not our child
    os.kill(supervisor, signal.SIGKILL)
    wait_for(
        lambda: (
            not psutil.pid_exists(supervisor)
            or psutil.Process(supervisor).status() == psutil.STATUS_ZOMBIE
        )
    )
    notes = jobs.recover()
    job = jobs.get(owner[0], job_id)
    assert job.status == "lost"
    assert "supervisor process ended" in job.error
    assert any(job_id in n for n in notes)
    wait_for(
        lambda: (
            not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        )
    )


def test_a_reused_pid_is_not_taken_for_the_job() -> None:
    me = psutil.Process()
    assert same_process(me.pid, me.create_time())
    assert not same_process(me.pid, me.create_time() - 100)  # same pid, another start time
    assert not same_process(None, None)


def test_users_see_and_stop_only_their_own_jobs(jobs: JobService, owner, services) -> None:
    from crispml.core.errors import NotFound

    bob = services.auth.create_user("bob", "lilac-harbor-93", actor="t")
    mine = run(jobs, owner, "import time; time.sleep(30)")
    with pytest.raises(NotFound):
        jobs.get(bob.id, mine)
    with pytest.raises(NotFound):
        jobs.stop(bob.id, mine, actor="bob")
    assert jobs.history(bob.id) == []
    assert [j.id for j in jobs.history(None)] == [mine]  # admins: everyone's
    assert jobs.stop_all(owner[0], actor="admin") == 1
    assert final(jobs, owner, mine).status == "stopped"


def test_rerun_and_delete(jobs: JobService, owner) -> None:
    first = final(jobs, owner, run(jobs, owner, "print('x')", name="again"))
    second = final(jobs, owner, jobs.rerun(owner[0], first.id).id)
    assert (second.name, second.argv) == ("again", first.argv)
    jobs.delete(owner[0], first.id, actor="t")
    assert not Path(first.workdir).exists()
    assert [j.id for j in jobs.history(owner[0])] == [second.id]


def test_a_huge_log_is_read_from_its_tail(jobs: JobService, owner) -> None:
    code = (
        "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024):\n"
        "    sys.stdout.write(line)\nprint('the end')"
    )
    job = final(jobs, owner, run(jobs, owner, code), 120)
    assert job.status == "succeeded"
    assert jobs.log_path(job).stat().st_size > 100_000_000
    t = time.perf_counter()
    tail = jobs.log_tail(job)
    assert time.perf_counter() - t < 0.1
    assert tail.endswith("the end\n")
    assert len(tail) <= 64_000


def test_executors_are_entry_point_plugins(tmp_path: Path) -> None:
    from importlib.metadata import entry_points

    from crispml.core.executors import LocalExecutor, load_executor

    assert "local" in {e.name for e in entry_points(group="crispml.executors")}
    assert isinstance(load_executor("local", "sqlite://", tmp_path, {}), LocalExecutor)
    assert load_executor("ray", "sqlite://", tmp_path, {}).name == "ray"  # the ray extra
    with pytest.raises(ValueError, match="No job executor named 'nope'"):
        load_executor("nope", "sqlite://", tmp_path, {})
    # What the registry refuses, each with what to do (in the shape of mlflow's registries).
    from importlib.metadata import EntryPoint

    def point(name: str, value: str) -> EntryPoint:
        return EntryPoint(name, value, "crispml.executors")

    twice = [point("local", "crispml.core.executors:LocalExecutor"), point("local", "x.y:Z")]
    with pytest.raises(ValueError, match="Two job executors are named 'local'"):
        load_executor("local", "sqlite://", tmp_path, {}, twice)
    with pytest.raises(ValueError, match="cannot load: No module named 'no_such_module'"):
        load_executor("gpu", "sqlite://", tmp_path, {}, [point("gpu", "no_such_module:X")])
    with pytest.raises(ValueError, match=r"lacks status, .* of the Executor protocol"):
        load_executor("gpu", "sqlite://", tmp_path, {}, [point("gpu", "builtins:slice")])
    with pytest.raises(ValueError, match="calls itself 'local'"):
        load_executor("gpu", "sqlite://", tmp_path, {}, [point("gpu", LOCAL)])


def test_jobs_do_not_inherit_crispmls_settings(
    jobs: JobService, owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRISPML_ADMIN_PASSWORD", "never-in-a-job")
    monkeypatch.setenv("UNRELATED_SETTING", "kept")
    code = (
        "import os; print(os.environ.get('CRISPML_ADMIN_PASSWORD'), "
        "os.environ.get('UNRELATED_SETTING'), os.environ['CRISPML_JOB_ID'])"
    )
    job = final(jobs, owner, run(jobs, owner, code))
    # In a sandbox a job gets none of the server's variables; without one, all but crispml's.
    inherited = "None" if probe("auto").available else "kept"
    assert jobs.log_tail(job).split() == ["None", inherited, job.id]


def test_a_process_is_recognised_across_a_clock_step() -> None:
    """A job's process is known by its start since boot, which a clock change does not move;
    a record from an older version (seconds since the epoch, through the kernel's whole-second
    boot time) gets a second's leeway; another start is another process."""
    import psutil

    from crispml.core.executors import start_time

    me = os.getpid()
    since_boot = start_time(me)
    assert since_boot is not None and 0 < since_boot < time.monotonic() + 1
    assert same_process(me, since_boot)
    assert not same_process(me, since_boot + 0.5)
    epoch = psutil.Process(me).create_time()
    assert same_process(me, epoch) and same_process(me, epoch + 1.0)  # the boot time moved
    assert not same_process(me, epoch + 60)
    assert not same_process(None, since_boot) and not same_process(me, None)
