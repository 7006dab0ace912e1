"""What the commands share: the ``--home`` and ``--user`` options, the settings and services of
one command, and errors in words instead of tracebacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from crispml.core.errors import CrispmlError

if TYPE_CHECKING:
    from crispml.services import Services
    from crispml.settings import Settings

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="CRISPML_HOME for this command.", show_default=False)
]
UserOption = Annotated[
    str | None, typer.Option("--user", help="Act for this user (default: the first admin).")
]


class State:
    """What the root command's options set for the command that follows."""

    home: Path | None = None


state = State()


def cli_settings(**overrides: object) -> Settings:
    """Settings from file, environment and flags; a bad value is reported, not a traceback."""
    from pydantic import ValidationError

    from crispml.settings import load_settings

    try:
        return load_settings(home=state.home, **overrides)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            typer.secho(f"Error: setting '{where}': {error['msg']}", fg="red", err=True)
        raise typer.Exit(2) from None


@contextmanager
def open_services(migrate: bool = True, **overrides: object) -> Iterator[Services]:
    """Services for one command, with readable errors instead of tracebacks."""
    from sqlalchemy.exc import SQLAlchemyError

    from crispml.services import build_services
    from crispml.store import migrate as migrations
    from crispml.store.db import describe_fault

    settings = cli_settings(**overrides)
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


def usage_error(message: str) -> NoReturn:
    """A command line that cannot be right: the message, exit code 2."""
    typer.secho(f"Error: {message}", fg="red", err=True)
    raise typer.Exit(2)
