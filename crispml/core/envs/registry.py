"""Python environments that jobs and model servers run in: the registry and what it knows.

Kinds:

- ``system``: the interpreter crispml itself runs in (always present, never deleted);
- ``venv``: built by crispml under ``<home>/envs/<name>/`` with uv (a build job, see
  crispml.core.envs.build and crispml.core.envs.service);
- ``conda``: existing conda/mamba/micromamba environments, found with ``<tool> env list --json``
  and run with ``<tool> run -p PREFIX --no-capture-output``;
- ``path``: an interpreter an admin registered by its path.

A job's command runs with its environment's interpreter (``python`` as the program means that
interpreter) and with crispml's job-side helpers (``crispml/jobside``, standard library only) on
``PYTHONPATH``, so ``import crispml_job`` works even where crispml is not installed. What an
environment holds is learnt by running ``_crispml_probe.py`` with its own interpreter; the
result is kept in the store for the table and for matching requirements.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

import crispml
from crispml.core.clock import Clock, utcnow
from crispml.core.errors import Conflict, InvalidInput, NotFound
from crispml.store.db import Database
from crispml.store.tables import EnvironmentRow, JobRow

SYSTEM = "system"
KINDS = ("system", "venv", "conda", "path")
JOBSIDE = Path(crispml.__file__).resolve().parent / "jobside"
PROBE_SCRIPT = JOBSIDE / "_crispml_probe.py"
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


@dataclass(frozen=True)
class Interpreter:
    version: str
    path: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


class ProbeFailed(Exception):
    pass


# --- names and requirements -------------------------------------------------------------------


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


def parse_requirements(text: str | Iterable[str]) -> list[str]:
    """Requirement lines (``scikit-learn>=1.5``), one per line; comments and blanks skipped."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    found: list[str] = []
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("-"):
            raise InvalidInput(
                f"Line {number}: options such as '{line.split()[0]}' are not accepted here; "
                "write one requirement per line, e.g. 'scikit-learn>=1.5'."
            )
        try:
            requirement = Requirement(line)
            if requirement.url:
                raise InvalidInput(
                    f"Line {number}: '{line}' points at a URL or a file; list packages from the "
                    "index by name and version instead."
                )
            found.append(str(requirement))
        except InvalidRequirement as exc:
            message = f"Line {number}: '{line}' is not a valid requirement: {exc}"
            raise InvalidInput(message) from exc
    return found


def requirement_name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def unmet(requirements: Iterable[str], packages: dict[str, str], python_version: str) -> list[str]:
    """Each requirement the installed ``packages`` do not satisfy, as a message."""
    problems = []
    marker_env = {"python_version": ".".join(python_version.split(".")[:2])}
    if python_version:
        marker_env["python_full_version"] = python_version
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and python_version and not req.marker.evaluate(marker_env):
            continue
        installed = packages.get(canonicalize_name(req.name))
        if installed is None:
            problems.append(f"{req.name} is not installed")
        elif req.specifier and not req.specifier.contains(installed, prereleases=True):
            problems.append(f"{req.name} {installed} does not satisfy '{text}'")
    return problems


# --- interpreters ------------------------------------------------------------------------------


def _query(path: str) -> Interpreter | None:
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3], sys.executable)"],
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.stdout.split(maxsplit=1)
    if out.returncode != 0 or len(parts) != 2:
        return None
    version, executable = parts[0], parts[1].strip()
    if tuple(int(p) for p in version.split(".")[:2]) < (3, 8):
        return None  # the job-side helpers need 3.8
    return Interpreter(version, executable or path)


