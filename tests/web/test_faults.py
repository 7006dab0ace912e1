"""Faults an operator meets, with real processes and real databases: a full disk, PostgreSQL
stopped and started again (a cluster this test starts itself, never the machine's), and a server
killed (SIGKILL) while it writes an upload, saved work and an autosave. Each gives a message in
words (page, CLI, /healthz), and after recovery nothing acknowledged is lost or half-written.
(The supervisor killed under a running job: tests/core/test_jobs.py.)"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ADMIN_PASSWORD, USER_PASSWORD, Server, free_port

PASSWORD = USER_PASSWORD + "\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small disk: needs root")


def cli(server: Server, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """A ``crispml`` command as an operator runs it; its failure is the result, not an error."""
    return subprocess.run(
        [sys.executable, "-m", "crispml", "--home", str(server.home), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=server.env(),
        timeout=120,
        check=False,
    )


def readable(done: subprocess.CompletedProcess[str]) -> str:
    """A failed command's message, checked to be words, not a traceback or SQLAlchemy's."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.startswith("Error: "), done.stderr
    for leak in ("Traceback", "Background on this error", "sqlalchemy", "psycopg"):
        assert leak not in done.stderr, done.stderr
    return done.stderr


def health(server: Server) -> tuple[int, dict[str, object]]:
    answer = httpx.get(server.url + "/healthz", timeout=30)
    return answer.status_code, answer.json()


