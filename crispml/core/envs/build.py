"""The environment build job:
``python -m crispml.core.envs.build --uv UV --python PY --target DIR -- REQUIREMENT ...``.

Creates a venv at DIR with uv from the interpreter PY, installs the requirements, probes the
result with its own interpreter and writes the marker file last. Everything uv prints goes to
the job's log. On any failure, or a stop (SIGTERM), the partial folder is removed, so the
registry (crispml.core.envs.registry, which settles the build when the job ends) never holds a
half-built environment. Python never comes from a download: ``--no-python-downloads``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from crispml.core.envs.probe import ProbeFailed, probe
from crispml.core.envs.registry import JOBSIDE, MARKER, Environment


class BuildFailed(Exception):
    pass


def _say(message: str) -> None:
    print(f"crispml: {message}", flush=True)


def _run(argv: list[str]) -> None:
    _say("$ " + " ".join(argv))
    code = subprocess.call(argv, stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    if code != 0:
        raise BuildFailed(f"{Path(argv[0]).name} {argv[1]} ended with exit code {code}")


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="crispml.core.envs.build")
    parser.add_argument("--uv", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--target", required=True, type=Path)
    parser.add_argument("--find-links", action="append", default=[])
    parser.add_argument("requirements", nargs="*")
    args = parser.parse_args(argv)
    target: Path = args.target
    if target.exists():
        _say(f"{target} exists already; nothing was built.")
        return 2
    signal.signal(signal.SIGTERM, _stop)
    started = time.monotonic()
    done = False
    try:
        _say(f"building a venv at {target} with {args.python}")
        _run([args.uv, "venv", "--no-config", "--no-python-downloads", "--python", args.python,
              str(target)])  # fmt: skip
        python = target / "bin" / "python"
        if args.requirements:
            _say("installing " + ", ".join(args.requirements))
            links = [arg for link in args.find_links for arg in ("--find-links", link)]
            _run([args.uv, "pip", "install", "--no-config", "--no-python-downloads", *links,
                  "--python", str(python), "--", *args.requirements])  # fmt: skip
        _say("checking the new environment with its own interpreter")
        env = Environment(target.name, "venv", "building", str(python), prefix=str(target))
        result = probe(env, size=True)
        (target / MARKER).write_text(json.dumps({**result, "helpers": str(JOBSIDE)}))
        _say(
            f"ready in {time.monotonic() - started:.1f} s: Python {result['version']}, "
            f"{len(result['packages'])} packages, {result['size_bytes'] / 1e6:.1f} MB"
        )
        done = True
        return 0
    except (BuildFailed, ProbeFailed) as exc:
        _say(f"the build failed: {exc}")
        return 1
    finally:
        if not done:
            shutil.rmtree(target, ignore_errors=True)
            _say("removed the partial environment; nothing was registered")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
