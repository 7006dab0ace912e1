"""``crispml env``: Python environments for jobs and models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crispml.cli._common import UserOption, open_services
from crispml.cli.jobs import _print_log

app = typer.Typer(no_args_is_help=True, help="Python environments for jobs and models.")


@app.command("list")
def env_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List environments: kind, Python, key packages, size, health, last used."""
    import json

    from crispml.core.text import human_size

    with open_services() as services:
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


@app.command("create")
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

    with open_services() as services:
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


@app.command("check")
def env_check(
    name: str,
    requirement: Annotated[
        list[str] | None,
        typer.Option("--requirement", "-r", help="Also check for this requirement."),
    ] = None,
) -> None:
    """The doctor: start the environment's interpreter and import what it needs."""
    with open_services() as services:
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


@app.command("rm")
def env_rm(name: str, user: UserOption = None) -> None:
    """Delete an environment (admins); refused while a job or model server uses it."""
    with open_services() as services:
        services.environments.delete(services.resolve_user(user), name)
        typer.echo(f"Deleted {name}.")
