"""The sandbox, attacked for real: a plain user with the code permission runs jobs that try to
reach what is not theirs. Real bubblewrap, real OS accounts (the tests run as root here), real
processes; a job over its memory limit; the permission itself."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import site
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crispml.core.errors import PermissionDenied
from crispml.core.jobs import Job, JobSpec
from crispml.core.sandbox import JobLimits, probe
from crispml.services import Services, bootstrap, build_services
from crispml.settings import Settings
from tests.helpers import ADMIN_PASSWORD

pytestmark = pytest.mark.skipif(
    not probe("auto").available, reason="bubblewrap cannot start a sandbox on this machine"
)

# Each attempt prints one JSON line: {"attempt": ..., "result": "refused" | "GOT ..."}.
ATTACK = r"""
import json, os, signal, socket, sys
targets = json.loads(sys.argv[1])

def attempt(name, action):
    try:
        got = action()
        print(json.dumps({"attempt": name, "result": "GOT " + repr(got)[:80]}), flush=True)
    except Exception as exc:
        print(json.dumps({"attempt": name, "result": "refused", "why": repr(exc)[:80]}), flush=True)

def read(path):
    with open(path, "rb") as f:
        return f.read(64)

def listing(path):
    return os.listdir(path)

def home_beyond(path):
    extra = [n for n in os.listdir(path) if n not in targets["visible"]]
    if not extra:
        raise PermissionError("nothing else of the home is there")
    return extra

