"""``crispml notebook``: users' JupyterLab servers (jobs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from crispml.cli._common import UserOption, open_services

if TYPE_CHECKING:
    from crispml.core.auth import User
    from crispml.core.notebook import NotebookState
    from crispml.services import Services


app = typer.Typer(no_args_is_help=True, help="Users' JupyterLab servers (jobs).")


def _notebook_state(services: Services, user: User, wait: float = 0.0) -> NotebookState:
    import time

    state = services.notebooks.state(user)
    deadline = time.monotonic() + wait
    while state.running and state.upstream is None and time.monotonic() < deadline:
        time.sleep(0.3)
        state = services.notebooks.state(user)
    return state


@app.command("start")
def notebook_start(
    user: UserOption = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait until it answers.")] = 90.0,
) -> None:
    """Start a user's JupyterLab (it is reached through the app at /jupyter/<user>/)."""
    with open_services() as services:
        owner = services.resolve_user(user)
        services.notebooks.start(owner)
        state = _notebook_state(services, owner, wait)
        typer.echo(state.message)
        if state.upstream is None:
            raise typer.Exit(1)


@app.command("status")
def notebook_status(user: UserOption = None) -> None:
    """Whether a user's JupyterLab runs, and its job."""
    with open_services() as services:
        typer.echo(services.notebooks.state(services.resolve_user(user)).message)


@app.command("stop")
def notebook_stop(user: UserOption = None) -> None:
    """Stop a user's JupyterLab (its kernels are shut down; files stay)."""
    with open_services() as services:
        owner = services.resolve_user(user)
        typer.echo(services.notebooks.stop(owner).message)
