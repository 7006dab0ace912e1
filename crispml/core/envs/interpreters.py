"""The Python interpreters installed on this machine (3.8 and newer; nothing is ever downloaded),
and the packages of the one crispml itself runs in."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from crispml.core.errors import InvalidInput


@dataclass(frozen=True)
class Interpreter:
    version: str
    path: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def _query(path: str) -> Interpreter | None:
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3], sys.executable)"],
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.stdout.split(maxsplit=1)
    if out.returncode != 0 or len(parts) != 2:
        return None
    version, executable = parts[0], parts[1].strip()
    if tuple(int(p) for p in version.split(".")[:2]) < (3, 8):
        return None  # the job-side helpers need 3.8
    return Interpreter(version, executable or path)


@lru_cache(maxsize=8)
def installed_pythons(extra: tuple[str, ...] = ()) -> list[Interpreter]:
    """Python interpreters installed on this machine (3.8 and newer), newest first.

    Looked for: crispml's own, ``extra`` (the ``python_interpreters`` setting), ``python3.X`` on
    PATH, pyenv's versions, and /usr/bin and /usr/local/bin. Nothing is ever downloaded.
    """
    candidates = [sys.executable, *extra]
    candidates += [p for m in range(8, 16) if (p := shutil.which(f"python3.{m}"))]
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv}/versions/*/bin/python3"))
    for folder in ("/usr/bin", "/usr/local/bin"):
        candidates += sorted(glob.glob(f"{folder}/python3.[0-9]*[0-9]"))
    unique = list(dict.fromkeys(candidates))
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = [i for i in pool.map(_query, unique) if i is not None]
    by_key: dict[tuple[str, str], Interpreter] = {}
    for interpreter in found:
        key = (interpreter.version, os.path.realpath(interpreter.path))
        by_key.setdefault(key, interpreter)
    versions: dict[str, Interpreter] = {}
    for interpreter in by_key.values():
        versions.setdefault(interpreter.version, interpreter)  # one per version: the first found
    return sorted(versions.values(), key=lambda i: _version_key(i.version), reverse=True)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def find_python(request: str, extra: tuple[str, ...] = ()) -> Interpreter:
    """The installed interpreter for ``request``: '' (crispml's own version), '3.12', '3.12.1',
    or an absolute path."""
    request = (request or "").strip()
    if request.startswith("/"):
        found = _query(request)
        if found is None:
            raise InvalidInput(f"{request} is not a Python 3.8 (or newer) interpreter that runs.")
        return found
    if not request:
        request = ".".join(str(p) for p in sys.version_info[:3])
    if not re.fullmatch(r"\d\.\d{1,2}(\.\d{1,2})?", request):
        raise InvalidInput(f"'{request}' is not a Python version; write it like 3.12 or 3.12.1.")
    if _version_key(request)[:2] < (3, 8):
        raise InvalidInput(f"Python {request} is too old: environments need 3.8 or newer.")
    installed = installed_pythons(extra)
    for interpreter in installed:
        if interpreter.version == request or interpreter.minor == request:
            return interpreter
    known = ", ".join(i.version for i in installed) or "none"
    raise InvalidInput(
        f"Python {request} is not installed here (crispml never downloads one). Installed: {known}."
    )


@lru_cache(maxsize=1)
def own_packages() -> dict[str, str]:
    """The distributions installed for crispml's own interpreter (no probe needed)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return dict(sorted(found.items()))
