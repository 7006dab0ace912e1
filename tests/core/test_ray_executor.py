"""The Ray executor against a real local Ray head.

Ray advertises the machine's routable address even when told 127.0.0.1, so the head and the
jobs run inside a private network namespace with only loopback (``unshare --net``, as root):
no traffic leaves this machine. CI installs the ``ray`` extra and runs this test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

INNER = Path(__file__).parents[1] / "ray_inside_netns.py"


@pytest.mark.long
@pytest.mark.timeout(300)
def test_jobs_run_stop_and_keep_their_records_on_a_real_ray_head(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "unshare --net needs root (CI and the dev machines run as root)"
    command = f"ip link set lo up && exec {sys.executable} {INNER} {tmp_path / 'home'}"
    proc = subprocess.run(
        ["unshare", "--net", "bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["executor"] == "ray"
    assert seen["long_running"] == "running"
    assert seen["long_log"] is True
    assert seen["long_final"] == "stopped"
    assert (seen["quick_final"], seen["quick_exit"]) == ("succeeded", 0)
    assert seen["orphan_running"] == "running"
    assert "done on ray" in seen["log_after_head_stop"]  # kept in the store, head gone
    assert seen["history_after_head_restart"] == {
        "on-ray": ["stopped", None],
        "quick": ["succeeded", 0],
        "orphan": ["lost", None],
    }
    assert "no longer knows this job" in seen["orphan_error"]
