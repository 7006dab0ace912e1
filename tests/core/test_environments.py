"""Environments with real interpreters, a real uv build (packages from PyPI) and real jobs, on
SQLite and PostgreSQL. conda is a stand-in script unless a real conda-compatible tool is on PATH
(none is on the CI machine): the stand-in implements the two commands crispml uses."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest

from crispml.core.envs.interpreters import installed_pythons
from crispml.core.envs.registry import Environment, check_name
from crispml.core.envs.requirements import parse_requirements, unmet
from crispml.core.envs.service import uv_binary
from crispml.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from crispml.core.jobs import Job, JobSpec
from crispml.services import Services, bootstrap, build_services
from crispml.settings import Settings
from crispml.store.tables import EnvironmentRow, JobRow
from tests.helpers import ADMIN_PASSWORD, USER_PASSWORD

SYSTEM_MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"
# What a job prints about where it runs: interpreter, Python version, packaging's version, and
# whether crispml itself could be imported there (it must not need to be).
REPORT = (
    "import importlib.util, json, os, sys, packaging, crispml_job; "
    "crispml_job.log_metrics({'answer': 42}, step=1); "
    "print(json.dumps({'executable': sys.executable, 'prefix': sys.prefix, "
    "'version': '%d.%d' % sys.version_info[:2], 'packaging': packaging.__version__, "
    "'crispml': importlib.util.find_spec('crispml') is not None, "
    "'conda_prefix': os.environ.get('CONDA_PREFIX', '')}))"
)


def wait_for(check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def finished(svc: Services, job: Job, timeout: float = 180) -> Job:
    wait_for(lambda: svc.jobs.get(0, job.id, admin=True).finished, timeout)
    return svc.jobs.get(0, job.id, admin=True)


def report(svc: Services, job: Job) -> dict[str, object]:
    done = finished(svc, job)
    log = svc.jobs.log_tail(done)
    assert done.status == "succeeded", log
    return json.loads(log.strip().splitlines()[-1])


@pytest.fixture
def conda_stand_in(tmp_path: Path) -> tuple[str, Path]:
    """A stand-in for conda (named as such): ``env list --json`` lists one prefix, and
    ``run -p PREFIX --no-capture-output CMD...`` runs CMD with the prefix activated. The prefix
    is a real environment (made with uv) so its interpreter is real."""
    prefix = tmp_path / "miniforge" / "envs" / "Vision_Py"
    tmp_path.chmod(0o755)  # as a real conda installation is: jobs run sandboxed as their owner
    subprocess.run(
        [
            uv_binary(),
            "venv",
            "--no-config",
            "--python",
            sys.executable,
            str(prefix),
        ],
        check=True,
        capture_output=True,
    )
    tool = tmp_path / "bin" / "conda-stand-in"
    tool.parent.mkdir()
    tool.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            # A stand-in for conda, for crispml's tests: the two commands crispml uses.
            import json, os, sys
            args = sys.argv[1:]
            if args[:3] == ["env", "list", "--json"]:
                print(json.dumps({{"envs": [{str(prefix)!r}, "/no/such/prefix"]}}))
            elif args[:2] == ["run", "-p"] and args[3] == "--no-capture-output":
                prefix = args[2]
                os.environ["CONDA_PREFIX"] = prefix
                os.environ["PATH"] = prefix + "/bin:" + os.environ["PATH"]
                os.execvp(args[4], args[4:])
            else:
                sys.exit("conda-stand-in: unsupported command " + " ".join(args))
            """
        )
    )
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return str(tool), prefix


@pytest.fixture
def svc(tmp_path: Path, database_url: str, conda_stand_in: tuple[str, Path]) -> Services:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        seed_demo_project=False,
        jobs_max_concurrent=1,
        jobs_stop_grace=1.0,
        conda_tools=(conda_stand_in[0],),
    )
    services = build_services(settings)
    bootstrap(services)
    yield services
    services.jobs.stop_all(None, actor="test")
    services.db.dispose()


def admin_of(svc: Services):
    return svc.auth.get_user("admin")


