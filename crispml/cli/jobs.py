"""``crispml jobs``: background jobs, through the same service as the pages."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from crispml.cli._common import UserOption, open_services

if TYPE_CHECKING:
    from crispml.core.jobs import Job
    from crispml.services import Services


app = typer.Typer(no_args_is_help=True, help="Background jobs (the same service as the pages).")


def _job_line(job: Job) -> str:
    outcome = job.signal or (str(job.exit_code) if job.exit_code is not None else "")
    return f"{job.id}  {job.status:<9} {outcome:<8} {job.owner:<12} {job.name}"


@app.command("submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def jobs_submit(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name for the table.")] = "",
    env: Annotated[str, typer.Option(help="The Python environment to run in.")] = "system",
    user: UserOption = None,
) -> None:
    """Run a command as a job: crispml jobs submit [--name N] -- COMMAND ARGS... (prints its id)."""
    from crispml.core.jobs import JobSpec

    argv = [a for a in ctx.args if a != "--"]
    with open_services() as services:
        owner = services.resolve_user(user)
        job = services.jobs.submit(owner.id, owner.username, JobSpec(argv, name, "script", env))
        typer.echo(job.id)


@app.command("list")
def jobs_list(
    all_users: Annotated[bool, typer.Option("--all", help="Everyone's (admins).")] = False,
    user: UserOption = None,
) -> None:
    """List jobs, newest first."""
    with open_services() as services:
        owner = services.resolve_user(user)
        jobs = services.jobs.history(None if all_users and owner.is_admin else owner.id, limit=200)
        typer.echo(f"{'ID':<12}  {'STATUS':<9} {'CODE':<8} {'OWNER':<12} NAME")
        for job in jobs:
            typer.echo(_job_line(job))


@app.command("status")
def jobs_status(job_id: str, user: UserOption = None) -> None:
    """Show one job."""
    with open_services() as services:
        owner = services.resolve_user(user)
        job = services.jobs.get(owner.id, job_id, admin=owner.is_admin)
        typer.echo(_job_line(job))
        typer.echo(f"command: {job.argv}")
        if job.error:
            typer.echo(f"error:   {job.error}")


@app.command("logs")
def jobs_logs(
    job_id: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output.")
    ] = False,
    user: UserOption = None,
) -> None:
    """Print a job's output (stdout and stderr, in order)."""
    with open_services() as services:
        owner = services.resolve_user(user)
        services.jobs.get(owner.id, job_id, admin=owner.is_admin)
        _print_log(services, job_id, follow=follow)


def _print_log(services: Services, job_id: str, *, follow: bool) -> Job:
    """Print the job's log; with ``follow``, until the job has ended. Returns the job."""
    import time

    from crispml.core.tracking.reading import FileTail

    log = FileTail(services.jobs.log_path(services.jobs.get(0, job_id, admin=True)))
    while True:
        # The status first: once it says ended, the log read after it is complete.
        job = services.jobs.get(0, job_id, admin=True)
        while True:
            sys.stdout.write(log.appended().decode("utf-8", "replace"))
            if not log.behind:  # a backlog is read in steps
                break
        sys.stdout.flush()
        if not follow or job.finished:
            return job
        time.sleep(0.5)


@app.command("stop")
def jobs_stop(job_id: str, user: UserOption = None) -> None:
    """Stop a job (SIGTERM to its process group, SIGKILL after the grace period)."""
    with open_services() as services:
        owner = services.resolve_user(user)
        job = services.jobs.stop(owner.id, job_id, admin=owner.is_admin, actor=owner.username)
        typer.echo(f"Stopping {job.id} ({job.status}).")
