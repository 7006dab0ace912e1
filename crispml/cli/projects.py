"""``crispml project``: a user's projects."""

from __future__ import annotations

from typing import Annotated

import typer

from crispml.cli._common import UserOption, open_services

app = typer.Typer(no_args_is_help=True, help="A user's projects.")


@app.command("list")
def project_list(user: UserOption = None) -> None:
    """List a user's projects."""
    with open_services() as services:
        owner = services.resolve_user(user)
        for project in services.projects.list(owner.id):
            typer.echo(f"{project.id:>5}  {project.name}")


@app.command("add")
def project_add(
    name: str,
    goal: Annotated[str, typer.Option(help="What the project should achieve.")] = "",
    success_criteria: Annotated[str, typer.Option(help="How success is measured.")] = "",
    user: UserOption = None,
) -> None:
    """Create a project for a user."""
    from crispml.core.projects import ProjectFields

    with open_services() as services:
        owner = services.resolve_user(user)
        project = services.projects.create(
            owner.id, ProjectFields(name, goal, success_criteria), actor=f"cli:{owner.username}"
        )
        typer.echo(f"Created project {project.id} '{project.name}' for {owner.username}.")