def test_names_and_requirements_are_checked() -> None:
    assert check_name("sklearn-1.5_cpu") == "sklearn-1.5_cpu"
    for bad in ("", "system", "Upper", "../x", "a/b", "a" * 64, "-x", "a..b", "a b"):
        with pytest.raises(InvalidInput):
            check_name(bad)
    assert parse_requirements(
        "# tools\nscikit-learn >=1.5  # ML\n\nnumpy<3; python_version>'3'"
    ) == [
        "scikit-learn>=1.5",
        'numpy<3; python_version > "3"',
    ]
    with pytest.raises(InvalidInput, match="Line 2: options such as '--index-url'"):
        parse_requirements("numpy\n--index-url https://example.invalid/simple")
    with pytest.raises(InvalidInput, match="Line 1: 'numpy=>1' is not a valid requirement"):
        parse_requirements("numpy=>1")
    packages = {"numpy": "1.26.4", "scikit-learn": "1.5.2"}
    assert unmet(["numpy>=1.26", "scikit-learn"], packages, "3.11.7") == []
    assert unmet(["numpy>=2", "torch", "tomli; python_version<'3.11'"], packages, "3.11.7") == [
        "numpy 1.26.4 does not satisfy 'numpy>=2'",
        "torch is not installed",
    ]


def test_a_uv_venv_runs_jobs_with_its_own_interpreter_and_packages(svc: Services) -> None:
    admin = admin_of(svc)
    system_packaging = version("packaging")
    assert system_packaging != "23.2"
    others = [p for p in installed_pythons() if p.minor != SYSTEM_MINOR]
    python = others[0].minor if others else SYSTEM_MINOR  # another Python when one is installed
    env, build = svc.environments.create_venv(admin, "old-packaging", python, "packaging==23.2")
    assert (env.status, env.kind, build.kind) == ("building", "venv", "environment build")
    assert "old-packaging" in [e.name for e in svc.environments.all()]  # the name is taken
    with pytest.raises(Conflict, match="exists already"):
        svc.environments.create_venv(admin, "old-packaging", "", "")
    built = finished(svc, build)
    log = svc.jobs.log_tail(built)
    assert built.status == "succeeded", log
    assert "uv venv" in log and "+ packaging==23.2" in log  # uv's own output is in the log

    env = svc.environments.get("old-packaging")
    assert env.ready and env.python_version.startswith(python)
    assert env.key_packages() == {"packaging": "23.2"}
    assert env.size_bytes and env.size_bytes > 10_000 and env.created_at and env.healthy

    seen = report(
        svc,
        svc.jobs.submit(admin.id, "admin", JobSpec(["python", "-c", REPORT], env="old-packaging")),
    )
    folder = svc.settings.home / "envs" / "old-packaging"
    assert Path(str(seen["executable"])).parent == folder / "bin"
    assert (seen["version"], seen["packaging"], seen["crispml"]) == (python, "23.2", False)
    job = svc.jobs.history(admin.id, limit=1)[0]
    assert '"answer":42' in (Path(job.workdir) / "metrics.jsonl").read_text()  # the helper works
    assert svc.environments.get("old-packaging").last_used == job.created_at

    system = report(svc, svc.jobs.submit(admin.id, "admin", JobSpec(["python", "-c", REPORT])))
    assert (system["packaging"], system["executable"]) == (system_packaging, sys.executable)
    assert version("packaging") == system_packaging  # the system environment is unchanged

    check = svc.environments.check("old-packaging", ["packaging>=24", "numpy"])
    assert not check.ok and check.imports == {"packaging": ""}
    assert check.problems == [
        "packaging 23.2 does not satisfy 'packaging>=24'",
        "numpy is not installed",
    ]
    assert [e.name for e in svc.environments.satisfying(["packaging<24"])] == ["old-packaging"]
    assert "system" in [e.name for e in svc.environments.satisfying(["packaging>=24"])]


