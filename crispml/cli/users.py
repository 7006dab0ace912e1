"""``crispml user``: user accounts, managed with the server's rights."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from crispml.cli._common import open_services

app = typer.Typer(no_args_is_help=True, help="User accounts (runs with the server's rights).")


def _read_password(password_stdin: bool, confirm: bool = True) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


@app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="admin or user.")] = "user",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
) -> None:
    """Create a user account."""
    with open_services() as services:
        password = _read_password(password_stdin)
        user = services.auth.create_user(username, password, role, actor="cli")
        typer.echo(f"Created {user.role} '{user.username}'.")


@app.command("passwd")
def user_passwd(
    username: str,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
) -> None:
    """Set a user's password (ends their sessions)."""
    with open_services() as services:
        services.auth.get_user(username)
        services.auth.set_password(username, _read_password(password_stdin), actor="cli")
        typer.echo(f"Password of '{username}' changed; their sessions have ended.")


@app.command("list")
def user_list() -> None:
    """List user accounts."""
    with open_services() as services:
        typer.echo(f"{'USER':<24} {'ROLE':<6} {'STATE':<9} CREATED")
        for user in services.auth.list_users():
            state = "active" if user.active else "disabled"
            typer.echo(f"{user.username:<24} {user.role:<6} {state:<9} {user.created_at:%Y-%m-%d}")


@app.command("disable")
def user_disable(username: str) -> None:
    """Disable an account and end its sessions."""
    with open_services() as services:
        services.auth.set_active(username, False, actor="cli")
        typer.echo(f"Disabled '{username}'.")


@app.command("enable")
def user_enable(username: str) -> None:
    """Enable a disabled account."""
    with open_services() as services:
        services.auth.set_active(username, True, actor="cli")
        typer.echo(f"Enabled '{username}'.")


@app.command("code")
def user_code(
    username: str,
    allow: Annotated[
        bool, typer.Option("--allow/--deny", help="Allow or deny this user running code.")
    ] = True,
) -> None:
    """Allow a user to run code (job commands, JupyterLab), sandboxed as their own OS account."""
    with open_services() as services:
        services.auth.set_code(username, allow, actor="cli")
        typer.echo(f"{'Allowed' if allow else 'Denied'} '{username}' running code.")


# Its name before running code became one permission: the same command.
app.command("notebook", help="The same as ``crispml user code``.")(user_code)


@app.command("unlock")
def user_unlock(target: str) -> None:
    """Clear a login lock: of an account (NAME) or of a client address (ADDRESS)."""
    with open_services() as services:
        removed = services.auth.unlock(target, actor="cli")
        typer.echo(f"Cleared {removed} lock record(s) for '{target}'.")


@app.command("network")
def user_network(
    username: str,
    allow: Annotated[
        bool, typer.Option("--allow/--deny", help="Allow or deny this user's code the network.")
    ] = True,
) -> None:
    """Let a user's jobs and notebooks reach the network (off: a loopback of their own only)."""
    with open_services() as services:
        services.auth.set_network(username, allow, actor="cli")
        typer.echo(f"{'Allowed' if allow else 'Denied'} '{username}''s code the network.")