def wait_until(check, seconds: float = 60, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# A full disk --------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 MB tmpfs: full when filled, with no blocks kept back for root (ext4 keeps 5%)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write until the disk refuses (ENOSPC), to its last page."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    refused = 0
    try:
        for size in (1_048_576, 4096):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    refused = exc.errno or 0
                    break
    finally:
        os.close(fd)
    assert refused == errno.ENOSPC
    return filler


def test_a_full_disk_is_reported_and_nothing_is_lost(small_disk: Path) -> None:
    server = Server(small_disk / "home").start(timeout=90)
    try:
        # What exists before the disk fills: a user, a file, a login session.
        assert cli(server, "user", "add", "bob", "--password-stdin", stdin=PASSWORD).returncode == 0
        kept = server.home / "users" / "admin" / "files" / "kept.csv"
        kept.parent.mkdir(parents=True, exist_ok=True)
        data = b"a,b\n" + b"1,2\n" * 1000
        kept.write_bytes(data)
        with server.client() as client:
            assert server.login(client).status_code == 303
        assert health(server)[0] == 200

        filler = fill(small_disk)
        status, body = health(server)
        assert status == 503, body
        assert body["status"] == "failing"
        disk = body["disk"]
        assert isinstance(disk, dict) and disk["ok"] is False
        assert "the disk is full" in str(disk["problem"]), body
        # Logging in: either it still fits (the database reuses its journal) or it says why.
        with server.client() as client:
            answer = server.login(client)
            assert answer.status_code in (303, 503), answer.text
            if answer.status_code == 503:
                assert "the disk is full" in answer.text
        # A job needs its run folder: refused in words, nothing half-started.
        submitted = cli(server, "jobs", "submit", "--", sys.executable, "-c", "print(1)")
        if submitted.returncode != 0:
            assert "disk is full" in readable(submitted)
        saved = cli(server, "user", "add", "carol", "--password-stdin", stdin=PASSWORD)
        if saved.returncode != 0:
            assert "disk is full" in readable(saved)

        print(
            f"\nfull disk: /healthz {status} {body['disk']}; login {answer.status_code}; "
            f"jobs submit exit {submitted.returncode} {submitted.stderr.strip()[:160]}; "
            f"user add exit {saved.returncode} {saved.stderr.strip()[:160]}"
        )
        filler.unlink()  # the operator frees space
        wait_until(lambda: health(server)[0] == 200, what="/healthz to recover")
        with server.client() as client:
            assert server.login(client).status_code == 303
        assert kept.read_bytes() == data
        users = cli(server, "user", "list")
        assert users.returncode == 0 and "bob" in users.stdout, users
        again = cli(server, "jobs", "submit", "--", sys.executable, "-c", "print(1)")
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in server.log()
    finally:
        server.stop()


# PostgreSQL stopped and started again ---------------------------------------------------------


def pg_bin(name: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    assert versions, "PostgreSQL's server programs are not installed (./dev installs them)"
    return str(versions[-1] / name)


class Cluster:
    """A PostgreSQL cluster of this test's own, on a free loopback port, run as 'postgres'."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="crispml-pg-", dir="/var/tmp"))
        self.port = free_port()
        self.account = pwd.getpwnam("postgres")
        os.chown(self.folder, self.account.pw_uid, self.account.pw_gid)
        self.run(pg_bin("initdb"), "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres")

    def run(self, *argv: str) -> None:
        subprocess.run(
            ["/usr/bin/setpriv", f"--reuid={self.account.pw_uid}",
             f"--regid={self.account.pw_gid}", "--init-groups", "--", *argv],
            check=True, capture_output=True, timeout=120, cwd=self.folder,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self.run(pg_bin("pg_ctl"), "-D", str(self.folder / "data"), "-o", options,
                 "-l", str(self.folder / "log"), "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self.run(pg_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [pg_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"],
            capture_output=True, check=False, user="postgres",
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def test_postgresql_stopped_and_started_again(tmp_path: Path) -> None:
    cluster = Cluster()
    cluster.start()
    server = Server(tmp_path / "home", env_extra={"CRISPML_DATABASE_URL": cluster.url})
    try:
        server.start(timeout=90)
        assert cli(server, "user", "add", "bob", "--password-stdin", stdin=PASSWORD).returncode == 0
        with server.client() as client:
            assert server.login(client).status_code == 303
            session = client.cookies

        cluster.stop()
        status, body = health(server)
        assert status == 503 and body["database"]["ok"] is False, body  # type: ignore[index]
        assert "cannot be reached" in body["database"]["problem"]  # type: ignore[index]
        with server.client() as client:
            answer = server.login(client)
            assert answer.status_code == 503 and "cannot be reached" in answer.text, answer.text
        with httpx.Client(base_url=server.url, cookies=session, timeout=30) as client:
            page = client.get("/", headers={"accept": "text/html"})
            assert page.status_code == 503 and "cannot be reached" in page.text
        assert "cannot be reached" in readable(cli(server, "user", "list"))

        cluster.start()
        wait_until(lambda: health(server)[0] == 200, what="/healthz after PostgreSQL is back")
        with server.client() as client:
            assert server.login(client).status_code == 303
        users = cli(server, "user", "list")
        assert users.returncode == 0 and "bob" in users.stdout
        assert server.proc is not None and server.proc.poll() is None  # it never went down
    finally:
        server.stop()
        cluster.remove()


# SIGKILL while writing ---------------------------------------------------------------------------

# A writer, as the server writes: an upload (in chunks), saved work and an autosave, over and
# over; after each one returns it prints what it acknowledged.
WRITER = r"""
import hashlib, json, os, sys
from crispml.services import bootstrap, build_services
from crispml.settings import Settings
from crispml.core.saved_work import Snapshot
svc = build_services(Settings(home=sys.argv[1], admin_password="x" * 16, seed_demo_project=False))
bootstrap(svc, samples=False)
admin = svc.auth.first_admin()
files = svc.files.space("admin", "admin", "~admin")
revision = 0
for n in range(10_000):
    body = (f"{n}," * 200_000).encode()  # 1.2 MB or more, in 64 KB chunks
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    files.write("", "upload.bin", chunks, max_bytes=10**9, overwrite=True)
    print(json.dumps({"upload": n, "sha": hashlib.sha256(body).hexdigest()}), flush=True)
    snapshot = Snapshot("project", {"w.value": json.dumps("x" * 50_000 + str(n))})
    svc.saved_work.save(admin.id, f"work {n}", "", snapshot, actor="admin")
    print(json.dumps({"saved": n}), flush=True)
    saved = svc.workspace.save(admin.id, {"modeling": {"modeling.epochs": str(n)}},
                               writer="tab", known_revision=revision)
    revision = saved.revision
    print(json.dumps({"autosaved": n}), flush=True)
"""


@pytest.mark.parametrize("kill_after", [3, 7, 12])
def test_sigkill_while_writing_loses_nothing_acknowledged(tmp_path: Path, kill_after: int) -> None:
    home = tmp_path / "home"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(home)],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")},
    )
    assert writer.stdout is not None
    acked: dict[str, object] = {}
    for lines, line in enumerate(writer.stdout, start=1):
        acked.update(json.loads(line))
        if lines == kill_after:  # then at once: mid-write of the next
            writer.send_signal(signal.SIGKILL)
            break
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    from crispml.services import build_services
    from crispml.settings import Settings

    svc = build_services(Settings(home=home, admin_password=ADMIN_PASSWORD))
    try:
        admin = svc.auth.first_admin()
        folder = svc.files.user_root("admin").path
        # The upload: the last acknowledged one whole or a later one whole, never a part.
        upload = (folder / "upload.bin").read_bytes()
        n = int(upload.split(b",", 1)[0])
        assert n >= int(acked["upload"])  # type: ignore[call-overload]
        assert upload == (f"{n}," * 200_000).encode()
        if n == acked["upload"]:
            assert hashlib.sha256(upload).hexdigest() == acked["sha"]
        assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == ["upload.bin"]
        # Saved work: every acknowledged one there, each whole.
        names = {w.name for w in svc.saved_work.page(admin.id).items}
        for k in range(int(acked.get("saved", -1)) + 1):  # type: ignore[call-overload]
            assert f"work {k}" in names
        for info in svc.saved_work.page(admin.id).items:
            loaded = svc.saved_work.load(admin.id, info.id)
            value = json.loads(loaded.snapshot.values["w.value"])
            assert value == "x" * 50_000 + info.name.split()[1]
        # The autosave: the acknowledged value or a later one, and its revision counts them.
        if "autosaved" in acked:
            loaded = svc.workspace.load(admin.id, ("modeling",))
            assert int(loaded.values["modeling.epochs"]) >= int(acked["autosaved"])  # type: ignore[call-overload]
            assert loaded.revision == int(loaded.values["modeling.epochs"]) + 1
    finally:
        svc.db.dispose()
