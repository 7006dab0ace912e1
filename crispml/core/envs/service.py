"""Environments for the pages and the CLI: list, build, register, check, match, delete.

Building a venv is a job (kind "environment build") that runs crispml.core.envs.build: uv's output
streams to the job's log and the process table shows it. The registry row exists from the start
with status "building", so the name is taken while the build runs; when the job ends the
registry settles it (ready, or removed with its folder).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from crispml.core.audit import AuditLog
from crispml.core.auth import User
from crispml.core.clock import Clock, utcnow
from crispml.core.envs.conda import discover_conda
from crispml.core.envs.interpreters import Interpreter, find_python, installed_pythons
from crispml.core.envs.probe import ProbeFailed, probe
from crispml.core.envs.registry import SYSTEM, Check, Environment, EnvironmentRegistry, check_name
from crispml.core.envs.requirements import parse_requirements, requirement_name, unmet
from crispml.core.errors import Conflict, InvalidInput, PermissionDenied
from crispml.core.jobs import ACTIVE, Job, JobService, JobSpec
from crispml.store.tables import EnvironmentRow, JobRow, UserRow

# Who else uses an environment (deployed models, ...): name -> descriptions of the users.
UsageSource = Callable[[str], list[str]]
CONDA_REFRESH_S = 60.0


def pip_find_links() -> tuple[str, ...]:
    """pip's find-links (``PIP_FIND_LINKS``, else pip.conf), so that environments built with uv
    see the same local wheels as pip (a CPU build of torch, for example)."""
    import configparser
    import os

    if os.environ.get("PIP_FIND_LINKS"):
        return tuple(os.environ["PIP_FIND_LINKS"].split())
    files = [
        Path("/etc/pip.conf"),
        Path.home() / ".config/pip/pip.conf",
        Path.home() / ".pip/pip.conf",
    ]
    links: list[str] = []
    for path in files:
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except configparser.Error:
            continue
        links += parser.get("global", "find-links", fallback="").split()
    return tuple(dict.fromkeys(links))


def uv_binary() -> str:
    """uv from the ``uv`` package crispml depends on, else the one on PATH."""
    try:
        from uv import find_uv_bin  # type: ignore[import-untyped, unused-ignore]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise InvalidInput("uv is not installed: pip install uv.") from None
        return found


class EnvironmentService:
    def __init__(
        self,
        registry: EnvironmentRegistry,
        jobs: JobService,
        audit: AuditLog,
        *,
        conda_tools: Sequence[str] = ("conda", "mamba", "micromamba"),
        python_interpreters: Sequence[str] = (),
        find_links: Sequence[str] = (),
        clock: Clock = utcnow,
    ) -> None:
        self.registry = registry
        self._jobs = jobs
        self._audit = audit
        self._conda_tools = tuple(conda_tools)
        self._extra_pythons = tuple(python_interpreters)
        self._find_links = tuple(find_links) or pip_find_links()
        self._clock = clock
        self._conda_synced = 0.0
        self._usage_sources: list[UsageSource] = []

    def add_usage_source(self, source: UsageSource) -> None:
        """Another kind of user of environments (deployed models) that blocks deletion."""
        self._usage_sources.append(source)

    # --- reading ---------------------------------------------------------------------------

    def all(self, *, refresh: bool = False) -> list[Environment]:
        """Every environment; conda's are looked up again at most once a minute (or now)."""
        if refresh or time.monotonic() - self._conda_synced > CONDA_REFRESH_S:
            found = discover_conda(self._conda_tools)
            if found is not None:  # a tool that failed once must not make its envs vanish
                self.registry.sync_conda(found)
            self._conda_synced = time.monotonic()
        return self.registry.all()

    def get(self, name: str) -> Environment:
        if name != SYSTEM and not self._known(name):
            self.all(refresh=True)  # a conda environment created since the last look
        return replace(self.registry.get(name), last_used=self.registry.last_used(name))

    def _known(self, name: str) -> bool:
        with self.registry.db.session() as s:
            return s.get(EnvironmentRow, name) is not None

    def pythons(self) -> list[Interpreter]:
        return installed_pythons(self._extra_pythons)

    # --- building and registering ------------------------------------------------------------

    def create_venv(
        self, user: User, name: str, python: str, requirements: str | Iterable[str]
    ) -> tuple[Environment, Job]:
        """Start building a venv with uv; returns the (building) environment and its job."""
        self._admin(user)
        name = check_name(name)
        reqs = parse_requirements(requirements)
        interpreter = find_python(python, self._extra_pythons)
        self._check_free(name)
        target = self.registry.folder(name)
        if target.exists():
            raise Conflict(
                f"The folder {target} exists already but is no registered environment; "
                "remove it or choose another name."
            )
        self.registry.add(
            EnvironmentRow(
                name=name,
                kind="venv",
                status="building",
                python_request=python or interpreter.version,
                requirements=json.dumps(reqs),
                created_by=user.username,
                created_at=self._clock(),
            )
        )
        argv = [
            sys.executable,
            "-m",
            "crispml.core.envs.build",
            "--uv",
            uv_binary(),
            "--python",
            interpreter.path,
            "--target",
            str(target),
            *[arg for link in self._find_links for arg in ("--find-links", link)],
            "--",
            *reqs,
        ]
        try:
            job = self._jobs.submit(
                user.id,
                user.username,
                # Built here, where envs/ is, whatever executor runs other jobs.
                JobSpec(argv, f"build environment {name}", "environment build", executor="local"),
            )
        except Exception:
            self.registry.remove(name)
            raise
        building = self.registry.set_build_job(name, job.id)
        with self.registry.db.session() as s:
            self._audit.add(s, user.username, "env.create", name, f"job={job.id}")
        return building, job

    def register_interpreter(self, user: User, name: str, path: str) -> Environment:
        """Register an existing interpreter (kind ``path``) and check it at once."""
        self._admin(user)
        name = check_name(name)
        if not path.startswith("/"):
            raise InvalidInput("Give the interpreter's absolute path, e.g. /opt/py312/bin/python3.")
        interpreter = find_python(path)
        self._check_free(name)
        self.registry.add(
            EnvironmentRow(
                name=name,
                kind="path",
                status="ready",
                interpreter=path,
                prefix="",
                python_request=interpreter.version,
                created_by=user.username,
                created_at=self._clock(),
            )
        )
        with self.registry.db.session() as s:
            self._audit.add(s, user.username, "env.register", name, path)
        self.check(name)
        return self.get(name)

    def _check_free(self, name: str) -> None:
        if self._known(name):
            raise Conflict(f"An environment named '{name}' exists already.")

    @staticmethod
    def _admin(user: User) -> None:
        if not user.is_admin:
            raise PermissionDenied("Only admins build, register and delete environments.")

    # --- checking and matching ---------------------------------------------------------------

    def check(self, name: str, requirements: Iterable[str] = ()) -> Check:
        """The doctor: start the interpreter, import what the environment's requirements (and
        ``requirements``, e.g. an algorithm's) name, and report what is missing or broken."""
        env = self.registry.usable(name)
        wanted = list(dict.fromkeys([*env.requirements, *parse_requirements(requirements)]))
        try:
            result = probe(env, [requirement_name(r) for r in wanted], size=True)
        except ProbeFailed as exc:
            problems = [f"{name}: {exc}"]
            self.registry.record_check(env, {}, problems)
            return Check(name, False, problems, interpreter=env.interpreter)
        version = str(result.get("version", ""))
        problems = unmet(wanted, result.get("packages", {}), version)
        imports: dict[str, str] = result.get("imports", {})
        problems += [f"import {m} fails: {error}" for m, error in imports.items() if error]
        if not result.get("helper"):
            problems.append("crispml's job-side helper (import crispml_job) is not importable")
        self.registry.record_check(env, result, problems)
        return Check(name, not problems, problems, version, str(result["executable"]), imports)

    def satisfying(self, requirements: Iterable[str]) -> list[Environment]:
        """Ready environments whose installed packages meet ``requirements`` (checked once if
        never checked)."""
        wanted = parse_requirements(requirements)
        found = []
        for env in self.all():
            if not env.ready:
                continue
            if env.checked_at is None:
                self.check(env.name)
                env = self.registry.get(env.name)
            if env.checked_at is not None and not unmet(wanted, env.packages, env.python_version):
                found.append(env)
        return found

    # --- deleting -----------------------------------------------------------------------------

    def users_of(self, name: str) -> list[str]:
        """What would break if ``name`` went: queued or running jobs, model servers, ..."""
        with self.registry.db.session() as s:
            rows = s.execute(
                select(JobRow.id, JobRow.name, JobRow.kind, JobRow.status, UserRow.username)
                .join(UserRow, UserRow.id == JobRow.owner_id)
                .where(JobRow.env == name, JobRow.status.in_(ACTIVE))
                .order_by(JobRow.created_at)
            ).all()
        users = [
            f"{'model server' if kind == 'api server' else 'job'} {job_id} "
            f"'{job_name}' of {owner} ({status})"
            for job_id, job_name, kind, status, owner in rows
        ]
        for source in self._usage_sources:
            users += source(name)
        return users

    def delete(self, user: User, name: str) -> None:
        self._admin(user)
        env = self.registry.get(name)
        if env.kind == SYSTEM:
            raise Conflict("The system environment is crispml's own; it cannot be deleted.")
        if env.kind == "conda":
            raise Conflict(
                f"'{name}' is managed by conda: remove it with '{Path(env.tool).name} env remove "
                f"-p {env.prefix}' and it leaves this list."
            )
        if not env.ready:
            raise Conflict(f"'{name}' is being built by job {env.build_job}; stop that job first.")
        users = self.users_of(name)
        if users:
            raise Conflict(
                f"The environment '{name}' is in use and was not deleted. Used by: "
                + "; ".join(users)
            )
        self.registry.remove(name)
        with self.registry.db.session() as s:
            self._audit.add(s, user.username, "env.delete", name, env.kind)
