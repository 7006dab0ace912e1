"""Run by an environment's own interpreter: ``python _crispml_probe.py [--size] [DIST ...]``.

Prints one JSON object: the interpreter, its version and prefix, every installed distribution
with its version, whether each named distribution's top-level modules import, whether crispml's
job-side helper imports, and (with --size) the prefix's size on disk. Standard library only;
Python 3.8 and newer.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import sys
import traceback
from importlib import metadata


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _modules(dist: metadata.Distribution) -> list[str]:
    text = dist.read_text("top_level.txt") or ""
    names = [line.strip() for line in text.splitlines() if line.strip() and "/" not in line]
    if not names:
        for path in dist.files or ():
            parts = path.parts
            if len(parts) > 1 and parts[0].isidentifier() and not parts[0].endswith("-info"):
                names.append(parts[0])
            elif len(parts) == 1 and parts[0].endswith(".py"):
                names.append(parts[0][:-3])
    return sorted(set(n for n in names if not n.startswith("_") and n.isidentifier()))[:3]


def _size(root: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def main(argv: list[str]) -> None:
    size = "--size" in argv
    wanted = [_normal(a) for a in argv if a != "--size"]
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            dists.setdefault(_normal(name), dist)
    imports: dict[str, str] = {}
    for name in wanted:
        found = dists.get(name)
        if found is None:
            continue
        for module in _modules(found) or [name.replace("-", "_")]:
            try:
                importlib.import_module(module)
                imports[module] = ""
            except BaseException:  # any failure is a finding to report
                imports[module] = traceback.format_exc(limit=0).strip().splitlines()[-1]
    try:
        import crispml_job  # noqa: F401

        helper = True
    except ImportError:
        helper = False
    result = {
        "executable": sys.executable,
        "version": "%d.%d.%d" % sys.version_info[:3],
        "prefix": sys.prefix,
        "packages": {n: d.version for n, d in sorted(dists.items())},
        "imports": imports,
        "helper": helper,
        "size_bytes": _size(sys.prefix) if size else None,
    }
    sys.stdout.write("CRISPML-PROBE " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
