"""The ``crispml`` command line. Commands parse input, call the same services as the pages, print.

Commands that act on a user's data take ``--user NAME`` (default: the first admin account).
Every command is listed in docs/reference.md; tests/test_docs.py fails when one is not.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from crispml.core.errors import CrispmlError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="crispml: the ML workbench.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
user_app = typer.Typer(no_args_is_help=True, help="User accounts (runs with the server's rights).")
project_app = typer.Typer(no_args_is_help=True, help="A user's projects.")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(project_app, name="project")
jobs_app = typer.Typer(
    no_args_is_help=True, help="Background jobs (the same service as the pages)."
)
app.add_typer(jobs_app, name="jobs")
env_app = typer.Typer(no_args_is_help=True, help="Python environments for jobs and models.")
app.add_typer(env_app, name="env")
algorithms_app = typer.Typer(no_args_is_help=True, help="Installed algorithms (plugins).")
app.add_typer(algorithms_app, name="algorithms")
models_app = typer.Typer(no_args_is_help=True, help="The model registry.")
app.add_typer(models_app, name="models")
notebook_app = typer.Typer(no_args_is_help=True, help="Users' JupyterLab servers (jobs).")
app.add_typer(notebook_app, name="notebook")
apikey_app = typer.Typer(no_args_is_help=True, help="API keys for the model API.")
app.add_typer(apikey_app, name="apikey")

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="CRISPML_HOME for this command.", show_default=False)
]
UserOption = Annotated[
    str | None, typer.Option("--user", help="Act for this user (default: the first admin).")
]


class State:
    home: Path | None = None


_state = State()


@app.callback()
def _root(home: HomeOption = None) -> None:
    _state.home = home


def _settings(**overrides: Any) -> Any:
    """Settings from file, environment and flags; a bad value is reported, not a traceback."""
    from pydantic import ValidationError

    from crispml.settings import load_settings

    try:
        return load_settings(home=_state.home, **overrides)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            typer.secho(f"Error: setting '{where}': {error['msg']}", fg="red", err=True)
        raise typer.Exit(2) from None


@contextmanager
def _services(migrate: bool = True, **overrides: Any) -> Iterator[Any]:
    """Services for one command, with readable errors instead of tracebacks."""
    from sqlalchemy.exc import SQLAlchemyError

    from crispml.services import build_services
    from crispml.store import migrate as migrations
    from crispml.store.db import describe_fault

    settings = _settings(**overrides)
    try:
        services = build_services(settings)
        if migrate:
            migrations.upgrade(services.db)
        yield services
    except CrispmlError as exc:
        typer.secho(f"Error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:  # outside a session (the migrations): still in words
        url = settings.resolved_database_url
        typer.secho(f"Error: {describe_fault(exc, url)}", fg="red", err=True)
        raise typer.Exit(1) from None


def _read_password(password_stdin: bool, confirm: bool = True) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


# doctor ------------------------------------------------------------------------------------------


@app.command()
def doctor() -> None:
    """What this machine offers the sandbox users' code runs in; exit 1 when it has none."""
    from crispml.core.sandbox import JobLimits, bwrap_path

    with _services() as services:
        capability = services.jobs.runtime.capability()
        settings = services.jobs.runtime.sandbox
    typer.echo(f"bubblewrap: {bwrap_path() or 'not installed (apt-get install bubblewrap)'}")
    typer.echo(f"sandbox:    {capability.kind}: {capability.message}")
    limits = JobLimits("doctor", settings.memory_mb, settings.processes)
    limits.remove()
    typer.echo(
        f"limits:     {limits.kind}: {settings.memory_mb} MiB of memory and "
        f"{settings.processes} processes per job"
    )
    if not capability.available:
        raise typer.Exit(1)


# run ---------------------------------------------------------------------------------------------


