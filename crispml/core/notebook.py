"""Per-user JupyterLab servers, each a job (kind ``notebook server``).

A server listens on 127.0.0.1 only, on a free port (optionally from ``notebook_ports``), with
the base URL ``/jupyter/<user>/``, a random token and the user's file root as its root folder.
Its state lives in ``<home>/notebooks/<user>/``: ``server.json`` (port, token, job id; mode
0600), Jupyter's config, data (one kernelspec per usable environment), runtime and workspace
folders, so nothing is written to the server account's home. The web app's proxy
(``crispml/web/jupyter.py``) is the only way in: it checks the crispml session and ownership and
authenticates to Jupyter itself; the browser never sees the token.

A notebook runs any code as the server's OS user, so using one is a permission (admins have
it; an admin grants it to others).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from crispml.core import records
from crispml.core.auth import User
from crispml.core.envs.registry import Environment
from crispml.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from crispml.core.jobs import NO_CODE, Job, JobService, JobSpec

KIND = "notebook server"
JOBSIDE = Path(__file__).resolve().parent.parent / "jobside"
READY_FILE = "ready"


@dataclass(frozen=True)
class NotebookSettings:
    idle_timeout: timedelta = timedelta(hours=1)
    terminals: bool = False
    ports: tuple[int, int] | None = None  # an inclusive range; None: any free port


@dataclass(frozen=True)
class Upstream:
    """Where a user's running JupyterLab listens, for the proxy."""

    username: str
    port: int
    token: str
    job_id: str

    @property
    def base_url(self) -> str:
        return f"/jupyter/{self.username}/"


@dataclass(frozen=True)
class NotebookState:
    job: Job | None
    upstream: Upstream | None
    message: str  # what the page says about it

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.finished


def free_port(ports: tuple[int, int] | None, taken: frozenset[int] | set[int] = frozenset()) -> int:
    """A port nothing listens on at 127.0.0.1 (in ``ports`` if given), not one of ``taken``
    (chosen for servers that have not bound it yet)."""
    candidates = range(ports[0], ports[1] + 1) if ports else [0]
    for port in candidates:
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    assert ports is not None
    raise Conflict(
        f"No free port for JupyterLab in {ports[0]}-{ports[1]} (setting notebook_ports): "
        "stop a notebook server, or ask an admin to widen the range."
    )


