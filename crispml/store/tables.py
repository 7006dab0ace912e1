"""SQLAlchemy tables. Rows stay inside the store layer: services convert them to entities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    # May run code (job commands, JupyterLab), sandboxed as its own OS identity; admins may.
    code: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The user's sandboxed processes may reach the network (off: loopback of their own only).
    network: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginSessionRow(Base):
    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")


class HealthRow(Base):
    """One row that /healthz writes, so a database that cannot be written shows as unhealthy."""

    __tablename__ = "health"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checked_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class LoginThrottleRow(Base):
    """Failed logins, so lockout survives restarts and is shared by replicas. One row per account
    (address '*'), per client address (username '*') and per account and address together."""

    __tablename__ = "login_throttle"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True, server_default="*")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ProjectRow(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="uq_projects_owner_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    goal: Mapped[str] = mapped_column(Text, default="")
    success_criteria: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEventRow(Base):
    """Who did what, when: logins, account changes, and (later) file actions."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_actor_id", "actor", "id"),  # one user's events, newest first
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(1024), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class WorkspaceRow(Base):
    """One per user: the revision counter every autosave bumps, and which tab wrote last."""

    __tablename__ = "workspaces"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    revision: Mapped[int] = mapped_column(Integer, default=0)
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    writer: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkspaceValueRow(Base):
    """One workspace value (a JSON document) per user, scope and key.

    Scope "" holds user-level values (current page, current project); "p<id>" a project's values.
    One row per key lets two tabs that change different values merge instead of overwriting.
    """

    __tablename__ = "workspace_values"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SavedWorkRow(Base):
    __tablename__ = "saved_work"
    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="uq_saved_work_owner_name"),
        # The list's order (last changed first), for everyone's and for one owner's.
        Index("ix_saved_work_updated_id", "updated_at", "id"),
        Index("ix_saved_work_owner_updated_id", "owner_id", "updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), nullable=True
    )
    project_name: Mapped[str] = mapped_column(String(120), default="")
    document: Mapped[str] = mapped_column(Text)  # JSON: schema, page, values, refs
    holds: Mapped[str] = mapped_column(String(200), default="", server_default="")  # in words
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobRow(Base):
    """A job: a separate OS process, its supervisor, and its outcome."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status", "status"),
        # The history's order (newest first, then id), for everyone's and for one owner's.
        Index("ix_jobs_created_id", "created_at", "id"),
        Index("ix_jobs_owner_created_id", "owner_id", "created_at", "id"),
        Index("ix_jobs_env_created", "env", "created_at"),  # an environment's last use
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    argv: Mapped[str] = mapped_column(Text)  # JSON list: never a shell string
    env: Mapped[str] = mapped_column(String(100), default="system")
    stdin: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of lines
    # JSON list of [path, "ro" | "rw"]: what the job's sandbox mounts besides the usual (the
    # dataset versions and models it was given, read-only; a notebook's folder, read-write).
    mounts: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    workdir: Mapped[str] = mapped_column(String(1024))
    executor: Mapped[str] = mapped_column(String(16), default="local")
    status: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    signal: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_started: Mapped[float | None] = mapped_column(nullable=True)  # for pid-reuse checks
    supervisor_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    supervisor_started: Mapped[float | None] = mapped_column(nullable=True)
    stop_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class EnvironmentRow(Base):
    """A Python environment jobs and model servers run in (see crispml.core.envs.registry)."""

    __tablename__ = "environments"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # system, venv, conda, path
    status: Mapped[str] = mapped_column(String(16))  # building, ready
    interpreter: Mapped[str] = mapped_column(String(1024), default="")
    prefix: Mapped[str] = mapped_column(String(1024), default="")
    tool: Mapped[str] = mapped_column(String(1024), default="")  # conda, mamba or micromamba
    python_request: Mapped[str] = mapped_column(String(64), default="")
    requirements: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of lines
    build_job: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # What the last health check found (crispml.core.envs.probe), for the table and matching.
    python_version: Mapped[str] = mapped_column(String(32), default="")
    packages: Mapped[str] = mapped_column(Text, default="{}")  # JSON: name -> version
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    problems: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of messages
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DatasetRow(Base):
    """A dataset of a project: an immutable copy under <home>/datasets/<id>/ (raw or prepared)."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        Index("ix_datasets_owner_project", "owner_id", "project_id"),
        # A project's datasets of one role, newest first.
        Index("ix_datasets_owner_project_role", "owner_id", "project_id", "role", "created_at"),
        Index("ix_datasets_parent", "parent_id", "created_at"),  # a dataset's prepared versions
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))  # table or images
    role: Mapped[str] = mapped_column(String(16), default="raw")  # raw or prepared
    source: Mapped[str] = mapped_column(String(1024))  # sample:iris, ~alice/data.csv, prepared:<id>
    format: Mapped[str] = mapped_column(String(16))
    schema: Mapped[str] = mapped_column(Text, default="[]")  # JSON: name, dtype, kind
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[str] = mapped_column(String(64))  # content digest
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), nullable=True
    )
    recipe: Mapped[str] = mapped_column(Text, default="{}")  # JSON, prepared versions
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON: target, task, classes, ...
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunRow(Base):
    """A training run: its job (same id), what it trained on and with, and its outcome."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_owner_project", "owner_id", "project_id", "created_at"),
        # A project's runs of one status (the succeeded ones, the active ones), newest first.
        Index("ix_runs_owner_project_status", "owner_id", "project_id", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the job's id
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    algorithm: Mapped[str] = mapped_column(String(100))
    task: Mapped[str] = mapped_column(String(32))
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    env: Mapped[str] = mapped_column(String(100))
    dataset_id: Mapped[str] = mapped_column(String(32))
    dataset_name: Mapped[str] = mapped_column(String(120))
    dataset_version: Mapped[str] = mapped_column(String(64))
    sweep: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[str] = mapped_column(Text, default="{}")  # JSON: final metrics
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON: confusion matrix, ...
    error: Mapped[str] = mapped_column(Text, default="")
    duration_s: Mapped[float | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ModelRow(Base):
    """A registered model version: a copy of a run's artifacts and what produced them."""

    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index("ix_models_owner_name", "owner_id", "name"),  # one owner's model names
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String(32))
    algorithm: Mapped[str] = mapped_column(String(100))
    task: Mapped[str] = mapped_column(String(32))
    env: Mapped[str] = mapped_column(String(100))
    params: Mapped[str] = mapped_column(Text, default="{}")
    metrics: Mapped[str] = mapped_column(Text, default="{}")
    info: Mapped[str] = mapped_column(Text, default="{}")  # classes, target, features, dataset
    path: Mapped[str] = mapped_column(String(1024))
    stage: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKeyRow(Base):
    """A model API key: only its SHA-256 is kept (the key is 256 random bits, shown once)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)  # the visible part, for lookup
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64))
    models: Mapped[str] = mapped_column(Text, default="[]")  # model names; [] means all
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeploymentRow(Base):
    """A model version served by the model API, with its request counts."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    public: Mapped[bool] = mapped_column(default=False, server_default=false())
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    last_request_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
