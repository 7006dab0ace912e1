"""Jobs: long computations as separate OS processes, queued, watched, stoppable, recoverable.

A job is launched through a supervisor process (crispml.core.supervisor) that detaches from the
web server and records the job's life in the database. The scheduler keeps at most
``max_concurrent`` jobs running (and ``max_per_user`` per user) and starts queued jobs in FIFO
order; it runs under a lock shared by every process using the database, in the web server on
submit and in each supervisor when its job ends, so the queue drains without a web server.
Processes are identified by pid *and* start time, so a reused pid is never taken for a job.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import select, update

from crispml.core.audit import AuditLog
from crispml.core.clock import Clock, utcnow
from crispml.core.envs.registry import SYSTEM, Environment, EnvironmentRegistry
from crispml.core.errors import Conflict, CrispmlError, InvalidInput, NotFound, PermissionDenied
from crispml.core.executors import Executor, JobHandle, LaunchRequest, load_executor, start_time
from crispml.core.files.service import user_files
from crispml.core.sandbox import (
    Capability,
    SandboxError,
    SandboxSettings,
    SandboxSpec,
    give_run_folder,
    identity,
    own,
    own_python_paths,
    own_tree_once,
    probe,
    python_paths,
    server_pythonpath,
)
from crispml.store.db import Database
from crispml.store.locks import exclusive
from crispml.store.tables import JobRow, UserRow

Status = Literal["queued", "starting", "running", "succeeded", "failed", "stopped", "lost"]
ACTIVE = ("queued", "starting", "running")
LIVE = ("starting", "running")
FINISHED = ("succeeded", "failed", "stopped", "lost")
KINDS = (
    "training",
    "sweep trial",
    "script",
    "environment build",
    "notebook server",
    "api server",
    "profile",
)
# Jobs whose program the user chose: a permission (code), never run outside a sandbox for users.
# Long-lived servers that wait for requests: counted apart from work (Limits).
SERVICE_KINDS = ("notebook server", "api server")
# What the pages call each kind.
KIND_LABELS = {
    "training": "training",
    "sweep trial": "sweep trial",
    "script": "command",
    "environment build": "environment build",
    "notebook server": "notebook",
    "api server": "API server",
    "profile": "profile",
}
CODE_KINDS = ("script", "notebook server")
# Jobs that run crispml's own server code with the server's rights (they need its database, or
# build environments for everyone); every other kind runs sandboxed as its owner.
TRUSTED_KINDS = ("environment build", "api server")
SYSTEM_ENV = SYSTEM
NO_CODE = (
    "Running code (commands and notebooks) is not enabled for your account: an admin allows it "
    "on Users and sessions, or with: crispml user code NAME --allow."
)


@dataclass(frozen=True)
class JobSpec:
    argv: list[str]
    name: str = ""
    kind: str = "script"
    env: str = SYSTEM_ENV
    stdin_lines: list[str] = field(default_factory=list)
    executor: str = ""  # "": the configured one; environment builds always run "local"
    files: dict[str, str] = field(default_factory=dict)  # written into the job's folder first
    # What the sandbox mounts besides the user's files and the run folder: (path, "ro" | "rw").
    mounts: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    id: str
    owner: str
    name: str
    kind: str
    argv: list[str]
    env: str
    workdir: str
    status: str
    exit_code: int | None
    signal: str | None
    error: str
    pid: int | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    stdin_lines: list[str] = field(default_factory=list)
    handle: JobHandle | None = None
    executor: str = "local"
    mounts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class Limits:
    """How many jobs run at once. Work (training, commands, profiles, builds) and services
    (notebook and API servers, which wait for requests rather than compute) have limits of
    their own, so a user's open JupyterLab never takes a training slot."""

    max_concurrent: int = os.cpu_count() or 2
    max_per_user: int = 0  # 0: no per-user limit
    stop_grace: float = 10.0
    services_max: int = 16
    services_max_per_user: int = 2

    def environment(self) -> dict[str, str]:
        """For supervisors, which schedule the queue without the server's settings."""
        return {
            "CRISPML_JOBS_MAX_CONCURRENT": str(self.max_concurrent),
            "CRISPML_JOBS_MAX_PER_USER": str(self.max_per_user),
            "CRISPML_JOBS_STOP_GRACE": str(self.stop_grace),
            "CRISPML_SERVICES_MAX_CONCURRENT": str(self.services_max),
            "CRISPML_SERVICES_MAX_PER_USER": str(self.services_max_per_user),
        }

    @classmethod
    def from_environment(cls) -> Limits:
        def number(name: str, default: float) -> float:
            return float(os.environ.get(name) or 0) or default

        return cls(
            int(number("CRISPML_JOBS_MAX_CONCURRENT", os.cpu_count() or 2)),
            int(number("CRISPML_JOBS_MAX_PER_USER", 0)),
            number("CRISPML_JOBS_STOP_GRACE", 10.0),
            int(number("CRISPML_SERVICES_MAX_CONCURRENT", 16)),
            int(number("CRISPML_SERVICES_MAX_PER_USER", 2)),
        )


