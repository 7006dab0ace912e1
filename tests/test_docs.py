"""Docs stay honest: every setting, CLI command and public route is documented."""

from __future__ import annotations

import re
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


def _web_routes() -> list[str]:
    import tempfile

    from crispml.app import build_parts
    from crispml.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        parts = build_parts(Settings(home=Path(folder) / "home"))
        parts.services.db.dispose()
    return sorted({getattr(r, "path", "") for r in parts.routes} - {"", "/api"})


def _plain(path: str) -> str:
    """``/files/{root}/{path:path}`` and ``/files/<root>/<path>`` alike: ``/files/*/*``."""
    return re.sub(r"\{[^}]+\}|<[^>]+>|\.\.\.$", "*", path)


@pytest.mark.parametrize("path", _web_routes())
def test_every_web_route_is_documented(path: str) -> None:
    documented = {
        _plain(m)
        for m in re.findall(r"`(?:[A-Z/]+|ANY) (/[^` ]*)`", REFERENCE.split("## HTTP routes")[1])
    }
    assert _plain(path) in documented


def test_the_api_reference_is_generated_from_the_openapi_document() -> None:
    from crispml.serving import reference

    assert (ROOT / "docs" / "api.md").read_text() == reference.markdown(), (
        "docs/api.md is out of date: python -m crispml.serving.reference > docs/api.md"
    )


def test_every_api_route_is_in_the_reference_table() -> None:
    from crispml.serving import reference

    table = REFERENCE.split("## Model API")[1]
    for route in reference.routes():
        assert f"`{route}`" in table, route
