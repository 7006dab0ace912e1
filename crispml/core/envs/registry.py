"""Python environments that jobs and model servers run in: the registry and its records.

Kinds:

- ``system``: the interpreter crispml itself runs in (always present, never deleted);
- ``venv``: built by crispml under ``<home>/envs/<name>/`` with uv (a build job, see
  crispml.core.envs.build and crispml.core.envs.service);
- ``conda``: existing conda/mamba/micromamba environments, found by crispml.core.envs.conda
  and run with ``<tool> run -p PREFIX --no-capture-output``;
- ``path``: an interpreter an admin registered by its path.

A job's command runs with its environment's interpreter (``python`` as the program means that
interpreter) and with crispml's job-side helpers (``crispml/jobside``, standard library only) on
``PYTHONPATH``, so ``import crispml_job`` works even where crispml is not installed. What an
environment holds is learnt by running ``_crispml_probe.py`` with its own interpreter
(crispml.core.envs.probe); the result is kept in the store for the table and for matching
requirements.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import crispml
from crispml.core.clock import Clock, utcnow
from crispml.core.envs.interpreters import own_packages
from crispml.core.envs.requirements import requirement_name, unmet
from crispml.core.errors import Conflict, InvalidInput, NotFound
from crispml.store.db import Database
from crispml.store.tables import EnvironmentRow, JobRow

SYSTEM = "system"
KINDS = ("system", "venv", "conda", "path")
JOBSIDE = Path(crispml.__file__).resolve().parent / "jobside"
MARKER = ".crispml-env.json"  # written last by a successful build
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
PYTHON_NAMES = ("python", "python3")
# Shown in the table beside the environment's own requirements, when installed.
KEY_PACKAGES = (
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "torch",
    "tensorflow",
    "skops",
    "pyarrow",
)
# Build jobs whose row has no job id yet (between insert and submit) are left alone this long.
_UNSUBMITTED_GRACE_S = 300


@dataclass(frozen=True)
class Environment:
    name: str
    kind: str
    status: str  # ready or building
    interpreter: str
    prefix: str = ""
    tool: str = ""
    requirements: list[str] = field(default_factory=list)
    python_request: str = ""
    build_job: str | None = None
    created_by: str = ""
    created_at: datetime | None = None
    python_version: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    size_bytes: int | None = None
    problems: list[str] = field(default_factory=list)
    checked_at: datetime | None = None
    last_used: datetime | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def healthy(self) -> bool | None:
        """None until checked."""
        return None if self.checked_at is None else not self.problems

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run in this environment (``python`` is the environment's interpreter)."""
        if self.kind == "conda":
            return [self.tool, "run", "-p", self.prefix, "--no-capture-output", *argv]
        if argv and argv[0] in PYTHON_NAMES:
            return [self.interpreter, *argv[1:]]
        return list(argv)

    def variables(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment variables a process in this environment gets on top of ``base``."""
        base = dict(os.environ) if base is None else base
        values = {"CRISPML_ENV": self.name, "PYTHONPATH": str(JOBSIDE)}
        path = base.get("PATH", os.defpath)
        if self.kind == SYSTEM:
            inherited = base.get("PYTHONPATH")
            if inherited:
                values["PYTHONPATH"] = os.pathsep.join([str(JOBSIDE), inherited])
            values["PATH"] = os.pathsep.join([str(Path(self.interpreter).parent), path])
        elif self.kind == "venv":
            values["VIRTUAL_ENV"] = self.prefix
            values["PATH"] = os.pathsep.join([str(Path(self.prefix) / "bin"), path])
        elif self.kind == "path":
            values["PATH"] = os.pathsep.join([str(Path(self.interpreter).parent), path])
        return values

    def key_packages(self) -> dict[str, str]:
        """The packages that matter: its requirements and the usual ML libraries, installed."""
        names = [requirement_name(r) for r in self.requirements] + list(KEY_PACKAGES)
        return {n: self.packages[n] for n in dict.fromkeys(names) if n in self.packages}


@dataclass(frozen=True)
class Check:
    """What the health check ("doctor") found."""

    environment: str
    ok: bool
    problems: list[str]
    python_version: str = ""
    interpreter: str = ""
    imports: dict[str, str] = field(default_factory=dict)


def check_name(name: str) -> str:
    name = (name or "").strip()
    if name == SYSTEM:
        raise InvalidInput("'system' is the name of crispml's own environment; choose another.")
    if not NAME_RE.match(name) or ".." in name:
        raise InvalidInput(
            f"'{name}' cannot name an environment: use 1 to 63 lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter or digit (it becomes a folder name)."
        )
    return name


def _to_env(row: EnvironmentRow) -> Environment:
    return Environment(
        name=row.name,
        kind=row.kind,
        status=row.status,
        interpreter=row.interpreter,
        prefix=row.prefix,
        tool=row.tool,
        requirements=json.loads(row.requirements),
        python_request=row.python_request,
        build_job=row.build_job,
        created_by=row.created_by,
        created_at=row.created_at,
        python_version=row.python_version,
        packages=json.loads(row.packages),
        size_bytes=row.size_bytes,
        problems=json.loads(row.problems),
        checked_at=row.checked_at,
    )


class EnvironmentRegistry:
    """The environments' records; used by the job scheduler (in the web server and in every
    supervisor) and by the environment service."""

    def __init__(self, db: Database, home: Path, clock: Clock = utcnow) -> None:
        self.db = db
        self.root = home / "envs"
        self._clock = clock

    def folder(self, name: str) -> Path:
        return self.root / name

    def system(self) -> Environment:
        with self.db.session() as s:
            row = s.get(EnvironmentRow, SYSTEM)
            stored = _to_env(row) if row is not None else None
        version = ".".join(str(p) for p in sys.version_info[:3])
        base = Environment(
            SYSTEM,
            SYSTEM,
            "ready",
            sys.executable,
            prefix=sys.prefix,
            python_version=version,
            packages=own_packages(),  # this very interpreter: no probe needed
        )
        if stored is None:
            return base
        return replace(
            stored,
            interpreter=sys.executable,
            prefix=sys.prefix,
            status="ready",
            python_version=version,
            packages=base.packages,
        )

    def all(self) -> list[Environment]:
        """Every environment, system first, then by name; builds that ended are settled."""
        self.settle()
        with self.db.session() as s:
            rows = s.scalars(
                select(EnvironmentRow)
                .where(EnvironmentRow.name != SYSTEM)
                .order_by(EnvironmentRow.name)
            )
            found = [self.system()] + [_to_env(r) for r in rows]
            used = {e.name: _last_used(s, e.name) for e in found}
        return [replace(e, last_used=used[e.name]) for e in found]

    def last_used(self, name: str) -> datetime | None:
        """When a job last ran in environment ``name`` (None: never)."""
        with self.db.session() as s:
            return _last_used(s, name)

    def get(self, name: str) -> Environment:
        if name == SYSTEM:
            return self.system()
        self.settle(name)
        with self.db.session() as s:
            row = s.get(EnvironmentRow, name)
            if row is None:
                raise NotFound(f"The environment '{name}' does not exist.")
            return _to_env(row)

    def usable(self, name: str) -> Environment:
        """The environment a job is about to run in; a clear error when it cannot."""
        env = self.get(name)
        if not env.ready:
            raise Conflict(
                f"The environment '{name}' is still being built (job {env.build_job}); "
                "try again when the build has finished."
            )
        return env

    def add(self, row: EnvironmentRow) -> None:
        try:
            with self.db.session() as s:
                s.add(row)
        except IntegrityError as exc:
            raise Conflict(f"An environment named '{row.name}' exists already.") from exc

    def set_build_job(self, name: str, job_id: str) -> Environment:
        """Record the job building ``name``; the record as it is then, building. (Read back
        through ``get``, a build that already failed would be settled away first.)"""
        with self.db.session() as s:
            row = s.get(EnvironmentRow, name)
            if row is None:
                raise NotFound(f"The environment '{name}' does not exist.")
            row.build_job = job_id
            return _to_env(row)

    def remove(self, name: str) -> None:
        """Forget the environment; a venv's folder (always inside ``envs/``) goes too."""
        with self.db.session() as s:
            row = s.get(EnvironmentRow, name)
            if row is None:
                return
            kind = row.kind
            s.delete(row)
        if kind == "venv" and NAME_RE.match(name):
            shutil.rmtree(self.folder(name), ignore_errors=True)

    def record_check(self, env: Environment, result: dict[str, Any], problems: list[str]) -> None:
        values = {
            "python_version": result.get("version", ""),
            "packages": json.dumps(result.get("packages", {})),
            "size_bytes": result.get("size_bytes"),
            "problems": json.dumps(problems),
            "checked_at": self._clock(),
        }
        with self.db.session() as s:
            row = s.get(EnvironmentRow, env.name)
            if row is None and env.kind == SYSTEM:
                row = EnvironmentRow(
                    name=SYSTEM, kind=SYSTEM, status="ready", created_at=self._clock()
                )
                s.add(row)
            if row is None:
                return
            for key, value in values.items():
                setattr(row, key, value)

    def sync_conda(self, found: list[tuple[str, str, str]]) -> None:
        """Make the conda rows match what the tools listed."""
        with self.db.session() as s:
            rows = {r.name: r for r in s.scalars(select(EnvironmentRow))}
            listed = set()
            for name, tool, prefix in found:
                row = rows.get(name)
                if row is not None and row.kind != "conda":
                    continue  # a crispml environment has this name already
                listed.add(name)
                if row is None:
                    s.add(
                        EnvironmentRow(
                            name=name,
                            kind="conda",
                            status="ready",
                            interpreter=str(Path(prefix) / "bin" / "python"),
                            prefix=prefix,
                            tool=tool,
                            created_by="conda",
                            created_at=self._clock(),
                        )
                    )
                elif row.prefix != prefix:  # another environment took the name: start afresh
                    row.tool, row.prefix = tool, prefix
                    row.interpreter = str(Path(prefix) / "bin" / "python")
                    row.python_version, row.packages, row.problems = "", "{}", "[]"
                    row.size_bytes, row.checked_at = None, None
                else:
                    row.tool = tool
            gone = [n for n, r in rows.items() if r.kind == "conda" and n not in listed]
            if gone:
                s.execute(delete(EnvironmentRow).where(EnvironmentRow.name.in_(gone)))

    def settle(self, name: str | None = None) -> None:
        """Finish the records of builds whose job has ended: a successful build (its marker
        written) becomes ready with what it found; any other ending removes the record and the
        folder, so a failed build leaves nothing half-registered."""
        with self.db.session() as s:
            query = select(EnvironmentRow).where(EnvironmentRow.status == "building")
            if name is not None:
                query = query.where(EnvironmentRow.name == name)
            pending = [(r.name, r.build_job, r.created_at) for r in s.scalars(query)]
            if not pending:
                return
            jobs = [j for _, j, _ in pending if j]
            found = select(JobRow.id, JobRow.status).where(JobRow.id.in_(jobs))
            states = {job_id: status for job_id, status in s.execute(found)}
        for env_name, job_id, created in pending:
            if job_id is None:
                if (self._clock() - created).total_seconds() < _UNSUBMITTED_GRACE_S:
                    continue
                state = "lost"
            else:
                state = states.get(job_id, "lost")  # a deleted job counts as ended
            if state in ("queued", "starting", "running"):
                continue
            marker = self.folder(env_name) / MARKER
            if state == "succeeded" and marker.exists():
                self._ready(env_name, json.loads(marker.read_text()))
            else:
                self.remove(env_name)

    def _ready(self, name: str, result: dict[str, Any]) -> None:
        with self.db.session() as s:
            row = s.get(EnvironmentRow, name)
            if row is None or row.status != "building":
                return
            row.status = "ready"
            row.interpreter = str(self.folder(name) / "bin" / "python")
            row.prefix = str(self.folder(name))
            row.python_version = result.get("version", "")
            row.packages = json.dumps(result.get("packages", {}))
            row.size_bytes = result.get("size_bytes")
            problems = unmet(json.loads(row.requirements), result.get("packages", {}), "")
            row.problems = json.dumps(problems)
            row.checked_at = self._clock()


def _last_used(s: Session, name: str) -> datetime | None:
    """One look-up in the index (env, created_at): a grouping over the jobs would read every
    job, and the history grows without bound."""
    return s.scalar(select(func.max(JobRow.created_at)).where(JobRow.env == name))