def _to_job(row: JobRow, owner: str) -> Job:
    return Job(
        row.id,
        owner,
        row.name,
        row.kind,
        json.loads(row.argv),
        row.env,
        row.workdir,
        row.status,
        row.exit_code,
        row.signal,
        row.error,
        row.pid,
        row.created_at,
        row.started_at,
        row.ended_at,
        json.loads(row.stdin),
        handle_of(row),
        row.executor,
        [(str(p), str(m)) for p, m in json.loads(row.mounts or "[]")],
    )


class JobRuntime:
    """What both the web server and the supervisors do to jobs' records and the queue."""

    def __init__(
        self,
        db: Database,
        home: Path,
        limits: Limits,
        clock: Clock = utcnow,
        executor: Executor | None = None,
        executor_name: str = "local",
        executor_env: dict[str, str] | None = None,
        sandbox: SandboxSettings | None = None,
        ray_trusted: bool = False,
    ) -> None:
        self.db = db
        self.home = home
        self.limits = limits
        self.sandbox = sandbox or SandboxSettings()
        self.ray_trusted = ray_trusted
        self._clock = clock
        # The supervisor reads the limits from these variables when it schedules the queue.
        self._executor_env = {
            **limits.environment(),
            **self.sandbox.environment(),
            **(executor_env or {}),
        }
        self.executor = executor or load_executor(executor_name, db.url, home, self._executor_env)
        self._executors: dict[str, Executor] = {self.executor.name: self.executor}
        self.environments = EnvironmentRegistry(db, home, clock)

    def executor_for(self, name: str) -> Executor:
        """The executor a job was started with (jobs keep theirs when the setting changes)."""
        if name not in self._executors:
            self._executors[name] = load_executor(name, self.db.url, self.home, self._executor_env)
        return self._executors[name]

    @classmethod
    def from_url(cls, url: str, home: Path) -> JobRuntime:
        return cls(
            Database(url),
            home,
            Limits.from_environment(),
            sandbox=SandboxSettings.from_environment(),
        )

    def workdir(self, job_id: str) -> Path:
        return self.home / "runs" / job_id

    def _job(self, job_id: str) -> Job:
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise NotFound(f"No job {job_id}.")
            owner = s.get(UserRow, row.owner_id)
            return _to_job(row, owner.username if owner else "?")

    def claim(self, job_id: str, supervisor_pid: int) -> Job | None:
        """The supervisor records itself on its job (starting). A stop requested meanwhile is
        honoured by the supervisor right after (see ``stop_requested``)."""
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            if row is None or row.status != "starting":
                return None
            row.supervisor_pid = supervisor_pid
            row.supervisor_started = start_time(supervisor_pid)
        return self._job(job_id)

    def running(self, job_id: str, pid: int) -> None:
        with self.db.session() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(
                    status="running", pid=pid, pid_started=start_time(pid), started_at=self._clock()
                )
            )

    def finish(
        self, job_id: str, status: str, code: int | None, sig: str | None, error: str
    ) -> None:
        with self.db.session() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status.in_(ACTIVE))
                .values(
                    status=status, exit_code=code, signal=sig, error=error, ended_at=self._clock()
                )
            )

    def stop_requested(self, job_id: str) -> bool:
        with self.db.session() as s:
            return bool(s.scalar(select(JobRow.stop_requested).where(JobRow.id == job_id)))

    def schedule(self) -> int:
        """Start queued jobs, oldest first, while the limits allow. Returns how many started."""
        started = 0
        with exclusive(self.db, "jobs"), self.db.session() as s:
            # Work and services are counted apart: (is a service, owner) -> running.
            per_user: dict[tuple[bool, int], int] = {}
            running = {False: 0, True: 0}
            for kind, owner in s.execute(
                select(JobRow.kind, JobRow.owner_id).where(JobRow.status.in_(LIVE))
            ):
                service = kind in SERVICE_KINDS
                per_user[service, owner] = per_user.get((service, owner), 0) + 1
                running[service] += 1
            most = {False: self.limits.max_concurrent, True: self.limits.services_max}
            most_each = {False: self.limits.max_per_user, True: self.limits.services_max_per_user}
            for row in s.scalars(
                select(JobRow)
                .where(JobRow.status == "queued")
                .order_by(JobRow.created_at, JobRow.id)
            ):
                service = row.kind in SERVICE_KINDS
                if running[service] >= most[service]:
                    continue  # the other group may still have room
                if (
                    most_each[service]
                    and per_user.get((service, row.owner_id), 0) >= most_each[service]
                ):
                    continue
                env, problem = self._precheck(row)
                sandbox = None
                if env is not None:
                    try:
                        sandbox = self.sandbox_for(row, env)
                    except (SandboxError, OSError) as exc:
                        env, problem = None, f"The job's sandbox cannot be set up: {exc}"
                if env is None:
                    row.status, row.error, row.ended_at = "failed", problem, self._clock()
                    with (
                        contextlib.suppress(OSError),
                        (Path(row.workdir) / "output.log").open("a") as log,
                    ):
                        log.write(f"crispml: {problem}\n")
                    continue
                row.status = "starting"
                s.flush()
                self._launch(row, env, sandbox)
                per_user[service, row.owner_id] = per_user.get((service, row.owner_id), 0) + 1
                running[service] += 1
                started += 1
        return started

    def _precheck(self, row: JobRow) -> tuple[Environment | None, str]:
        """The job's environment, or the problem that fails it at once (also in its log)."""
        workdir = Path(row.workdir)
        try:
            workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return None, f"The working folder {workdir} cannot be created: {exc.strerror or exc}."
        try:
            return self.environments.usable(row.env), ""
        except CrispmlError as exc:  # deleted or still building since the job was submitted
            return None, str(exc)

    def capability(self) -> Capability:
        """How this machine sandboxes jobs (for start-up, ``crispml doctor`` and the pages)."""
        return probe(self.sandbox.mode)

    def sandboxed(self, kind: str, executor: str) -> bool:
        """Whether a job of this kind runs in the sandbox (where this machine has one)."""
        return (
            kind not in TRUSTED_KINDS and executor == "local" and probe(self.sandbox.mode).available
        )

    def sandbox_for(self, row: JobRow, env: Environment) -> SandboxSpec | None:
        """The sandbox of a job about to start: its owner's identity and what it may reach.
        Folders it writes are given to that identity first (re-owned on first use)."""
        if not self.sandboxed(row.kind, row.executor):
            return None
        mounts = [(str(p), str(m)) for p, m in json.loads(row.mounts or "[]")]
        spec = self.owner_sandbox(
            row.owner_id,
            env,
            readable=[p for p, m in mounts if m == "ro"],
            writable=[p for p, m in mounts if m == "rw"],
        )
        if spec.uid is not None and spec.gid is not None:
            give_run_folder(Path(row.workdir), spec.gid)
        return replace(spec, writable=[row.workdir, *spec.writable])

    def owner_sandbox(
        self,
        owner_id: int,
        env: Environment,
        readable: list[str],
        writable: list[str],
        *,
        files: bool = True,
    ) -> SandboxSpec:
        """A sandbox for a process run on a user's behalf in ``env`` (a job, or a model
        worker of the API server): the user's own OS account where the server is root, their
        files read-write (unless ``files`` is False), the environment read-only. Folders it
        writes are given to that account first."""
        with self.db.session() as s:
            owner = s.get(UserRow, owner_id)
            if owner is None:
                raise SandboxError("its owner no longer exists")
            username, network = owner.username, bool(owner.network) or self.sandbox.network
        uid = gid = None
        if probe(self.sandbox.mode).kind == "identity":
            uid, gid = identity(self.sandbox, owner_id, username)
        if files:
            writable = [str(user_files(self.home, username)), *writable]
        readable = readable + own_python_paths() + python_paths(env.interpreter, env.prefix)
        if env.kind == "conda" and env.tool:
            readable += python_paths(env.tool)
        if uid is not None and gid is not None:
            if files:
                own_tree_once(user_files(self.home, username), uid, gid)
            for path in writable:
                own(Path(path), uid, gid, recursive=True)
        return SandboxSpec(
            uid,
            gid,
            writable,
            readable,
            network,
            self.sandbox.memory_mb,
            self.sandbox.processes,
        )

    def _launch(self, row: JobRow, env: Environment, sandbox: SandboxSpec | None) -> None:
        """The command runs with its environment's interpreter, helpers on PYTHONPATH."""
        base = None
        if sandbox is not None:  # nothing of the server's environment but its PYTHONPATH
            base = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
            if server_pythonpath():
                base["PYTHONPATH"] = os.pathsep.join(server_pythonpath())
        self.executor_for(row.executor).submit(
            LaunchRequest(
                job_id=row.id,
                argv=env.command(json.loads(row.argv)),
                workdir=Path(row.workdir),
                stdin_lines=json.loads(row.stdin),
                environment={
                    **env.variables(base),
                    "CRISPML_JOB_ID": row.id,
                    "CRISPML_RUN_DIR": row.workdir,
                },
                stop_grace=self.limits.stop_grace,
                sandbox=sandbox,
            )
        )