@app.command()
def run(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8501).")] = None,
) -> None:
    """Start the web app: login, the Streamlit workbench and the API on one port."""
    from crispml.app import create_app, streamlit_config

    settings = _settings(host=host, port=port)
    if settings.exposed_without_tls:
        typer.secho(
            f"WARNING: binding to {settings.host} without TLS. Passwords and session cookies "
            "would cross the network in clear text. Put crispml behind an HTTPS reverse proxy "
            "or set ssl_certfile and ssl_keyfile.",
            fg="yellow",
            err=True,
        )
    # Streamlit signs its own cookies (XSRF for uploads); derive its key from ours so they stay
    # valid across restarts. It is a "sensitive" option, settable only through the environment.
    os.environ.setdefault(
        "STREAMLIT_SERVER_COOKIE_SECRET",
        hashlib.sha256(b"streamlit:" + settings.load_secret_key()).hexdigest(),
    )
    scheme = "https" if settings.uses_tls else "http"
    typer.echo(f"crispml: serving on {scheme}://{settings.host}:{settings.port}", err=True)
    create_app(settings).run(config=streamlit_config(settings))


@app.command()
def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="A registered model to serve, NAME or NAME:VERSION (repeatable). "
            "Default: the deployed versions, followed as they are deployed and undeployed."
        ),
    ] = None,
    public: Annotated[
        bool, typer.Option(help="Serve without API keys: anyone who reaches the port may predict.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Bind address (setting api_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (setting api_port, 8503).")] = None,
    database_url_file: Annotated[
        Path | None,
        typer.Option(help="Read the database URL from this file (not from argv).", hidden=True),
    ] = None,
) -> None:
    """Serve registered models over REST (the article's /models, /configs, /base64, /predict
    and MLflow's /invocations), behind API keys."""
    import uvicorn

    from crispml.serving.app import create_api, limit_malloc_arenas, model_api, server_options

    limit_malloc_arenas()
    overrides: dict[str, Any] = {}
    if database_url_file is not None and database_url_file.read_text().strip():
        overrides["database_url"] = database_url_file.read_text().strip()
    with _services(**overrides) as services:
        settings = services.settings
        host = host or settings.api_host
        port = port or settings.api_port
        api = model_api(services, model or [], public=public)
        api.refresh()  # an unknown --model is an error now, not at the first request
        if public:
            typer.secho(
                "WARNING: --public: no API key is needed; anyone who reaches "
                f"{host}:{port} may use the models.",
                fg="yellow",
                err=True,
            )
        typer.echo(f"crispml: model API on http://{host}:{port} (docs at /docs)", err=True)
        uvicorn.run(
            create_api(api), host=host, port=port, log_level=settings.log_level, **server_options()
        )


# apikey ------------------------------------------------------------------------------------------


@apikey_app.command("create")
def apikey_create(
    name: str,
    model: Annotated[
        list[str] | None,
        typer.Option(help="Limit the key to this model (repeatable). Default: every model."),
    ] = None,
    user: UserOption = None,
) -> None:
    """Create an API key; it is printed this once and only its hash is kept."""
    with _services() as services:
        owner = services.resolve_user(user)
        key, plain = services.apikeys.create(owner, name, model or [])
        typer.echo(plain)
        scope = ", ".join(key.models) or "every model"
        typer.echo(
            f"Key {key.key_id} ('{key.name}', {scope}): store it now; it is not shown again.",
            err=True,
        )


@apikey_app.command("list")
def apikey_list(user: UserOption = None) -> None:
    """A user's API keys (admins: everyone's): id, name, models, created, last used, state."""
    with _services() as services:
        for key in services.apikeys.all(services.resolve_user(user)):
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            state = "active" if key.active else "revoked"
            scope = ",".join(key.models) or "*"
            created = f"{key.created_at:%Y-%m-%d}"
            typer.echo(f"{key.key_id}  {key.name:<24} {scope:<20} {created}  {used:<16} {state}")


@apikey_app.command("revoke")
def apikey_revoke(key_id: str, user: UserOption = None) -> None:
    """Revoke an API key at once."""
    with _services() as services:
        services.apikeys.revoke(services.resolve_user(user), key_id)
        typer.echo(f"Revoked {key_id}.")


