"""What an environment holds, learnt by running ``_crispml_probe.py`` (job side) with the
environment's own interpreter."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from typing import Any

from crispml.core.envs.registry import JOBSIDE, Environment

PROBE_SCRIPT = JOBSIDE / "_crispml_probe.py"


class ProbeFailed(Exception):
    pass


def probe(env: Environment, dists: Sequence[str] = (), *, size: bool = False) -> dict[str, Any]:
    """Run the probe with the environment's own interpreter; raises ProbeFailed."""
    argv = env.command(["python", str(PROBE_SCRIPT), *(["--size"] if size else []), *dists])
    try:
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env.variables()},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ProbeFailed(f"its interpreter could not be started: {exc}") from exc
    for line in out.stdout.splitlines():
        if line.startswith("CRISPML-PROBE "):
            result: dict[str, Any] = json.loads(line.removeprefix("CRISPML-PROBE "))
            return result
    detail = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
    raise ProbeFailed(f"its interpreter did not run: {detail}")
