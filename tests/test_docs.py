"""Docs stay honest: every setting, CLI command and public route is documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from crispml.cli import app
from crispml.settings import Settings
from crispml.web.gate import PUBLIC_PATHS

ROOT = Path(__file__).parents[1]
REFERENCE = (ROOT / "docs" / "reference.md").read_text()


def cli_commands() -> list[str]:
    def walk(command: object, path: list[str]) -> list[str]:
        children = getattr(command, "commands", None)
        if not children:
            return [" ".join(path)]
        return [name for key, child in children.items() for name in walk(child, [*path, key])]

    return walk(typer.main.get_command(app), ["crispml"])


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"| `{name}` | `CRISPML_{name.upper()}` |" in REFERENCE


def test_cli_has_the_expected_commands() -> None:
    assert {"crispml run", "crispml user add", "crispml db upgrade"} <= set(cli_commands())


@pytest.mark.parametrize("command", cli_commands())
def test_every_cli_command_is_documented(command: str) -> None:
    assert f"| `{command}" in REFERENCE


@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS))
def test_every_public_route_is_documented(path: str) -> None:
    assert f" {path}` | public |" in REFERENCE
    assert f"`{path}`" in (ROOT / "docs" / "security.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    commands = [line for line in lines[:6] if line.startswith("./dev ")]
    assert [c.split()[1] for c in commands] == ["start", "test"]
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
