"""The services the pages, routes and CLI share, built once per process.

``build_services`` wires them; ``bootstrap`` prepares a home folder and database (first start);
``install``/``current`` hand the one instance to Streamlit scripts, which run in the server's
process but are not called by it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from crispml.core.algorithms import AlgorithmRegistry
from crispml.core.apikeys import ApiKeyService
from crispml.core.audit import AuditLog
from crispml.core.auth import AuthPolicy, AuthService, User
from crispml.core.data.service import DatasetService
from crispml.core.deployments import ApiServerService, DeploymentService
from crispml.core.envs.service import EnvironmentService
from crispml.core.errors import Conflict, NotFound
from crispml.core.files.service import FileService, SharedRootConfig
from crispml.core.files.zips import ZipLimits
from crispml.core.jobs import JobRuntime, JobService, Limits
from crispml.core.modeling import ModelingService
from crispml.core.notebook import NotebookService, NotebookSettings
from crispml.core.projects import ProjectFields, ProjectService
from crispml.core.sandbox import SandboxSettings
from crispml.core.saved_work import SavedWorkService
from crispml.core.workspace import WorkspaceService
from crispml.settings import Settings, load_settings
from crispml.store import migrate
from crispml.store.db import Database

log = logging.getLogger("crispml")


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    audit: AuditLog
    auth: AuthService
    projects: ProjectService
    workspace: WorkspaceService
    saved_work: SavedWorkService
    files: FileService
    jobs: JobService
    environments: EnvironmentService
    datasets: DatasetService
    modeling: ModelingService
    notebooks: NotebookService
    apikeys: ApiKeyService
    deployments: DeploymentService
    api_server: ApiServerService
    secret_key: bytes

    def resolve_user(self, username: str | None) -> User:
        """The user a CLI command acts for: ``--user NAME``, else the first admin."""
        if username:
            return self.auth.get_user(username)
        admin = self.auth.first_admin()
        if admin is None:
            raise NotFound("There is no admin account yet: start the app once or add a user.")
        return admin


def build_services(settings: Settings) -> Services:
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    audit = AuditLog(db)
    policy = AuthPolicy(
        session_idle_timeout=settings.session_idle_timeout,
        session_lifetime=settings.session_lifetime,
        lockout_threshold=settings.lockout_threshold,
        lockout_address_threshold=settings.lockout_address_threshold,
        lockout_window=settings.lockout_window,
        lockout_duration=settings.lockout_duration,
        password_min_length=settings.password_min_length,
    )
    projects = ProjectService(db, audit)
    jobs = JobService(
        JobRuntime(
            db,
            settings.home,
            Limits(
                settings.jobs_max_concurrent or (os.cpu_count() or 2),
                settings.jobs_max_per_user,
                settings.jobs_stop_grace,
                settings.services_max_concurrent,
                settings.services_max_per_user,
            ),
            executor_name=settings.jobs_executor,
            executor_env={"CRISPML_RAY_ADDRESS": settings.ray_address},
            sandbox=SandboxSettings(
                settings.sandbox,
                settings.sandbox_uid_base,
                settings.sandbox_uid_count,
                settings.sandbox_memory_mb,
                settings.sandbox_processes,
                settings.sandbox_network,
            ),
            ray_trusted=settings.ray_trusted,
        ),
        audit,
    )
    datasets = DatasetService(
        db, settings.home, jobs, audit, lambda owner, project: projects.exists(owner, str(project))
    )
    projects.on_delete(datasets.forget_project)
    environments = EnvironmentService(
        jobs.runtime.environments,
        jobs,
        audit,
        conda_tools=settings.conda_tools,
        python_interpreters=settings.python_interpreters,
        find_links=settings.env_find_links,
    )
    files = FileService(
        settings.home,
        audit,
        [
            SharedRootConfig(r.name, r.path, r.read_roles, r.write_roles)
            for r in settings.shared_roots
        ],
        ZipLimits(settings.zip_max_entries, settings.zip_max_bytes),
        settings.max_upload_mb * 1_000_000,
    )
    notebooks = NotebookService(
        settings.home,
        jobs,
        environments.all,
        lambda username: files.user_root(username).path,
        NotebookSettings(settings.notebook_idle_timeout, settings.notebook_terminals),
    )
    modeling = ModelingService(
        db, settings.home, jobs, datasets, environments, AlgorithmRegistry(), audit
    )
    return Services(
        settings=settings,
        db=db,
        audit=audit,
        auth=AuthService(db, audit, policy),
        projects=projects,
        workspace=WorkspaceService(db),
        saved_work=SavedWorkService(db, audit, {"project": projects.exists}),
        files=files,
        jobs=jobs,
        environments=environments,
        datasets=datasets,
        modeling=modeling,
        notebooks=notebooks,
        apikeys=ApiKeyService(db, audit),
        deployments=DeploymentService(db, modeling, audit),
        api_server=ApiServerService(
            settings.home, jobs, settings.api_port, settings.api_host, settings.database_url
        ),
        secret_key=settings.load_secret_key(),
    )


DEMO_PROJECT = ProjectFields(
    name="Iris species",
    goal="Tell the three iris species apart from four flower measurements.",
    success_criteria="Accuracy of at least 0.9 on a held-out test set.",
    notes=(
        "A demo project created on first start, with the iris table and the shapes images "
        "ready on Data understanding. Edit or delete it freely."
    ),
)


def bootstrap(services: Services, *, samples: bool = True) -> str | None:
    """Migrate the database and create the first admin when missing, with a demo project
    holding the iris and shapes samples (settings ``seed_demo_project`` and
    ``seed_sample_data``; ``samples=False`` leaves the project empty).

    Returns the admin password when it was generated, so the caller can show it once.
    """
    migrate.upgrade(services.db)
    settings = services.settings
    given = settings.admin_password.get_secret_value() if settings.admin_password else None
    if services.auth.first_admin() is not None:
        return None
    try:
        generated = services.auth.ensure_first_admin(settings.admin_username, given)
    except Conflict:  # another process starting at the same moment created it
        return None
    if settings.seed_demo_project:
        admin = services.auth.get_user(settings.admin_username)
        demo = services.projects.create(admin.id, DEMO_PROJECT, actor="system")
        if samples and settings.seed_sample_data:
            services.datasets.add_sample(admin, demo.id, "shapes")
            services.datasets.add_sample(admin, demo.id, "iris")  # the newest: shown first
    return generated


_current: Services | None = None


def install(services: Services) -> None:
    global _current
    _current = services


def current() -> Services:
    """The installed services; built from the environment's settings if none were installed."""
    global _current
    if _current is None:
        _current = build_services(load_settings())
    return _current