def handle_of(row: JobRow) -> JobHandle:
    return JobHandle(
        row.id,
        Path(row.workdir),
        row.pid,
        row.pid_started,
        row.supervisor_pid,
        row.supervisor_started,
    )


class JobService:
    """Jobs for the pages and the CLI: submit, list, stop, rerun, delete, logs, recover."""

    def __init__(self, runtime: JobRuntime, audit: AuditLog, clock: Clock = utcnow) -> None:
        self.runtime = runtime
        self._db = runtime.db
        self._audit = audit
        self._clock = clock

    def submit(self, owner_id: int, owner: str, spec: JobSpec) -> Job:
        if not spec.argv or not all(isinstance(a, str) for a in spec.argv):
            raise InvalidInput("A job needs a command: a program and its arguments.")
        if any("\x00" in a for a in spec.argv):
            raise InvalidInput("A command argument cannot contain a NUL byte.")
        name = (spec.name or Path(spec.argv[0]).name)[:200]
        try:
            self.runtime.environments.usable(spec.env)  # a clear message before any job starts
        except CrispmlError as exc:
            raise InvalidInput(str(exc)) from exc
        self._check_may_run(owner_id, spec)
        job_id = uuid.uuid4().hex[:12]
        workdir = self.runtime.workdir(job_id)
        with self._db.session() as s:
            s.add(
                JobRow(
                    id=job_id,
                    owner_id=owner_id,
                    name=name,
                    kind=spec.kind,
                    argv=json.dumps(spec.argv),
                    env=spec.env,
                    stdin=json.dumps(spec.stdin_lines),
                    mounts=json.dumps(spec.mounts),
                    workdir=str(workdir),
                    status="queued",
                    executor=spec.executor or self.runtime.executor.name,
                    created_at=self._clock(),
                )
            )
            self._audit.add(s, owner, "job.submit", job_id, name)
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            for file_name, text in spec.files.items():
                (workdir / Path(file_name).name).write_text(text)
            (workdir / "command.json").write_text(
                json.dumps(
                    {
                        "argv": spec.argv,
                        "env": spec.env,
                        "name": name,
                        "kind": spec.kind,
                        "files": sorted(spec.files),
                    },
                    indent=2,
                )
            )
        except OSError:
            pass  # the scheduler fails the job with the reason
        self.runtime.schedule()
        return self.get(owner_id, job_id, admin=True)

    def _check_may_run(self, owner_id: int, spec: JobSpec) -> None:
        """Refuse, before anything is queued, what this user may not run or cannot run here:
        code without the permission, code where no sandbox can hold it, code on an untrusted
        cluster, or an owner whose name or id cannot map to an OS account."""
        with self._db.session() as s:
            owner = s.get(UserRow, owner_id)
        if owner is None:
            raise NotFound(f"No user with id {owner_id}.")
        admin = owner.role == "admin"
        executor = spec.executor or self.runtime.executor.name
        if spec.kind in CODE_KINDS and not admin:
            if not owner.code:
                raise PermissionDenied(NO_CODE)
            capability = probe(self.runtime.sandbox.mode)
            if capability.kind == "none":
                raise PermissionDenied(
                    "Running code is refused on this server for everyone but admins because "
                    f"it cannot be sandboxed: {capability.message}"
                )
            if executor != "local" and not self.runtime.ray_trusted:
                raise PermissionDenied(
                    f"Jobs on the '{executor}' cluster run outside crispml's sandbox, so only "
                    "admins may run commands there (unless an admin marks the cluster trusted: "
                    "setting ray_trusted)."
                )
        if (
            self.runtime.sandboxed(spec.kind, executor)
            and probe(self.runtime.sandbox.mode).kind == "identity"
        ):
            try:
                identity(self.runtime.sandbox, owner.id, owner.username)
            except SandboxError as exc:
                raise InvalidInput(str(exc)) from exc

    def refresh(self) -> int:
        """Copy the state of jobs run by an engine (Ray) into the store; returns how many
        ended. On an ending, the full log is kept in runs/<id>/output.log."""
        ended = 0
        with self._db.session() as s:
            rows = list(
                s.scalars(select(JobRow).where(JobRow.status.in_(LIVE), JobRow.executor != "local"))
            )
            for row in rows:
                executor = self.runtime.executor_for(row.executor)
                state = executor.status(handle_of(row))
                if state is None or state.status == "unknown":
                    continue
                if state.status == "running" and row.status == "starting":
                    row.status, row.started_at = "running", self._clock()
                elif state.status in FINISHED:
                    log = executor.logs(handle_of(row), 50_000_000)
                    with contextlib.suppress(OSError):
                        (Path(row.workdir) / "output.log").write_text(log)
                    row.status, row.ended_at = state.status, self._clock()
                    row.error = state.message[:2000]
                    row.exit_code = 0 if state.status == "succeeded" else state.exit_code
                    ended += 1
        if ended:
            self.runtime.schedule()
        return ended

    def get(self, user_id: int, job_id: str, *, admin: bool = False) -> Job:
        self._refresh_engines()
        with self._db.session() as s:
            row = s.get(JobRow, job_id)
            if row is None or (row.owner_id != user_id and not admin):
                raise NotFound(f"No job {job_id}.")
            owner = s.get(UserRow, row.owner_id)
            return _to_job(row, owner.username if owner else "?")

    def history(
        self,
        user_id: int | None,
        *,
        statuses: Iterable[str] = (),
        kinds: Iterable[str] = (),
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[Job]:
        """Newest first; ``user_id=None`` lists everyone's (admins)."""
        self._refresh_engines()
        query = (
            select(JobRow, UserRow.username)
            .join(UserRow, UserRow.id == JobRow.owner_id)
            .order_by(JobRow.created_at.desc(), JobRow.id.desc())
            .limit(limit)
        )
        if user_id is not None:
            query = query.where(JobRow.owner_id == user_id)
        if statuses := list(statuses):
            query = query.where(JobRow.status.in_(statuses))
        if kinds := list(kinds):
            query = query.where(JobRow.kind.in_(kinds))
        if since is not None:
            query = query.where(JobRow.created_at >= since)
        with self._db.session() as s:
            return [_to_job(row, owner) for row, owner in s.execute(query)]

    def _refresh_engines(self) -> None:
        if self.runtime.executor.name != "local" or self._has_engine_jobs():
            self.refresh()

    def _has_engine_jobs(self) -> bool:
        with self._db.session() as s:
            return (
                s.scalar(
                    select(JobRow.id)
                    .where(JobRow.status.in_(LIVE), JobRow.executor != "local")
                    .limit(1)
                )
                is not None
            )

    def stop(self, user_id: int, job_id: str, *, admin: bool = False, actor: str = "") -> Job:
        """Stop a job: a queued one at once; a running one through its supervisor (SIGTERM to
        the job's process group, SIGKILL after the grace period)."""
        self.get(user_id, job_id, admin=admin)
        with self._db.session() as s:
            row = s.get(JobRow, job_id)
            assert row is not None
            if row.status in FINISHED:
                raise Conflict(f"Job {job_id} has already ended ({row.status}).")
            row.stop_requested = True
            if row.status == "queued":
                row.status, row.error, row.ended_at = (
                    "stopped",
                    "stopped while queued",
                    self._clock(),
                )
            handle, executor = handle_of(row), row.executor
            queued = row.status == "stopped"
            self._audit.add(s, actor, "job.stop", job_id)
        if not queued:
            self.runtime.executor_for(executor).stop(handle)
        return self.get(user_id, job_id, admin=True)

    def stop_all(self, user_id: int | None, *, actor: str, kinds: Iterable[str] = ()) -> int:
        """Stop every running and queued job (of ``kinds``, if given) of a user, or of all."""
        jobs = self.history(user_id, statuses=ACTIVE, kinds=kinds)
        for job in jobs:
            with contextlib.suppress(Conflict):
                self.stop(0, job.id, admin=True, actor=actor)
        return len(jobs)

    def rerun(self, user_id: int, job_id: str, *, admin: bool = False) -> Job:
        old = self.get(user_id, job_id, admin=admin)
        if old.kind == "environment build":
            raise Conflict("An environment is built again from the Environments page, not rerun.")
        with self._db.session() as s:
            owner = s.get(UserRow, user_id)
        files = {}
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads((Path(old.workdir) / "command.json").read_text())
            names = [Path(str(n)).name for n in recorded.get("files", [])]
            files = {n: (Path(old.workdir) / n).read_text() for n in names if n}
        return self.submit(
            user_id,
            owner.username if owner else old.owner,
            JobSpec(
                old.argv,
                old.name,
                old.kind,
                old.env,
                old.stdin_lines,
                old.executor,
                files,
                old.mounts,
            ),
        )

    def delete(self, user_id: int, job_id: str, *, admin: bool = False, actor: str = "") -> None:
        job = self.get(user_id, job_id, admin=admin)
        if not job.finished:
            raise Conflict(f"Job {job_id} is {job.status}: stop it before deleting it.")
        with self._db.session() as s:
            row = s.get(JobRow, job_id)
            if row is not None:
                s.delete(row)
            self._audit.add(s, actor, "job.delete", job_id)
        shutil.rmtree(job.workdir, ignore_errors=True)

    def log_path(self, job: Job) -> Path:
        return Path(job.workdir) / "output.log"

    def log_tail(self, job: Job, max_bytes: int = 64_000) -> str:
        """The end of the job's log: cheap at any size."""
        handle = job.handle or JobHandle(job.id, Path(job.workdir))
        return self.runtime.executor_for(job.executor).logs(handle, max_bytes)

    def recover(self) -> list[str]:
        """At web-server start: jobs whose supervisor died without a final status are lost."""
        notes = []
        with self._db.session() as s:
            live = select(JobRow).where(JobRow.status.in_(LIVE), JobRow.executor == "local")
            for row in s.scalars(live):  # engine-run jobs are followed by refresh()
                executor = self.runtime.executor_for(row.executor)
                if executor.alive(handle_of(row)):
                    continue
                if row.status == "starting" and row.supervisor_pid is None:
                    age = (self._clock() - row.created_at).total_seconds()
                    if age < 30:
                        continue  # its supervisor may still be starting
                reason = "its supervisor process ended without recording a result"
                if executor.kill(handle_of(row)):
                    reason += "; the job's processes were stopped"
                row.status, row.error, row.ended_at = "lost", reason, self._clock()
                notes.append(f"job {row.id}: lost ({reason})")
        self.runtime.schedule()
        return notes

    def usage(self, job: Job) -> tuple[float, int]:
        """CPU percent and resident memory (bytes) of a running job and its children."""
        if job.status != "running" or job.handle is None:
            return 0.0, 0
        return self.runtime.executor_for(job.executor).usage(job.handle)