# db ----------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (also done at every start)."""
    from crispml.store import migrate

    with _services(migrate=False) as services:
        migrate.upgrade(services.db)
        typer.echo(f"Database at revision {migrate.current_revision(services.db)}.")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the newest one this version knows."""
    from crispml.store import migrate

    with _services(migrate=False) as services:
        typer.echo(f"current: {migrate.current_revision(services.db)}")
        typer.echo(f"head:    {migrate.head_revision()}")


# user --------------------------------------------------------------------------------------------


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="admin or user.")] = "user",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
) -> None:
    """Create a user account."""
    with _services() as services:
        password = _read_password(password_stdin)
        user = services.auth.create_user(username, password, role, actor="cli")
        typer.echo(f"Created {user.role} '{user.username}'.")


@user_app.command("passwd")
def user_passwd(
    username: str,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
) -> None:
    """Set a user's password (ends their sessions)."""
    with _services() as services:
        services.auth.get_user(username)
        services.auth.set_password(username, _read_password(password_stdin), actor="cli")
        typer.echo(f"Password of '{username}' changed; their sessions have ended.")


@user_app.command("list")
def user_list() -> None:
    """List user accounts."""
    with _services() as services:
        typer.echo(f"{'USER':<24} {'ROLE':<6} {'STATE':<9} CREATED")
        for user in services.auth.list_users():
            state = "active" if user.active else "disabled"
            typer.echo(f"{user.username:<24} {user.role:<6} {state:<9} {user.created_at:%Y-%m-%d}")


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable an account and end its sessions."""
    with _services() as services:
        services.auth.set_active(username, False, actor="cli")
        typer.echo(f"Disabled '{username}'.")


@user_app.command("enable")
def user_enable(username: str) -> None:
    """Enable a disabled account."""
    with _services() as services:
        services.auth.set_active(username, True, actor="cli")
        typer.echo(f"Enabled '{username}'.")


@user_app.command("code")
def user_code(
    username: str,
    allow: Annotated[
        bool, typer.Option("--allow/--deny", help="Allow or deny this user running code.")
    ] = True,
) -> None:
    """Allow a user to run code (job commands, JupyterLab), sandboxed as their own OS account."""
    with _services() as services:
        services.auth.set_code(username, allow, actor="cli")
        typer.echo(f"{'Allowed' if allow else 'Denied'} '{username}' running code.")


@user_app.command("notebook")
def user_notebook(
    username: str,
    allow: Annotated[
        bool, typer.Option("--allow/--deny", help="Allow or deny this user running code.")
    ] = True,
) -> None:
    """The same as ``crispml user code`` (its name before code running was one permission)."""
    user_code(username, allow)


@user_app.command("unlock")
def user_unlock(target: str) -> None:
    """Clear a login lock: of an account (NAME) or of a client address (ADDRESS)."""
    with _services() as services:
        removed = services.auth.unlock(target, actor="cli")
        typer.echo(f"Cleared {removed} lock record(s) for '{target}'.")


@user_app.command("network")
def user_network(
    username: str,
    allow: Annotated[
        bool, typer.Option("--allow/--deny", help="Allow or deny this user's code the network.")
    ] = True,
) -> None:
    """Let a user's jobs and notebooks reach the network (off: a loopback of their own only)."""
    with _services() as services:
        services.auth.set_network(username, allow, actor="cli")
        typer.echo(f"{'Allowed' if allow else 'Denied'} '{username}''s code the network.")


# notebook ----------------------------------------------------------------------------------------


def _notebook_state(services: Any, user: Any, wait: float = 0.0) -> Any:
    import time

    state = services.notebooks.state(user)
    deadline = time.monotonic() + wait
    while state.running and state.upstream is None and time.monotonic() < deadline:
        time.sleep(0.3)
        state = services.notebooks.state(user)
    return state


@notebook_app.command("start")
def notebook_start(
    user: UserOption = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait until it answers.")] = 90.0,
) -> None:
    """Start a user's JupyterLab (it is reached through the app at /jupyter/<user>/)."""
    with _services() as services:
        owner = services.resolve_user(user)
        services.notebooks.start(owner)
        state = _notebook_state(services, owner, wait)
        typer.echo(state.message)
        if state.upstream is None:
            raise typer.Exit(1)


@notebook_app.command("status")
def notebook_status(user: UserOption = None) -> None:
    """Whether a user's JupyterLab runs, and its job."""
    with _services() as services:
        typer.echo(services.notebooks.state(services.resolve_user(user)).message)


