"""crispml's version, license text and third-party notices (from the installed packages'
metadata), for the About page and the ``/files/about/...`` route."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

LICENSE = "LICENSE"
NOTICES = "THIRD-PARTY-NOTICES.txt"


def version() -> str:
    try:
        return metadata.version("crispml")
    except metadata.PackageNotFoundError:
        return "unknown"


def license_text() -> str:
    """The license crispml ships with: in its installed metadata, else beside the source."""
    try:
        dist = metadata.distribution("crispml")
        for file in dist.files or []:
            if file.name.upper().startswith("LICENSE"):
                text = Path(str(file.locate())).read_text(encoding="utf-8")
                if text:
                    return text
    except metadata.PackageNotFoundError:
        pass
    source = Path(__file__).resolve().parents[2] / LICENSE
    return source.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    license: str


def _field(meta: metadata.PackageMetadata, key: str) -> str:
    values = meta.get_all(key) or []
    return str(values[0]) if values else ""


def _license_of(meta: metadata.PackageMetadata) -> str:
    expression = _field(meta, "License-Expression")
    if expression:
        return str(expression)
    classifiers = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    if classifiers:
        return "; ".join(classifiers)
    text = _field(meta, "License").strip()
    return text.splitlines()[0][:80] if text else "see the package"


@lru_cache(maxsize=1)
def third_party() -> tuple[Package, ...]:
    """Every other package installed in crispml's environment, with its declared license."""
    found: dict[str, Package] = {}
    for dist in metadata.distributions():
        name = _field(dist.metadata, "Name")
        if not name or name.lower() == "crispml":
            continue
        found[name.lower()] = Package(name, dist.version, _license_of(dist.metadata))
    return tuple(sorted(found.values(), key=lambda p: p.name.lower()))


def notices_text() -> str:
    lines = [
        f"crispml {version()} runs on these third-party packages (name, version, license as",
        "declared in each package's metadata; each package's own files hold its full terms).",
        "",
    ]
    lines += [f"{p.name} {p.version}: {p.license}" for p in third_party()]
    return "\n".join(lines) + "\n"