@lru_cache(maxsize=8)
def installed_pythons(extra: tuple[str, ...] = ()) -> list[Interpreter]:
    """Python interpreters installed on this machine (3.8 and newer), newest first.

    Looked for: crispml's own, ``extra`` (the ``python_interpreters`` setting), ``python3.X`` on
    PATH, pyenv's versions, and /usr/bin and /usr/local/bin. Nothing is ever downloaded.
    """
    candidates = [sys.executable, *extra]
    candidates += [p for m in range(8, 16) if (p := shutil.which(f"python3.{m}"))]
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv}/versions/*/bin/python3"))
    for folder in ("/usr/bin", "/usr/local/bin"):
        candidates += sorted(glob.glob(f"{folder}/python3.[0-9]*[0-9]"))
    unique = list(dict.fromkeys(candidates))
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = [i for i in pool.map(_query, unique) if i is not None]
    by_key: dict[tuple[str, str], Interpreter] = {}
    for interpreter in found:
        key = (interpreter.version, os.path.realpath(interpreter.path))
        by_key.setdefault(key, interpreter)
    versions: dict[str, Interpreter] = {}
    for interpreter in by_key.values():
        versions.setdefault(interpreter.version, interpreter)  # one per version: the first found
    return sorted(versions.values(), key=lambda i: _version_key(i.version), reverse=True)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def find_python(request: str, extra: tuple[str, ...] = ()) -> Interpreter:
    """The installed interpreter for ``request``: '' (crispml's own version), '3.12', '3.12.1',
    or an absolute path."""
    request = (request or "").strip()
    if request.startswith("/"):
        found = _query(request)
        if found is None:
            raise InvalidInput(f"{request} is not a Python 3.8 (or newer) interpreter that runs.")
        return found
    if not request:
        request = ".".join(str(p) for p in sys.version_info[:3])
    if not re.fullmatch(r"\d\.\d{1,2}(\.\d{1,2})?", request):
        raise InvalidInput(f"'{request}' is not a Python version; write it like 3.12 or 3.12.1.")
    if _version_key(request)[:2] < (3, 8):
        raise InvalidInput(f"Python {request} is too old: environments need 3.8 or newer.")
    installed = installed_pythons(extra)
    for interpreter in installed:
        if interpreter.version == request or interpreter.minor == request:
            return interpreter
    known = ", ".join(i.version for i in installed) or "none"
    raise InvalidInput(
        f"Python {request} is not installed here (crispml never downloads one). Installed: {known}."
    )


@lru_cache(maxsize=1)
def _own_packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return dict(sorted(found.items()))


# --- probing ---------------------------------------------------------------------------------


def probe(env: Environment, dists: Sequence[str] = (), *, size: bool = False) -> dict[str, Any]:
    """Run the probe with the environment's own interpreter; raises ProbeFailed."""
    argv = env.command(["python", str(PROBE_SCRIPT), *(["--size"] if size else []), *dists])
    try:
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env.variables()},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ProbeFailed(f"its interpreter could not be started: {exc}") from exc
    for line in out.stdout.splitlines():
        if line.startswith("CRISPML-PROBE "):
            result: dict[str, Any] = json.loads(line.removeprefix("CRISPML-PROBE "))
            return result
    detail = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
    raise ProbeFailed(f"its interpreter did not run: {detail}")


# --- conda ------------------------------------------------------------------------------------


def _conda_name(prefix: str) -> str:
    stem = re.sub(r"[^a-z0-9._-]+", "-", Path(prefix).name.lower()).strip("-.") or "env"
    return f"conda-{stem}"[:60]


def discover_conda(tools: Sequence[str]) -> list[tuple[str, str, str]] | None:
    """(name, tool, prefix) of every environment the conda-compatible ``tools`` list; None when
    a tool that is installed did not answer (then nothing is changed)."""
    found: list[tuple[str, str, str]] = []
    prefixes: set[str] = set()
    names: set[str] = set()
    for tool in tools:
        path = tool if os.path.isabs(tool) and os.access(tool, os.X_OK) else shutil.which(tool)
        if not path:
            continue
        try:
            out = subprocess.run(
                [path, "env", "list", "--json"],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            listed = json.loads(out.stdout).get("envs", [])
        except (OSError, subprocess.SubprocessError, ValueError, AttributeError):
            return None
        for prefix in listed:
            if not isinstance(prefix, str) or prefix in prefixes or not os.path.isdir(prefix):
                continue
            name, n = _conda_name(prefix), 2
            while name in names:
                name, n = f"{_conda_name(prefix)}-{n}", n + 1
            prefixes.add(prefix)
            names.add(name)
            found.append((name, path, prefix))
    return found


# --- the registry ---------------------------------------------------------------------------


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
            packages=_own_packages(),  # this very interpreter: no probe needed
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
            query = select(JobRow.env, func.max(JobRow.created_at)).group_by(JobRow.env)
            used = {env: when for env, when in s.execute(query)}
        return [replace(e, last_used=used.get(e.name)) for e in found]

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

    def set_build_job(self, name: str, job_id: str) -> None:
        with self.db.session() as s:
            row = s.get(EnvironmentRow, name)
            if row is not None:
                row.build_job = job_id

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