@notebook_app.command("stop")
def notebook_stop(user: UserOption = None) -> None:
    """Stop a user's JupyterLab (its kernels are shut down; files stay)."""
    with _services() as services:
        owner = services.resolve_user(user)
        typer.echo(services.notebooks.stop(owner).message)


# project -----------------------------------------------------------------------------------------


@project_app.command("list")
def project_list(user: UserOption = None) -> None:
    """List a user's projects."""
    with _services() as services:
        owner = services.resolve_user(user)
        for project in services.projects.list(owner.id):
            typer.echo(f"{project.id:>5}  {project.name}")


@project_app.command("add")
def project_add(
    name: str,
    goal: Annotated[str, typer.Option(help="What the project should achieve.")] = "",
    success_criteria: Annotated[str, typer.Option(help="How success is measured.")] = "",
    user: UserOption = None,
) -> None:
    """Create a project for a user."""
    from crispml.core.projects import ProjectFields

    with _services() as services:
        owner = services.resolve_user(user)
        project = services.projects.create(
            owner.id, ProjectFields(name, goal, success_criteria), actor=f"cli:{owner.username}"
        )
        typer.echo(f"Created project {project.id} '{project.name}' for {owner.username}.")


# jobs --------------------------------------------------------------------------------------------


def _job_line(job: Any) -> str:
    outcome = job.signal or (str(job.exit_code) if job.exit_code is not None else "")
    return f"{job.id}  {job.status:<9} {outcome:<8} {job.owner:<12} {job.name}"


@jobs_app.command(
    "submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def jobs_submit(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name for the table.")] = "",
    env: Annotated[str, typer.Option(help="The Python environment to run in.")] = "system",
    user: UserOption = None,
) -> None:
    """Run a command as a job: crispml jobs submit [--name N] -- COMMAND ARGS... (prints its id)."""
    from crispml.core.jobs import JobSpec

    argv = [a for a in ctx.args if a != "--"]
    with _services() as services:
        owner = services.resolve_user(user)
        job = services.jobs.submit(owner.id, owner.username, JobSpec(argv, name, "script", env))
        typer.echo(job.id)


@jobs_app.command("list")
def jobs_list(
    all_users: Annotated[bool, typer.Option("--all", help="Everyone's (admins).")] = False,
    user: UserOption = None,
) -> None:
    """List jobs, newest first."""
    with _services() as services:
        owner = services.resolve_user(user)
        jobs = services.jobs.history(None if all_users and owner.is_admin else owner.id, limit=200)
        typer.echo(f"{'ID':<12}  {'STATUS':<9} {'CODE':<8} {'OWNER':<12} NAME")
        for job in jobs:
            typer.echo(_job_line(job))


@jobs_app.command("status")
def jobs_status(job_id: str, user: UserOption = None) -> None:
    """Show one job."""
    with _services() as services:
        owner = services.resolve_user(user)
        job = services.jobs.get(owner.id, job_id, admin=owner.is_admin)
        typer.echo(_job_line(job))
        typer.echo(f"command: {job.argv}")
        if job.error:
            typer.echo(f"error:   {job.error}")


@jobs_app.command("logs")
def jobs_logs(
    job_id: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output.")
    ] = False,
    user: UserOption = None,
) -> None:
    """Print a job's output (stdout and stderr, in order)."""
    with _services() as services:
        owner = services.resolve_user(user)
        services.jobs.get(owner.id, job_id, admin=owner.is_admin)
        _print_log(services, job_id, follow=follow)


def _print_log(services: Any, job_id: str, *, follow: bool) -> Any:
    """Print the job's log; with ``follow``, until the job has ended. Returns the job."""
    import time

    path = services.jobs.log_path(services.jobs.get(0, job_id, admin=True))
    position = 0
    while True:
        if path.exists():
            with path.open("rb") as f:
                f.seek(position)
                data = f.read()
                position = f.tell()
            sys.stdout.write(data.decode("utf-8", "replace"))
            sys.stdout.flush()
        job = services.jobs.get(0, job_id, admin=True)
        if not follow or (job.finished and (not path.exists() or path.stat().st_size == position)):
            return job
        time.sleep(0.5)


