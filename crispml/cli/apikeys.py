"""``crispml apikey``: API keys for the model API."""

from __future__ import annotations

from typing import Annotated

import typer

from crispml.cli._common import UserOption, open_services

app = typer.Typer(no_args_is_help=True, help="API keys for the model API.")


@app.command("create")
def apikey_create(
    name: str,
    model: Annotated[
        list[str] | None,
        typer.Option(help="Limit the key to this model (repeatable). Default: every model."),
    ] = None,
    user: UserOption = None,
) -> None:
    """Create an API key; it is printed this once and only its hash is kept."""
    with open_services() as services:
        owner = services.resolve_user(user)
        key, plain = services.apikeys.create(owner, name, model or [])
        typer.echo(plain)
        scope = ", ".join(key.models) or "every model"
        typer.echo(
            f"Key {key.key_id} ('{key.name}', {scope}): store it now; it is not shown again.",
            err=True,
        )


@app.command("list")
def apikey_list(user: UserOption = None) -> None:
    """A user's API keys (admins: everyone's): id, name, models, created, last used, state."""
    with open_services() as services:
        for key in services.apikeys.all(services.resolve_user(user)):
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            state = "active" if key.active else "revoked"
            scope = ",".join(key.models) or "*"
            created = f"{key.created_at:%Y-%m-%d}"
            typer.echo(f"{key.key_id}  {key.name:<24} {scope:<20} {created}  {used:<16} {state}")


@app.command("revoke")
def apikey_revoke(key_id: str, user: UserOption = None) -> None:
    """Revoke an API key at once."""
    with open_services() as services:
        services.apikeys.revoke(services.resolve_user(user), key_id)
        typer.echo(f"Revoked {key_id}.")