class NotebookService:
    def __init__(
        self,
        home: Path,
        jobs: JobService,
        environments: Callable[[], list[Environment]],
        file_root: Callable[[str], Path],
        settings: NotebookSettings,
    ) -> None:
        self._root = home / "notebooks"
        self._jobs = jobs
        self._environments = environments
        self._file_root = file_root
        self.settings = settings
        self._starting = threading.Lock()  # one start at a time: no two servers for one user

    # --- state ------------------------------------------------------------------------------

    def folder(self, username: str) -> Path:
        return self._root / username

    def _record(self, username: str) -> dict[str, Any] | None:
        return records.read(self.folder(username) / "server.json")

    def _server(self, username: str) -> tuple[dict[str, Any], Job] | None:
        """The user's last server: its record and its job (None if none, or its job deleted)."""
        record = self._record(username)
        if record is None:
            return None
        try:
            return record, self._jobs.get(0, str(record["job"]), admin=True)
        except NotFound:
            return None

    def state(self, user: User) -> NotebookState:
        found = self._server(user.username)
        if found is None:
            return NotebookState(None, None, "Not started.")
        record, job = found
        upstream = Upstream(user.username, int(record["port"]), str(record["token"]), job.id)
        ready = (Path(job.workdir) / READY_FILE).exists()
        if job.finished:
            ended = {"succeeded": "it stopped after being idle, or was shut down"}.get(
                job.status, f"it ended: {job.status}" + (f" ({job.error})" if job.error else "")
            )
            return NotebookState(job, None, f"Not running: {ended}.")
        if not ready:
            return NotebookState(job, None, f"Starting (job {job.id}, {job.status}).")
        return NotebookState(job, upstream, f"Running (job {job.id}).")

    def port(self, username: str) -> int | None:
        record = self._record(username)
        return int(record["port"]) if record else None

    def upstream(self, username: str) -> Upstream | None:
        """The running, ready server of ``username``, if any (the proxy's lookup)."""
        found = self._server(username)
        if found is None:
            return None
        record, job = found
        if job.finished or not (Path(job.workdir) / READY_FILE).exists():
            return None
        return Upstream(username, int(record["port"]), str(record["token"]), job.id)

    # --- actions ----------------------------------------------------------------------------

    @staticmethod
    def allowed(user: User) -> bool:
        return user.may_run_code

    def _check(self, user: User) -> None:
        if not self.allowed(user):
            raise PermissionDenied(NO_CODE)

    def start(self, user: User) -> NotebookState:
        self._check(user)
        with self._starting:
            return self._start(user)

    def _taken_ports(self) -> set[int]:
        """Ports recorded for other servers that are still queued or running."""
        taken = set()
        for path in self._root.glob("*/server.json"):
            found = self._server(path.parent.name)
            if found is not None and not found[1].finished:
                taken.add(int(found[0]["port"]))
        return taken

    def _start(self, user: User) -> NotebookState:
        current = self.state(user)
        if current.running:
            return current
        port = free_port(self.settings.ports, self._taken_ports())
        token = secrets.token_urlsafe(32)
        folder = self.folder(user.username)
        for sub in ("config", "data/kernels", "runtime", "workspaces", "settings", "ipython"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        kernels = self._kernelspecs(folder / "data" / "kernels")
        news = folder / "settings" / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True, exist_ok=True)  # no "get Jupyter news?" prompt: no internet here
        (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        config = self._config(user.username, port, token, kernels)
        records.write(folder / "config" / "jupyter_server_config.json", config)
        spec = JobSpec(
            ["python", "-m", "crispml.core.notebook_runner", str(folder)],
            name=f"JupyterLab ({user.username})",
            kind=KIND,
            env="system",
            executor="local",  # it must listen on this machine, where the proxy is
        )
        job = self._jobs.submit(user.id, user.username, spec)
        record = {"port": port, "token": token, "job": job.id, "root": str(self._root_dir(user))}
        records.write(folder / "server.json", record)
        return self.state(user)

    def stop(self, user: User, wait: float = 30.0) -> NotebookState:
        """Stop the server (SIGTERM: Jupyter shuts its kernels down) and wait until it ended."""
        current = self.state(user)
        if current.job is not None and not current.job.finished:
            self._jobs.stop(user.id, current.job.id, admin=True, actor=user.username)
        deadline = time.monotonic() + wait
        while current.running and time.monotonic() < deadline:
            time.sleep(0.2)
            current = self.state(user)
        return current

    def restart(self, user: User) -> NotebookState:
        self._check(user)
        if self.stop(user).running:
            raise Conflict("JupyterLab is still stopping; try again in a moment.")
        return self.start(user)

    # --- configuration ----------------------------------------------------------------------

    def _root_dir(self, user: User) -> Path:
        return self._file_root(user.username)

    def _kernelspecs(self, folder: Path) -> list[str]:
        """One kernel per ready environment that has ipykernel (crispml's own always does)."""
        names = []
        for old in folder.glob("*/kernel.json"):
            old.unlink()
        for env in self._environments():
            if not env.ready:
                continue
            has_kernel = env.name == "system" or "ipykernel" in {
                k.lower().replace("_", "-") for k in env.packages
            }
            if not has_kernel:
                continue
            name = f"crispml-{env.name}".lower()
            argv = env.command(["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"])
            if env.name == "system":
                argv = [sys.executable, *argv[1:]] if argv[0] == "python" else argv
            spec = {
                "argv": argv,
                "display_name": f"Python ({env.name})",
                "language": "python",
                "env": {
                    **env.variables(),
                    "PYTHONPATH": str(JOBSIDE),
                    # crispml_job.load_model("name") finds registered models here
                    "CRISPML_MODELS": str(self._root.parent / "models"),
                },
                "metadata": {"debugger": True},
            }
            (folder / name).mkdir(parents=True, exist_ok=True)
            (folder / name / "kernel.json").write_text(json.dumps(spec, indent=1))
            names.append(name)
        return names

    def _config(self, username: str, port: int, token: str, kernels: list[str]) -> dict[str, Any]:
        idle = int(self.settings.idle_timeout.total_seconds())
        return {
            "IdentityProvider": {"token": token},
            "ServerApp": {
                "ip": "127.0.0.1",
                "port": port,
                "port_retries": 0,
                "open_browser": False,
                "base_url": f"/jupyter/{username}/",
                "root_dir": str(self._file_root(username)),
                "terminals_enabled": self.settings.terminals,
                # Jupyter refuses root unless told; crispml runs as whatever account started it.
                "allow_root": os.geteuid() == 0,
                "shutdown_no_activity_timeout": idle,
                # Only the app's own pages may frame JupyterLab (the proxy makes it same-origin).
                "tornado_settings": {
                    "headers": {"Content-Security-Policy": "frame-ancestors 'self'"}
                },
            },
            "MappingKernelManager": {
                "cull_idle_timeout": idle,
                "cull_interval": 60,
                "cull_connected": True,
            },
            "KernelSpecManager": {"allowed_kernelspecs": kernels, "ensure_native_kernel": False},
            "LabApp": {
                "open_browser": False,
                "news_url": None,
                "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                "extension_manager": "readonly",  # no installing extensions from PyPI
            },
        }


def parse_ports(text: str) -> tuple[int, int] | None:
    """``"49200-49299"`` -> (49200, 49299); empty: None (any free port)."""
    if not text.strip():
        return None
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise InvalidInput(f"notebook_ports must look like 49200-49299, not {text!r}.") from None
    if not 1024 <= first <= last <= 65535:
        raise InvalidInput(f"notebook_ports must lie within 1024-65535, not {text!r}.")
    return first, last
