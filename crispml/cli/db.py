"""``crispml db``: the database schema."""

from __future__ import annotations

import typer

from crispml.cli._common import open_services

app = typer.Typer(no_args_is_help=True, help="Database schema.")


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (also done at every start)."""
    from crispml.store import migrate

    with open_services(migrate=False) as services:
        migrate.upgrade(services.db)
        typer.echo(f"Database at revision {migrate.current_revision(services.db)}.")


@app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the newest one this version knows."""
    from crispml.store import migrate

    with open_services(migrate=False) as services:
        typer.echo(f"current: {migrate.current_revision(services.db)}")
        typer.echo(f"head:    {migrate.head_revision()}")
