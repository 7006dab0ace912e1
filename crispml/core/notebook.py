"""Per-user JupyterLab servers, each a job (kind ``notebook server``).

A server listens on a Unix socket in the user's notebook folder (no TCP port: no other
process of this machine can connect to it, and the user's sandbox has a network of its own),
with the base URL ``/jupyter/<user>/``, a random token and the user's file root as its root
folder. The server's record of it is ``<home>/notebooks/<user>.json`` (socket, token, job id;
mode 0600, outside anything the user's code can write); Jupyter's own state lives in
``<home>/notebooks/<user>/``: its config, data (one kernelspec per usable environment), runtime
and workspace folders and the socket. The web app's proxy (``crispml/web/jupyter.py``) is the
only way in: it checks the crispml session and ownership and authenticates to Jupyter itself;
the browser never sees the token.

A notebook runs code, so using one is a permission (admins have it; an admin grants it to
others). The server and its kernels run in the user's sandbox (crispml.core.sandbox), as the
user's own OS account, with the notebook folder writable and the environments' interpreters and
the model registry readable.
"""

from __future__ import annotations

import json
import os
import secrets
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
from crispml.core.errors import Conflict, NotFound, PermissionDenied
from crispml.core.jobs import NO_CODE, Job, JobService, JobSpec
from crispml.core.sandbox import python_paths

KIND = "notebook server"
JOBSIDE = Path(__file__).resolve().parent.parent / "jobside"
READY_FILE = "ready"
SOCKET = "jupyter.sock"
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the final NUL


@dataclass(frozen=True)
class NotebookSettings:
    idle_timeout: timedelta = timedelta(hours=1)
    terminals: bool = False


@dataclass(frozen=True)
class Upstream:
    """Where a user's running JupyterLab listens, for the proxy."""

    username: str
    socket: str
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

    def record_path(self, username: str) -> Path:
        return self._root / f"{username}.json"

    def _record(self, username: str) -> dict[str, Any] | None:
        record = records.read(self.record_path(username))
        return record if record and "socket" in record else None  # older: a TCP port

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
        upstream = Upstream(user.username, str(record["socket"]), str(record["token"]), job.id)
        ready = (Path(job.workdir) / READY_FILE).exists()
        if job.finished:
            ended = {"succeeded": "it stopped after being idle, or was shut down"}.get(
                job.status, f"it ended: {job.status}" + (f" ({job.error})" if job.error else "")
            )
            return NotebookState(job, None, f"Not running: {ended}.")
        if not ready:
            return NotebookState(job, None, f"Starting (job {job.id}, {job.status}).")
        return NotebookState(job, upstream, f"Running (job {job.id}).")

    def upstream(self, username: str) -> Upstream | None:
        """The running, ready server of ``username``, if any (the proxy's lookup)."""
        found = self._server(username)
        if found is None:
            return None
        record, job = found
        if job.finished or not (Path(job.workdir) / READY_FILE).exists():
            return None
        return Upstream(username, str(record["socket"]), str(record["token"]), job.id)

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

    def _start(self, user: User) -> NotebookState:
        current = self.state(user)
        if current.running:
            return current
        token = secrets.token_urlsafe(32)
        folder = self.folder(user.username)
        sock = folder / SOCKET
        if len(os.fsencode(sock)) > SOCKET_PATH_MAX:
            raise Conflict(
                f"JupyterLab's socket path {sock} is longer than a Unix socket allows "
                f"({SOCKET_PATH_MAX} bytes): use a shorter CRISPML_HOME."
            )
        sock.unlink(missing_ok=True)  # a server that was killed leaves it behind
        for sub in ("config", "data/kernels", "runtime", "workspaces", "settings", "ipython"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        kernels, interpreters = self._kernelspecs(folder / "data" / "kernels")
        news = folder / "settings" / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True, exist_ok=True)  # no "get Jupyter news?" prompt: no internet here
        (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        config = self._config(user.username, str(sock), token, kernels)
        records.write(folder / "config" / "jupyter_server_config.json", config)
        models = self._root.parent / "models"
        models.mkdir(parents=True, exist_ok=True)
        spec = JobSpec(
            ["python", "-m", "crispml.core.notebook_runner", str(folder)],
            name=f"JupyterLab ({user.username})",
            kind=KIND,
            env="system",
            executor="local",  # it must listen on this machine, where the proxy is
            # Its own folder; the registry (crispml_job.load_model); the kernels' interpreters.
            mounts=[(str(folder), "rw"), (str(models), "ro")] + [(p, "ro") for p in interpreters],
        )
        job = self._jobs.submit(user.id, user.username, spec)
        record = {"socket": str(sock), "token": token, "job": job.id}
        records.write(self.record_path(user.username), record)
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

    def _kernelspecs(self, folder: Path) -> tuple[list[str], list[str]]:
        """One kernel per ready environment that has ipykernel (crispml's own always does);
        the kernels' names, and what their interpreters need readable in the sandbox."""
        names: list[str] = []
        paths: list[str] = []
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
            paths += python_paths(env.interpreter, env.prefix)
            if env.kind == "conda" and env.tool:
                paths += python_paths(env.tool)
        return names, paths

    def _config(self, username: str, sock: str, token: str, kernels: list[str]) -> dict[str, Any]:
        idle = int(self.settings.idle_timeout.total_seconds())
        return {
            "IdentityProvider": {"token": token},
            "ServerApp": {
                "sock": sock,
                "sock_mode": "0600",
                "open_browser": False,
                "base_url": f"/jupyter/{username}/",
                "root_dir": str(self._file_root(username)),
                "terminals_enabled": self.settings.terminals,
                # Jupyter refuses root unless told: without a sandbox (setting sandbox = "off")
                # it runs as whatever account started crispml.
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