def connect_tcp(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return "connected"

def connect_unix(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(path)
        return "connected"

def write_db(path):
    with open(path, "r+b") as f:  # the database itself, not a new file of the same name
        f.write(b"x")
    return "written"

def others():
    mine = {os.getpid(), os.getppid(), 1}
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in mine:
            try:
                if os.stat(f"/proc/{entry}").st_uid != os.getuid():
                    found.append(entry)
            except OSError:
                pass
    if not found:
        raise PermissionError("no other user's process is visible")
    return found

attempt("read the secret key", lambda: read(targets["secret_key"]))
attempt("read the database file", lambda: read(targets["database"]))
attempt("write the database file", lambda: write_db(targets["database"]))
attempt("list CRISPML_HOME beyond its own parts", lambda: home_beyond(targets["home"]))
attempt("read another user's file", lambda: read(targets["other_file"]))
attempt("list another user's files", lambda: listing(targets["other_files"]))
attempt("read another user's run log", lambda: read(targets["other_log"]))
attempt("list another user's run folder", lambda: listing(targets["other_run"]))
attempt("read another user's notebook token", lambda: read(targets["other_notebook_record"]))
attempt("connect to another user's notebook socket", lambda: connect_unix(targets["other_socket"]))
attempt("connect to PostgreSQL on 127.0.0.1:5432", lambda: connect_tcp(5432))
attempt("connect to the app's own port", lambda: connect_tcp(targets["app_port"]))
attempt("list other users' processes", others)
attempt("signal another user's process", lambda: os.kill(targets["other_pid"], signal.SIGTERM))
attempt("read the server's environment", lambda: read(f"/proc/{targets['server_pid']}/environ"))
attempt("read /etc/shadow", lambda: read("/etc/shadow"))

# What is the user's own must work.
own = os.path.join(targets["own_files"], "mine.txt")
with open(own, "w") as f:
    f.write("mine")
with open(os.path.join(os.environ["CRISPML_RUN_DIR"], "result.txt"), "w") as f:
    f.write(open(own).read() + " " + str(os.getuid()))
print("OWN OK", flush=True)
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A home as a real install has it: the SQLite database and the secret key inside."""
    return Settings(home=tmp_path / "home", admin_password=ADMIN_PASSWORD, seed_demo_project=False)


@pytest.fixture
def sandboxed(settings: Settings) -> Iterator[Services]:
    services = build_services(settings)
    bootstrap(services, samples=False)
    for name in ("mallory", "victor"):
        services.auth.create_user(name, "lilac-harbor-93", actor="test")
        services.auth.set_code(name, True, actor="test")
    yield services
    services.jobs.stop_all(None, actor="test")
    services.db.dispose()


def wait(services: Services, job: Job, seconds: float = 120) -> Job:
    deadline = time.monotonic() + seconds
    while not (job := services.jobs.get(0, job.id, admin=True)).finished:
        assert time.monotonic() < deadline, services.jobs.log_tail(job)
        time.sleep(0.2)
    return job


def running(services: Services, job: Job, seconds: float = 60) -> Job:
    deadline = time.monotonic() + seconds
    while (job := services.jobs.get(0, job.id, admin=True)).status != "running" or not job.pid:
        assert not job.finished, services.jobs.log_tail(job)
        assert time.monotonic() < deadline, job.status
        time.sleep(0.2)
    return job


def attack(services: Services) -> dict[str, object]:
    """Mallory's attack job against victor (a running job with a log, a notebook's record and
    listening socket) and the app's port: what it attempted, and what it could do of its own."""
    home = services.settings.home
    mallory, victor = services.auth.get_user("mallory"), services.auth.get_user("victor")
    secret = services.files.user_root("victor").path / "diary.txt"
    secret.write_text("victor's secret")
    victim = services.jobs.submit(
        victor.id,
        "victor",
        JobSpec([sys.executable, "-c", "print('v'); import time; time.sleep(120)"]),
    )
    victim = running(services, victim)
    notebook = services.notebooks.folder("victor")
    notebook.mkdir(parents=True, exist_ok=True)
    services.notebooks.record_path("victor").write_text('{"token": "victors-token"}')
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(notebook / "jupyter.sock"))
    listener.listen()
    app = socket.create_server(("127.0.0.1", 0))  # stands for the app's own port
    targets = {
        "home": str(home),
        "visible": ["users", "runs"],
        "secret_key": str(home / "secret_key"),
        "database": str(home / "crispml.db"),
        "other_file": str(secret),
        "other_files": str(secret.parent),
        "other_log": str(Path(victim.workdir) / "output.log"),
        "other_run": victim.workdir,
        "other_notebook_record": str(services.notebooks.record_path("victor")),
        "other_socket": str(notebook / "jupyter.sock"),
        "app_port": app.getsockname()[1],
        "other_pid": victim.pid,
        "server_pid": os.getpid(),
        "own_files": str(services.files.user_root("mallory").path),
    }
    assert Path(targets["secret_key"]).exists() and Path(targets["database"]).exists()
    try:
        job = services.jobs.submit(
            mallory.id,
            "mallory",
            JobSpec([sys.executable, "-c", ATTACK, json.dumps(targets)], "attack"),
        )
        job = wait(services, job)
    finally:
        listener.close()
        app.close()
    log = services.jobs.log_tail(job)
    _cpu, rss = services.jobs.usage(services.jobs.get(0, victim.id, admin=True))
    result = Path(job.workdir) / "result.txt"
    return {
        "status": job.status,
        "log": log,
        "attempts": [json.loads(line) for line in log.splitlines() if line.startswith("{")],
        "own_file": (services.files.user_root("mallory").path / "mine.txt").read_text(),
        "result": result.read_text() if result.exists() else "",
        "result_uid": result.stat().st_uid if result.exists() else -1,
        "victim": services.jobs.get(0, victim.id, admin=True).status,
        "victim_rss": rss,
    }


def check_attack(found: dict[str, object]) -> list[dict[str, str]]:
    """Every attempt refused, its own space worked, victor's job undisturbed and measured."""
    log = found["log"]
    assert found["status"] == "succeeded", log
    attempts = found["attempts"]
    assert isinstance(attempts, list) and len(attempts) == 16, log
    got = [a for a in attempts if a["result"] != "refused"]
    assert not got, got
    assert "OWN OK" in str(log) and found["own_file"] == "mine"
    assert found["victim"] == "running"
    assert isinstance(found["victim_rss"], int) and found["victim_rss"] > 1_000_000
    return attempts


