"""The ``crispml`` command line. Commands parse input, call the same services as the pages, print.

This module builds the root command; each group of commands has its module beside it, and
``_common`` holds what they share. Commands that act on a user's data take ``--user NAME``
(default: the first admin account). Every command is listed in docs/reference.md;
tests/test_docs.py fails when one is not.
"""

from __future__ import annotations

import typer

from crispml.cli import (
    algorithms,
    apikeys,
    db,
    doctor,
    envs,
    jobs,
    modeling,
    models,
    notebook,
    projects,
    server,
    users,
)
from crispml.cli._common import HomeOption, state

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="crispml: the ML workbench.",
)


@app.callback()
def _root(home: HomeOption = None) -> None:
    state.home = home


# The order here is the order of `crispml --help`.
app.command()(doctor.doctor)
app.command()(server.run)
app.command()(server.serve)
app.command()(modeling.train)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="user")
app.add_typer(projects.app, name="project")
app.add_typer(jobs.app, name="jobs")
app.add_typer(envs.app, name="env")
app.add_typer(algorithms.app, name="algorithms")
app.add_typer(models.app, name="models")
app.add_typer(notebook.app, name="notebook")
app.add_typer(apikeys.app, name="apikey")


def main() -> None:
    app()
