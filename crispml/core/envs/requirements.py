"""Requirement lines (``scikit-learn>=1.5``): parsing them, and matching them against what an
environment has installed (``packaging``)."""

from __future__ import annotations

from collections.abc import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from crispml.core.errors import InvalidInput


def parse_requirements(text: str | Iterable[str]) -> list[str]:
    """Requirement lines (``scikit-learn>=1.5``), one per line; comments and blanks skipped."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    found: list[str] = []
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("-"):
            raise InvalidInput(
                f"Line {number}: options such as '{line.split()[0]}' are not accepted here; "
                "write one requirement per line, e.g. 'scikit-learn>=1.5'."
            )
        try:
            requirement = Requirement(line)
            if requirement.url:
                raise InvalidInput(
                    f"Line {number}: '{line}' points at a URL or a file; list packages from the "
                    "index by name and version instead."
                )
            found.append(str(requirement))
        except InvalidRequirement as exc:
            message = f"Line {number}: '{line}' is not a valid requirement: {exc}"
            raise InvalidInput(message) from exc
    return found


def requirement_name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def unmet(requirements: Iterable[str], packages: dict[str, str], python_version: str) -> list[str]:
    """Each requirement the installed ``packages`` do not satisfy, as a message."""
    problems = []
    marker_env = {"python_version": ".".join(python_version.split(".")[:2])}
    if python_version:
        marker_env["python_full_version"] = python_version
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and python_version and not req.marker.evaluate(marker_env):
            continue
        installed = packages.get(canonicalize_name(req.name))
        if installed is None:
            problems.append(f"{req.name} is not installed")
        elif req.specifier and not req.specifier.contains(installed, prereleases=True):
            problems.append(f"{req.name} {installed} does not satisfy '{text}'")
    return problems
