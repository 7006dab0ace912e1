"""Deployments: which registered model versions the model API serves, and the API server job.

A deployment is one model version, deployed by its model's owner (or an admin), private (an API
key is needed) or public (anyone who reaches the API may predict with it, after a warning). The
model API (``crispml/serving``) serves the deployed versions and picks up deploys and undeploys
within a second or two, without a restart; it adds its request and error counts here.

The API server is a job (kind ``api server``) running ``crispml serve`` on ``api_port``; its
record (port, job id) lives in ``<home>/api/server.json``. The main web app serves the same API
under ``/api/`` whether or not the job runs.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crispml.core import records
from crispml.core.audit import AuditLog
from crispml.core.auth import User
from crispml.core.clock import Clock, utcnow
from crispml.core.errors import Conflict, NotFound, PermissionDenied
from crispml.core.jobs import Job, JobService, JobSpec
from crispml.core.modeling import ModelingService, ModelVersion
from crispml.store.db import Database
from crispml.store.tables import DeploymentRow, ModelRow, UserRow

SERVER_KIND = "api server"


@dataclass(frozen=True)
class Deployment:
    model: ModelVersion
    owner: str
    public: bool
    requests: int
    errors: int
    last_request_at: datetime | None
    created_at: datetime

    @property
    def weight(self) -> str:
        """``name:version``, the article's "weight"."""
        return f"{self.model.name}:{self.model.version}"


