"""Crash safety: SIGKILL a process while it writes the workspace; what remains is whole.

The writer is a separate process running WorkspaceService.save, the call the server's autosave
makes, in a tight loop: every save sets all 200 values to the loop counter. After the kill, the
stored values must all carry one counter value (the last committed save), never a mixture.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from crispml.services import Services

WRITER = """
import sys
from crispml.core.workspace import WorkspaceService, encode
from crispml.store.db import Database
ws = WorkspaceService(Database(sys.argv[1]))
user, known = int(sys.argv[2]), 0
for i in range(1, 1_000_000):
    values = {f"ws.v{k:03d}": encode({"i": i, "pad": "x" * 200}) for k in range(200)}
    known = ws.save(user, {"p1": values}, writer="writer", known_revision=known).revision
"""


def test_sigkill_during_writes_leaves_the_last_complete_state(services: Services) -> None:
    user = services.auth.first_admin().id
    proc = subprocess.Popen([sys.executable, "-c", WRITER, services.db.url, str(user)])
    try:
        deadline = time.monotonic() + 60
        while services.workspace.revision(user)[0] < 15 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert services.workspace.revision(user)[0] >= 15, "the writer made no progress"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    services.db.dispose()  # as after a restart: new connections
    revision, _ = services.workspace.revision(user)
    values = services.workspace.load(user, ("p1",)).values
    assert len(values) == 200
    counters = {v.split('"i":')[1].split(",")[0].rstrip("}") for v in values.values()}
    assert len(counters) == 1, f"torn state: {sorted(counters)[:5]}"
    assert int(counters.pop()) == revision  # the values of exactly the last committed save
