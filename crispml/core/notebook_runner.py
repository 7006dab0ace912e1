"""The notebook server job: ``python -m crispml.core.notebook_runner <folder>``.

Starts JupyterLab with its config, data, runtime and workspace folders inside ``<folder>`` (the
user's ``<home>/notebooks/<user>``), waits until it answers, then writes the ``ready`` marker in
the job's folder, so the page and the proxy know when to send requests. SIGTERM (a stop from the
page or the process table) is passed on to JupyterLab, which shuts its kernels down; the job
ends with JupyterLab's exit code.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

READY_TIMEOUT_S = 120


def environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON"))}
    env.update(
        {
            "JUPYTER_CONFIG_DIR": str(folder / "config"),
            "JUPYTER_DATA_DIR": str(folder / "data"),
            "JUPYTER_PATH": str(folder / "data"),
            "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
            "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
            "JUPYTERLAB_SETTINGS_DIR": str(folder / "settings"),
            "IPYTHONDIR": str(folder / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
    )
    return env


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the server's Unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=2)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(2)
        self.sock.connect(self._path)


def ready(sock: str, base_url: str, token: str) -> bool:
    connection = _UnixConnection(sock)
    try:
        connection.request(
            "GET", f"{base_url}api/status", headers={"Authorization": f"token {token}"}
        )
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    config = json.loads((folder / "config" / "jupyter_server_config.json").read_text())
    server = config["ServerApp"]
    token = config["IdentityProvider"]["token"]
    run_dir = Path(os.environ.get("CRISPML_RUN_DIR") or ".")
    sock = Path(server["sock"])
    if sock.is_symlink() or sock.exists():
        if not stat.S_ISSOCK(sock.lstat().st_mode):
            print(f"crispml: cannot listen on {sock}: it is not a socket", flush=True)
            return 1
        sock.unlink()  # left by a server that was killed
    child = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser"],
        env=environment(folder),
        cwd=server["root_dir"],
    )

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while child.poll() is None:
            if ready(server["sock"], server["base_url"], token):
                (run_dir / "ready").write_text(str(child.pid))
                print(f"crispml: JupyterLab is ready on {server['sock']}", flush=True)
                break
            if time.monotonic() > deadline:
                print("crispml: JupyterLab did not answer in time; stopping it", flush=True)
                child.terminate()
                break
            time.sleep(0.3)
        return child.wait()
    finally:
        if child.poll() is None:  # the runner is ending for another reason: so does JupyterLab
            child.terminate()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
