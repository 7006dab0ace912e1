"""Existing conda/mamba/micromamba environments, found with ``<tool> env list --json``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path


def _conda_name(prefix: str) -> str:
    stem = re.sub(r"[^a-z0-9._-]+", "-", Path(prefix).name.lower()).strip("-.") or "env"
    return f"conda-{stem}"[:60]


def discover_conda(tools: Sequence[str]) -> list[tuple[str, str, str]] | None:
    """(name, tool, prefix) of every environment the conda-compatible ``tools`` list; None when
    a tool that is installed did not answer (then nothing is changed)."""
    found: list[tuple[str, str, str]] = []
    prefixes: set[str] = set()
    names: set[str] = set()
    for tool in tools:
        path = tool if os.path.isabs(tool) and os.access(tool, os.X_OK) else shutil.which(tool)
        if not path:
            continue
        try:
            out = subprocess.run(
                [path, "env", "list", "--json"],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
            listed = json.loads(out.stdout).get("envs", [])
        except (OSError, subprocess.SubprocessError, ValueError, AttributeError):
            return None
        for prefix in listed:
            if not isinstance(prefix, str) or prefix in prefixes or not os.path.isdir(prefix):
                continue
            name, n = _conda_name(prefix), 2
            while name in names:
                name, n = f"{_conda_name(prefix)}-{n}", n + 1
            prefixes.add(prefix)
            names.add(name)
            found.append((name, path, prefix))
    return found