def test_deleting_an_environment_in_use_is_refused_with_its_users(svc: Services) -> None:
    admin = admin_of(svc)
    _, build = svc.environments.create_venv(admin, "serving", "", [])
    assert finished(svc, build).status == "succeeded"
    sleep = ["python", "-c", "import time; time.sleep(60)"]
    server = svc.jobs.submit(
        admin.id, "admin", JobSpec(sleep, "iris model", "api server", "serving")
    )
    # Services have slots of their own: a training run takes the one work slot.
    busy = svc.jobs.submit(admin.id, "admin", JobSpec(sleep, "sweep 2", "training", "serving"))
    queued = svc.jobs.submit(admin.id, "admin", JobSpec(sleep, "sweep 3", "training", "serving"))
    assert svc.jobs.get(0, queued.id, admin=True).status == "queued"  # the work limit is 1
    with pytest.raises(Conflict) as refused:
        svc.environments.delete(admin, "serving")
    message = str(refused.value)
    assert "is in use and was not deleted" in message
    assert f"model server {server.id} 'iris model' of admin" in message
    assert f"job {queued.id} 'sweep 3' of admin (queued)" in message
    assert (svc.settings.home / "envs" / "serving" / "bin" / "python").exists()
    svc.jobs.stop_all(None, actor="test")
    for job in (server, busy, queued):
        finished(svc, job)
    svc.environments.delete(admin, "serving")
    assert not (svc.settings.home / "envs" / "serving").exists()
    with pytest.raises(NotFound):
        svc.environments.get("serving")
    with pytest.raises(Conflict, match="crispml's own"):
        svc.environments.delete(admin, "system")


def test_a_failed_or_abandoned_build_leaves_nothing(svc: Services) -> None:
    admin = admin_of(svc)
    _, build = svc.environments.create_venv(admin, "broken", "", "no-such-package-crispml-zq==1.0")
    done = finished(svc, build)
    assert done.status == "failed"
    log = svc.jobs.log_tail(done)
    assert "no-such-package-crispml-zq" in log and "nothing was registered" in log
    assert "broken" not in [e.name for e in svc.environments.all()]
    assert not (svc.settings.home / "envs" / "broken").exists()
    # A build whose job vanished (its supervisor was killed, the job deleted): settled away.
    folder = svc.settings.home / "envs" / "orphan"
    (folder / "bin").mkdir(parents=True)
    with svc.db.session() as s:
        s.add(
            EnvironmentRow(
                name="orphan",
                kind="venv",
                status="building",
                build_job="gone",
                created_at=done.created_at,
            )
        )
    assert "orphan" not in [e.name for e in svc.environments.all()]
    assert not folder.exists()