@jobs_app.command("stop")
def jobs_stop(job_id: str, user: UserOption = None) -> None:
    """Stop a job (SIGTERM to its process group, SIGKILL after the grace period)."""
    with _services() as services:
        owner = services.resolve_user(user)
        job = services.jobs.stop(owner.id, job_id, admin=owner.is_admin, actor=owner.username)
        typer.echo(f"Stopping {job.id} ({job.status}).")


# environments ------------------------------------------------------------------------------------


@env_app.command("list")
def env_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List environments: kind, Python, key packages, size, health, last used."""
    import json

    from crispml.core.text import human_size

    with _services() as services:
        envs = services.environments.all(refresh=True)
        if as_json:
            rows = [
                {
                    "name": e.name,
                    "kind": e.kind,
                    "status": e.status,
                    "python": e.python_version,
                    "interpreter": e.interpreter,
                    "packages": e.key_packages(),
                    "size_bytes": e.size_bytes,
                    "healthy": e.healthy,
                    "problems": e.problems,
                    "created": e.created_at.isoformat() if e.created_at else None,
                    "last_used": e.last_used.isoformat() if e.last_used else None,
                }
                for e in envs
            ]
            typer.echo(json.dumps(rows, indent=2))
            return
        typer.echo(f"{'NAME':<20} {'KIND':<7} {'STATUS':<9} {'PYTHON':<8} {'SIZE':>8}  PACKAGES")
        for e in envs:
            packages = ", ".join(f"{n} {v}" for n, v in e.key_packages().items())
            typer.echo(
                f"{e.name:<20} {e.kind:<7} {e.status:<9} {e.python_version:<8} "
                f"{human_size(e.size_bytes):>8}  {packages}"
            )


@env_app.command("create")
def env_create(
    name: str,
    python: Annotated[
        str, typer.Option(help="Python version installed here (3.12) or an interpreter's path.")
    ] = "",
    requirement: Annotated[
        list[str] | None,
        typer.Option("--requirement", "-r", help="A requirement, e.g. scikit-learn>=1.5."),
    ] = None,
    requirements_file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A requirements file, one per line.")
    ] = None,
    interpreter: Annotated[
        str, typer.Option(help="Register this existing interpreter (kind 'path') instead.")
    ] = "",
    wait: Annotated[bool, typer.Option(help="Follow the build's log until it ends.")] = True,
    user: UserOption = None,
) -> None:
    """Build a venv with uv (a job), or register an interpreter with --interpreter (admins)."""
    from crispml.core.errors import InvalidInput

    with _services() as services:
        admin = services.resolve_user(user)
        if interpreter:
            env = services.environments.register_interpreter(admin, name, interpreter)
            verdict = "healthy" if env.healthy else "; ".join(env.problems)
            typer.echo(f"Registered {env.name}: Python {env.python_version} ({verdict}).")
            return
        lines = list(requirement or [])
        if requirements_file is not None:
            try:
                lines += requirements_file.read_text().splitlines()
            except OSError as exc:
                raise InvalidInput(f"{requirements_file}: {exc.strerror or exc}") from exc
        env, job = services.environments.create_venv(admin, name, python, lines)
        typer.echo(f"Building {env.name} as job {job.id}.")
        if not wait:
            return
        try:
            job = _print_log(services, job.id, follow=True)
        except KeyboardInterrupt:
            typer.echo(f"\nThe build goes on as job {job.id}: crispml jobs logs -f {job.id}")
            raise typer.Exit(130) from None
        if job.status != "succeeded":
            typer.secho(
                f"Error: the build of {name} {job.status} ({job.error}); nothing was registered.",
                fg="red",
                err=True,
            )
            raise typer.Exit(1)
        env = services.environments.get(name)
        typer.echo(f"{env.name} is ready: Python {env.python_version}.")


@env_app.command("check")
def env_check(
    name: str,
    requirement: Annotated[
        list[str] | None,
        typer.Option("--requirement", "-r", help="Also check for this requirement."),
    ] = None,
) -> None:
    """The doctor: start the environment's interpreter and import what it needs."""
    with _services() as services:
        check = services.environments.check(name, requirement or [])
        typer.echo(f"{name}: Python {check.python_version} at {check.interpreter}")
        for module, error in check.imports.items():
            typer.echo(f"  import {module}: {error or 'ok'}")
        if check.ok:
            typer.echo("healthy")
            return
        for problem in check.problems:
            typer.secho(f"  problem: {problem}", fg="red")
        raise typer.Exit(1)