def parse_weight(text: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME:VERSION``."""
    name, _, version = text.strip().partition(":")
    if not version:
        return name, None
    try:
        return name, int(version)
    except ValueError:
        raise NotFound(f"'{text}' is not NAME or NAME:VERSION (a version is a number).") from None


class DeploymentService:
    def __init__(
        self, db: Database, modeling: ModelingService, audit: AuditLog, clock: Clock = utcnow
    ) -> None:
        self._db = db
        self._modeling = modeling
        self._audit = audit
        self._clock = clock

    def all(self) -> list[Deployment]:
        """Every deployment, by model name and version (newest first)."""
        with self._db.session() as s:
            rows = s.execute(
                select(DeploymentRow, ModelRow.name, ModelRow.version, UserRow.username)
                .join(ModelRow, ModelRow.id == DeploymentRow.model_id)
                .join(UserRow, UserRow.id == DeploymentRow.owner_id)
                .order_by(ModelRow.name, ModelRow.version.desc())
            ).all()
        return [
            Deployment(
                self._modeling.model(name, version),
                owner,
                bool(row.public),
                int(row.requests),
                int(row.errors),
                row.last_request_at,
                row.created_at,
            )
            for row, name, version, owner in rows
        ]

    def get(self, name: str, version: int) -> Deployment | None:
        return next(
            (d for d in self.all() if (d.model.name, d.model.version) == (name, version)), None
        )

    def _model_row(self, user: User, name: str, version: int | None) -> ModelVersion:
        model = self._modeling.model(name, version)
        if not user.is_admin and model.owner_id != user.id:
            raise PermissionDenied(f"Only the owner of '{name}' or an admin may deploy it.")
        return model

    def deploy(
        self, user: User, name: str, version: int | None = None, *, public: bool = False
    ) -> Deployment:
        """Deploy a version (default: the production one, else the newest). Deploying a
        deployed version only sets its public flag."""
        model = self._model_row(user, name, version)
        with self._db.session() as s:
            model_id, row = _deployment_of(s, model)
            if row is None:
                s.add(
                    DeploymentRow(
                        model_id=model_id,
                        owner_id=user.id,
                        public=public,
                        requests=0,
                        errors=0,
                        created_at=self._clock(),
                    )
                )
                self._audit.add(
                    s,
                    user.username,
                    "model.deploy",
                    f"{model.name}:{model.version}",
                    "public" if public else "private",
                )
            elif bool(row.public) != public:
                row.public = public
                self._audit.add(
                    s,
                    user.username,
                    "model.public" if public else "model.private",
                    f"{model.name}:{model.version}",
                    "",
                )
        found = self.get(model.name, model.version)
        assert found is not None
        return found

    def set_public(self, user: User, name: str, version: int, public: bool) -> Deployment:
        if self.get(name, version) is None:
            raise NotFound(f"{name}:{version} is not deployed.")
        return self.deploy(user, name, version, public=public)

    def undeploy(self, user: User, name: str, version: int) -> None:
        model = self._model_row(user, name, version)
        with self._db.session() as s:
            _, row = _deployment_of(s, model)
            if row is None:
                raise NotFound(f"{name}:{version} is not deployed.")
            s.delete(row)
            self._audit.add(s, user.username, "model.undeploy", f"{name}:{version}", "")

    def record(self, counts: Mapping[str, tuple[int, int]], when: datetime | None = None) -> None:
        """Add request and error counts (``name:version`` -> (requests, errors)); counts of
        versions no longer deployed are dropped."""
        if not counts:
            return
        when = when or self._clock()
        with self._db.session() as s:
            for weight, (requests, errors) in counts.items():
                name, _, version = weight.rpartition(":")
                model_id = select(ModelRow.id).where(
                    ModelRow.name == name, ModelRow.version == int(version)
                )
                s.execute(
                    update(DeploymentRow)
                    .where(DeploymentRow.model_id == model_id.scalar_subquery())
                    .values(
                        requests=DeploymentRow.requests + requests,
                        errors=DeploymentRow.errors + errors,
                        last_request_at=when,
                    )
                )


@dataclass(frozen=True)
class ServerState:
    job: Job | None
    port: int
    answering: bool
    message: str

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.finished


class ApiServerService:
    """The standalone model API server (``crispml serve``) as a job, one per installation."""

    def __init__(
        self,
        home: Path,
        jobs: JobService,
        port: int,
        host: str = "127.0.0.1",
        database_url: str = "",
    ) -> None:
        self._folder = home / "api"
        self._home = home
        self._jobs = jobs
        self.port = port
        self.host = host
        self._database_url = database_url
        self._starting = threading.Lock()

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{shown}:{self.port}"

    def _record(self) -> dict[str, Any] | None:
        return records.read(self._folder / "server.json")

    def _answering(self, port: int) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def state(self) -> ServerState:
        record = self._record()
        if record is None:
            return ServerState(None, self.port, False, "Not started.")
        port = int(record.get("port") or self.port)
        try:
            job = self._jobs.get(0, str(record["job"]), admin=True)
        except (NotFound, KeyError):
            return ServerState(None, port, False, "Not started.")
        if job.finished:
            ended = f"{job.status}" + (f": {job.error}" if job.error else "")
            return ServerState(job, port, False, f"Not running (job {job.id} {ended}).")
        answering = self._answering(port)
        what = "Running" if answering else f"Starting ({job.status})"
        return ServerState(job, port, answering, f"{what} (job {job.id}).")

    def start(self, user: User) -> ServerState:
        with self._starting:
            current = self.state()
            if current.running:
                return current
            argv = [
                "python", "-m", "crispml", "--home", str(self._home), "serve",
                "--host", self.host, "--port", str(self.port), "--database-url-file",
                "database_url",
            ]  # fmt: skip
            spec = JobSpec(
                argv,
                name=f"Model API on port {self.port}",
                kind=SERVER_KIND,
                env="system",
                executor="local",  # it listens on this machine
                # The URL may hold a password: a file in the job's private folder, not argv.
                files={"database_url": self._database_url},
            )
            job = self._jobs.submit(user.id, user.username, spec)
            self._folder.mkdir(parents=True, exist_ok=True)
            records.write(self._folder / "server.json", {"port": self.port, "job": job.id})
            return self.state()

    def stop(self, user: User) -> ServerState:
        current = self.state()
        if current.job is None or current.job.finished:
            raise Conflict("The model API server is not running.")
        self._jobs.stop(user.id, current.job.id, admin=user.is_admin, actor=user.username)
        return self.state()


def _deployment_of(s: Session, model: ModelVersion) -> tuple[int | None, DeploymentRow | None]:
    """The id of a model version's row, and its deployment (None when not deployed)."""
    model_id = s.scalar(
        select(ModelRow.id).where(ModelRow.name == model.name, ModelRow.version == model.version)
    )
    return model_id, s.scalar(select(DeploymentRow).where(DeploymentRow.model_id == model_id))