def test_a_users_job_reaches_only_what_is_theirs(sandboxed: Services) -> None:
    attempts = check_attack(found := attack(sandboxed))
    print(f"\nsandbox (root): {len(attempts)} attempts from a job, all refused")
    # As its own OS account (created on first use); the server still reads what it wrote.
    uid = pwd.getpwnam("cm-mallory").pw_uid
    assert uid != pwd.getpwnam("cm-victor").pw_uid
    assert found["result"] == f"mine {uid}" and found["result_uid"] == uid


# The server as an unprivileged service account: the same attack, in a user namespace.
UNPRIVILEGED = """
import json, sys
from tests.core.test_sandbox import attack
from crispml.core.sandbox import probe
from crispml.services import bootstrap, build_services
from crispml.settings import Settings
settings = Settings(home=sys.argv[1], admin_password="x" * 16, seed_demo_project=False)
services = build_services(settings)
bootstrap(services, samples=False)
for name in ("mallory", "victor"):
    services.auth.create_user(name, "lilac-harbor-93", actor="test")
    services.auth.set_code(name, True, actor="test")
try:
    print(json.dumps({"capability": probe("auto").kind, **attack(services)}))
finally:
    services.jobs.stop_all(None, actor="test")
"""


def test_the_same_attack_fails_with_the_server_as_a_service_account(
    request: pytest.FixtureRequest,
) -> None:
    account = "crispml-test-svc"
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", account], check=True)
        entry = pwd.getpwnam(account)
    # Its own home where it can reach it (pytest's folders are root's alone).
    home = Path(tempfile.mkdtemp(prefix="crispml-svc-", dir="/var/tmp"))
    os.chown(home, entry.pw_uid, entry.pw_gid)
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    # The system's Python with this venv's packages: the venv's own interpreter may live in a
    # folder only root can read (pyenv's, under /root, here), as a service account's cannot.
    repo = Path(__file__).resolve().parents[2]
    python = "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else sys.executable
    done = subprocess.run(
        [
            "/usr/bin/setpriv",
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--clear-groups",
            "--",
            python,
            "-c",
            UNPRIVILEGED,
            str(home),
        ],
        cwd=repo,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join([str(repo), *site.getsitepackages()]),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["capability"] == "userns"  # what crispml doctor reports for such a server
    attempts = check_attack(found)
    print(f"\nsandbox (service account): {len(attempts)} attempts from a job, all refused")
    assert found["result"] == f"mine {entry.pw_uid}"  # the server's own account, namespaced


def test_a_home_from_before_the_sandbox_is_reowned_on_first_use(sandboxed: Services) -> None:
    """Files the previous version wrote as the server's account stay usable: the user's first
    sandboxed job finds them its own."""
    mallory = sandboxed.auth.get_user("mallory")
    files = sandboxed.files.user_root("mallory").path
    (files / "old").mkdir(parents=True, exist_ok=True)
    (files / "old" / "data.csv").write_text("a\n1\n")
    for path in (files, files / "old", files / "old" / "data.csv"):
        os.chown(path, 0, 0)  # as the server wrote them before
    code = "open('old/data.csv', 'a').write('2\\n'); open('old/new.txt', 'w').write('new')"
    job = sandboxed.jobs.submit(
        mallory.id,
        "mallory",
        JobSpec([sys.executable, "-c", f"import os; os.chdir({str(files)!r}); {code}"]),
    )
    job = wait(sandboxed, job)
    assert job.status == "succeeded", sandboxed.jobs.log_tail(job)
    uid = pwd.getpwnam("cm-mallory").pw_uid
    assert (files / "old" / "data.csv").read_text() == "a\n1\n2\n"
    assert (files / "old" / "new.txt").read_text() == "new"
    assert {p.stat().st_uid for p in (files, files / "old", files / "old" / "data.csv")} == {uid}


def test_a_link_in_place_of_the_log_is_not_followed(sandboxed: Services) -> None:
    """A job owns what it writes, not the server's files in its folder: it cannot swap its
    log for a link to the secret key, and the server never follows a link it left."""
    mallory = sandboxed.auth.get_user("mallory")
    key = sandboxed.settings.home / "secret_key"
    swap = (
        "import os\n"
        "for name in ('output.log', 'result.json'):\n"
        "    try:\n"
        "        os.replace(name, name + '.old')\n"
        "    except OSError as exc:\n"
        "        print('kept', name, type(exc).__name__, flush=True)\n"
        f"os.symlink({str(key)!r}, 'metrics.jsonl')\n"
        f"os.symlink({str(key)!r}, 'result.json')\n"
    )
    job = wait(
        sandboxed,
        sandboxed.jobs.submit(mallory.id, "mallory", JobSpec([sys.executable, "-c", swap])),
    )
    tail = sandboxed.jobs.log_tail(job)
    assert "kept output.log PermissionError" in tail
    assert key.read_text()[:16] not in tail
    assert not any(p.is_symlink() for p in Path(job.workdir).iterdir())  # removed at its end


def test_a_job_over_its_memory_limit_is_reported_as_such(settings: Settings) -> None:
    services = build_services(settings.model_copy(update={"sandbox_memory_mb": 200}))
    bootstrap(services, samples=False)
    services.auth.create_user("mallory", "lilac-harbor-93", actor="test")
    services.auth.set_code("mallory", True, actor="test")
    mallory = services.auth.get_user("mallory")
    hog = "x = bytearray(1024 * 1024 * 1024); print('allocated', flush=True)"
    calm = "import time; time.sleep(2); print('calm done')"
    other = services.jobs.submit(mallory.id, "mallory", JobSpec([sys.executable, "-c", calm]))
    job = wait(
        services, services.jobs.submit(mallory.id, "mallory", JobSpec([sys.executable, "-c", hog]))
    )
    assert job.status == "failed"
    assert "allocated" not in services.jobs.log_tail(job)
    probe_limits = JobLimits("probe", 200, 64)  # what this machine enforces limits with
    probe_limits.remove()
    if probe_limits.kind.startswith("cgroup"):  # decided by the machine, not by the outcome
        assert job.error.startswith("out of memory at 200 MiB"), job.error
        assert "out of memory at 200 MiB" in services.jobs.log_tail(job)
    else:  # no cgroup here: the address-space rlimit makes the allocation itself fail
        assert "MemoryError" in services.jobs.log_tail(job), services.jobs.log_tail(job)
    assert wait(services, other).status == "succeeded"
    services.db.dispose()


def test_code_is_a_permission_the_service_enforces(sandboxed: Services) -> None:
    services = sandboxed
    services.auth.create_user("nina", "lilac-harbor-93", actor="test")
    nina = services.auth.get_user("nina")
    with pytest.raises(PermissionDenied, match="crispml user code NAME --allow"):
        services.jobs.submit(nina.id, "nina", JobSpec([sys.executable, "-V"]))
    with pytest.raises(PermissionDenied, match="crispml user code NAME --allow"):
        services.notebooks.start(nina)
    assert services.jobs.history(nina.id) == []


def test_a_name_that_cannot_map_to_an_os_account_is_refused_at_submit(
    sandboxed: Services,
) -> None:
    long = "a" * 40
    sandboxed.auth.create_user(long, "lilac-harbor-93", actor="test")
    sandboxed.auth.set_code(long, True, actor="test")
    user = sandboxed.auth.get_user(long)
    with pytest.raises(Exception, match="cannot map to an OS account"):
        sandboxed.jobs.submit(user.id, long, JobSpec([sys.executable, "-V"]))
    assert sandboxed.jobs.history(user.id) == []