@env_app.command("rm")
def env_rm(name: str, user: UserOption = None) -> None:
    """Delete an environment (admins); refused while a job or model server uses it."""
    with _services() as services:
        services.environments.delete(services.resolve_user(user), name)
        typer.echo(f"Deleted {name}.")


# modeling ----------------------------------------------------------------------------------------


def _follow_run(services: Any, owner: Any, run_id: str) -> Any:
    """Print the run's log and its metrics as they come, until it ends."""
    import json
    import time

    folder = services.modeling.run_folder(services.modeling.get(owner.id, run_id))
    offsets = {"output.log": 0, "metrics.jsonl": 0}
    while True:
        run = services.modeling.get(owner.id, run_id)
        for name in offsets:
            path = folder / name
            if not path.exists():
                continue
            with path.open("rb") as f:
                f.seek(offsets[name])
                data = f.read()
            complete = data[: data.rfind(b"\n") + 1]
            offsets[name] += len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                if name == "output.log":
                    typer.echo(line)
                    continue
                record = json.loads(line)
                values = record.get("metrics") or {}
                if values and "step" in record:
                    shown = "  ".join(f"{k}={v:.4g}" for k, v in values.items() if v is not None)
                    typer.echo(f"  step {record['step']}: {shown}")
        if run.finished:
            return run
        time.sleep(0.5)


@app.command()
def train(
    algorithm: Annotated[
        str, typer.Option(help="An installed algorithm (crispml algorithms list).")
    ],
    data: Annotated[
        str, typer.Option(help="A prepared dataset's id or name, a dataset, or sample:NAME.")
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A hyperparameter, key=value.")
    ] = None,
    env: Annotated[str, typer.Option(help="The environment to train in.")] = "system",
    project: Annotated[str | None, typer.Option(help="Project name (default: the latest).")] = None,
    register: Annotated[
        str | None, typer.Option(help="Register the model under this name if it succeeds.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed handed to the algorithm.")] = 0,
    user: UserOption = None,
) -> None:
    """Train as the Modeling page does: one run (a job), followed until it ends."""
    from crispml.core.errors import InvalidInput

    params = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise_cli(f"--param {item!r}: write it as key=value.")
        params[key.strip()] = value.strip()
    with _services() as services:
        owner = services.resolve_user(user)
        chosen = services.projects.resolve(owner, project)
        dataset = services.modeling.resolve_data(owner, chosen.id, data)
        if register is not None and not register:
            raise InvalidInput("--register needs a model name.")
        run = services.modeling.start(owner, dataset.id, algorithm, params, env, seed=seed)
        typer.echo(f"Run {run.id}: {algorithm} on '{dataset.name}' in {env}; following it.")
        try:
            run = _follow_run(services, owner, run.id)
        except KeyboardInterrupt:
            typer.echo(f"\nThe run goes on as job {run.id}: crispml jobs logs -f {run.id}")
            raise typer.Exit(130) from None
        if run.status != "succeeded":
            typer.secho(f"Error: run {run.id} {run.status}: {run.error}", fg="red", err=True)
            raise typer.Exit(1)
        typer.echo(f"Run {run.id} succeeded in {run.duration_s or 0:.1f} s.")
        for name, value in sorted(run.metrics.items()):
            typer.echo(
                f"  {name:<28} {value:.4f}" if isinstance(value, float) else f"  {name} {value}"
            )
        if register:
            model = services.modeling.register(owner, run.id, register)
            typer.echo(f"Registered {model.name} version {model.version}.")


def raise_cli(message: str) -> None:
    typer.secho(f"Error: {message}", fg="red", err=True)
    raise typer.Exit(2)