def test_bad_requests_leave_nothing_behind(svc: Services) -> None:
    admin = admin_of(svc)
    cases = [
        (("Bad Name", "", ""), InvalidInput, "cannot name an environment"),
        (("ok", "3.99", ""), InvalidInput, "Python 3.99 is not installed here"),
        (("ok", "three", ""), InvalidInput, "is not a Python version"),
        (("ok", "", "-e ."), InvalidInput, "options such as '-e'"),
        (("system", "", ""), InvalidInput, "crispml's own environment"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            svc.environments.create_venv(admin, *args)
    svc.auth.create_user("bob", USER_PASSWORD, actor="t")
    with pytest.raises(PermissionDenied, match="Only admins"):
        svc.environments.create_venv(svc.auth.get_user("bob"), "mine", "", "")
    with pytest.raises(InvalidInput, match=r"not a Python 3\.8"):
        svc.environments.register_interpreter(admin, "ls", "/bin/ls")
    (svc.settings.home / "envs" / "stray").mkdir(parents=True)
    with pytest.raises(Conflict, match="exists already but is no registered environment"):
        svc.environments.create_venv(admin, "stray", "", "")
    assert [e.name for e in svc.environments.registry.all() if e.kind != "conda"] == ["system"]
    assert svc.jobs.history(None) == []
    assert sorted(p.name for p in (svc.settings.home / "envs").iterdir()) == ["stray"]


def test_a_registered_interpreter_runs_jobs(svc: Services) -> None:
    admin = admin_of(svc)
    other = next(
        (p for p in installed_pythons() if p.minor != SYSTEM_MINOR), installed_pythons()[-1]
    )
    env = svc.environments.register_interpreter(admin, "other-python", other.path)
    assert (env.kind, env.healthy, env.python_version) == ("path", True, other.version)
    code = "import sys, crispml_job; print(sys.executable, '%d.%d' % sys.version_info[:2])"
    done = finished(
        svc, svc.jobs.submit(admin.id, "admin", JobSpec(["python", "-c", code], env="other-python"))
    )
    assert svc.jobs.log_tail(done).split() == [other.path, other.minor]
    with pytest.raises(Conflict, match="exists already"):
        svc.environments.register_interpreter(admin, "other-python", other.path)


def test_conda_environments_are_found_and_run_through_conda_run(
    svc: Services, conda_stand_in: tuple[str, Path]
) -> None:
    tool, prefix = conda_stand_in
    envs = {e.name: e for e in svc.environments.all(refresh=True)}
    conda = envs["conda-vision_py"]  # named after the prefix; the missing prefix is skipped
    assert (conda.kind, conda.tool, conda.prefix) == ("conda", tool, str(prefix))
    assert conda.command(["python", "-V"]) == [
        tool,
        "run",
        "-p",
        str(prefix),
        "--no-capture-output",
        "python",
        "-V",
    ]
    code = "import os, sys, crispml_job; print(os.environ['CONDA_PREFIX'], sys.prefix)"
    admin = admin_of(svc)
    done = finished(
        svc,
        svc.jobs.submit(admin.id, "admin", JobSpec(["python", "-c", code], env="conda-vision_py")),
    )
    assert svc.jobs.log_tail(done).split() == [str(prefix), str(prefix)]
    check = svc.environments.check("conda-vision_py")
    assert check.ok and check.python_version.startswith(SYSTEM_MINOR)
    with pytest.raises(Conflict, match="managed by conda"):
        svc.environments.delete(admin, "conda-vision_py")


@pytest.mark.skipif(
    not any(shutil.which(t) for t in ("conda", "mamba", "micromamba")),
    reason="no real conda-compatible tool on PATH (the stand-in test covers the commands)",
)
def test_a_real_conda_tool(tmp_path: Path) -> None:
    from crispml.core.envs.conda import discover_conda

    found = discover_conda(("conda", "mamba", "micromamba"))
    assert found
    name, tool, prefix = found[0]
    env = Environment(name, "conda", "ready", f"{prefix}/bin/python", prefix=prefix, tool=tool)
    out = subprocess.run(
        env.command(["python", "-c", "import sys; print(sys.prefix)"]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().endswith(Path(prefix).name)


def test_a_job_whose_environment_went_away_fails_with_the_reason(svc: Services) -> None:
    admin = admin_of(svc)
    with svc.db.session() as s:
        s.add(
            EnvironmentRow(
                name="short-lived",
                kind="path",
                status="ready",
                interpreter=sys.executable,
                created_at=admin.created_at,
            )
        )
    blocker = svc.jobs.submit(
        admin.id, "admin", JobSpec(["python", "-c", "import time; time.sleep(60)"])
    )
    queued = svc.jobs.submit(admin.id, "admin", JobSpec(["python", "-V"], env="short-lived"))
    svc.environments.registry.remove("short-lived")  # as if deleted behind crispml's back
    svc.jobs.stop(admin.id, blocker.id, actor="t")
    done = finished(svc, queued)
    assert (done.status, done.error) == ("failed", "The environment 'short-lived' does not exist.")
    assert "does not exist" in svc.jobs.log_tail(done)
    with svc.db.session() as s:
        assert s.get(JobRow, queued.id).env == "short-lived"
    assert os.environ.get("CRISPML_ENV") is None  # nothing leaked into the test process


def test_a_failing_conda_tool_does_not_make_its_environments_vanish(
    svc: Services, conda_stand_in: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tool, _ = conda_stand_in
    assert "conda-vision_py" in [e.name for e in svc.environments.all(refresh=True)]
    broken = (
        Path(tool).read_text().replace('if args[:3] == ["env", "list", "--json"]:', "if False:")
    )
    Path(tool).write_text(broken)  # the stand-in now fails every listing
    assert "conda-vision_py" in [e.name for e in svc.environments.all(refresh=True)]
    with pytest.raises(InvalidInput, match="points at a URL or a file"):
        parse_requirements("mypkg @ file:///tmp/mypkg-1.0-py3-none-any.whl")