@algorithms_app.command("list")
def algorithms_list() -> None:
    """Installed algorithms: name, task, hyperparameters, requirements."""
    from crispml.core.algorithms import AlgorithmRegistry

    registry = AlgorithmRegistry()
    for spec in registry.all():
        typer.echo(f"{spec.name:<32} {spec.task:<15} {spec.title}")
        for p in spec.params:
            bounds = f" [{p.low}, {p.high}]" if p.low is not None else ""
            choices = f" {{{', '.join(p.choices)}}}" if p.choices else ""
            typer.echo(f"    {p.name}={p.default} ({p.kind}{bounds}{choices}) {p.help}")
        typer.echo(f"    requires: {', '.join(spec.requirements) or 'nothing'}")
    for problem in registry.problems:
        typer.secho(f"warning: {problem}", fg="yellow", err=True)


@models_app.command("list")
def models_list() -> None:
    """Registered models, every version: name, version, stage, deployment, algorithm, run."""
    with _services() as services:
        deployed = {d.weight: d for d in services.deployments.all()}
        typer.echo(
            f"{'NAME':<24} {'VERSION':>7}  {'STAGE':<11} {'DEPLOYED':<9} {'ALGORITHM':<30} RUN"
        )
        for m in services.modeling.models():
            found = deployed.get(f"{m.name}:{m.version}")
            state = "" if found is None else ("public" if found.public else "yes")
            typer.echo(
                f"{m.name:<24} {m.version:>7}  {m.stage:<11} {state:<9} {m.algorithm:<30} "
                f"{m.run_id}"
            )


@models_app.command("deploy")
def models_deploy(
    model: Annotated[
        str, typer.Argument(help="NAME or NAME:VERSION (default: production, else newest).")
    ],
    public: Annotated[
        bool,
        typer.Option(help="No API key needed: anyone who reaches the API may use this model."),
    ] = False,
    user: UserOption = None,
) -> None:
    """Deploy a model version: the model API serves it (within seconds, no restart)."""
    from crispml.core.deployments import parse_weight

    with _services() as services:
        name, version = parse_weight(model)
        found = services.deployments.deploy(
            services.resolve_user(user), name, version, public=public
        )
        if public:
            typer.secho(
                f"WARNING: {found.weight} is public: anyone who reaches the API may use it.",
                fg="yellow",
                err=True,
            )
        typer.echo(f"deployed {found.weight}" + (" (public)" if public else ""))


@models_app.command("undeploy")
def models_undeploy(
    model: Annotated[str, typer.Argument(help="NAME:VERSION")],
    user: UserOption = None,
) -> None:
    """Stop serving a model version."""
    from crispml.core.deployments import parse_weight

    with _services() as services:
        name, version = parse_weight(model)
        if version is None:
            version = services.modeling.model(name).version
        services.deployments.undeploy(services.resolve_user(user), name, version)
        typer.echo(f"undeployed {name}:{version}")


@models_app.command("delete")
def models_delete(
    model: Annotated[str, typer.Argument(help="NAME:VERSION")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    user: UserOption = None,
) -> None:
    """Delete a model version and its files (its owner or an admin); refused while deployed."""
    from crispml.core.deployments import parse_weight

    with _services() as services:
        name, version = parse_weight(model)
        if version is None:
            raise_cli(f"'{model}': give the version to delete, as NAME:VERSION.")
            return
        found = services.modeling.model(name, version)
        if not yes and not typer.confirm(
            f"Delete {name}:{version} ({found.algorithm}, run {found.run_id}) and its files?"
        ):
            raise typer.Exit(1)
        services.modeling.delete_version(services.resolve_user(user), name, version)
        typer.echo(f"deleted {name}:{version}")


@models_app.command("show")
def models_show(
    name: str,
    version: Annotated[int | None, typer.Option(help="Default: production, else newest.")] = None,
) -> None:
    """One model version: algorithm, parameters, metrics, classes, environment, artifacts."""
    import json

    with _services() as services:
        m = services.modeling.model(name, version)
        typer.echo(
            json.dumps(
                {
                    "name": m.name,
                    "version": m.version,
                    "stage": m.stage,
                    "algorithm": m.algorithm,
                    "task": m.task,
                    "environment": m.env,
                    "run": m.run_id,
                    "params": m.params,
                    "metrics": m.metrics,
                    "classes": m.info.get("classes", []),
                    "dataset": m.info.get("dataset"),
                    "artifacts": m.path,
                    "created": m.created_at.isoformat(),
                },
                indent=2,
            )
        )


def main() -> None:
    app()
