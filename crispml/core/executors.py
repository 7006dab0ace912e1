"""Where jobs run: the ``Executor`` protocol and the local implementation.

The scheduler and the job service (crispml.core.jobs) decide *when* a job runs and keep its
record; an executor decides *how*: it starts the job, stops it, reads its logs, says whether it
is still watched (for recovery after a restart), and reports its resource use. Executors are
found through the ``crispml.executors`` entry-point group, the built-in ``local`` one included,
so a cluster backend (Ray) plugs in the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Protocol, cast

import psutil

from crispml.core.records import open_job_file
from crispml.core.sandbox import SandboxSpec


@dataclass(frozen=True)
class LaunchRequest:
    """Everything an executor needs to start one job."""

    job_id: str
    argv: list[str]
    workdir: Path
    stdin_lines: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    stop_grace: float = 10.0
    sandbox: SandboxSpec | None = None  # None: run as the server's account (trusted jobs)


@dataclass(frozen=True)
class JobHandle:
    """What the store knows of a started job, for stopping, logs, recovery and usage."""

    job_id: str
    workdir: Path
    pid: int | None = None
    pid_started: float | None = None
    supervisor_pid: int | None = None
    supervisor_started: float | None = None


@dataclass(frozen=True)
class ExecutorStatus:
    """What an executor reports of a job whose outcome it, not a supervisor, knows."""

    status: str  # starting, running, succeeded, failed, stopped, or unknown
    exit_code: int | None = None
    message: str = ""


class Executor(Protocol):
    name: str

    def status(self, handle: JobHandle) -> ExecutorStatus | None:
        """The job's state from the engine; None when the store is kept up to date already."""

    def submit(self, request: LaunchRequest) -> None:
        """Start the job; it records itself as running and, at the end, its outcome."""

    def stop(self, handle: JobHandle) -> bool:
        """Ask the job to stop (SIGTERM, then SIGKILL after the grace). False: nothing ran."""

    def logs(self, handle: JobHandle, max_bytes: int) -> str:
        """The end of the job's output, at most ``max_bytes``."""

    def alive(self, handle: JobHandle) -> bool:
        """Whether the job is still watched by something that will record its outcome."""

    def kill(self, handle: JobHandle) -> bool:
        """End a job nobody watches any more (recovery). True if something was killed."""

    def usage(self, handle: JobHandle) -> tuple[float, int]:
        """CPU percent and resident memory in bytes, of the job and its children."""


def same_process(pid: int | None, started: float | None) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` (not a reused pid).

    ``started`` is seconds since boot (``start_time``), which no clock change moves. Records
    from before were seconds since the epoch, derived from the boot time the kernel reports in
    whole seconds: a small clock adjustment can move that by a second, and a running job then
    looked gone. They are compared with a second's leeway (a pid comes round again only after
    the whole pid range has been used)."""
    if not pid or started is None:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started > _EPOCH_RECORDS:
            return bool(abs(proc.create_time() - started) < 1.5)
        since_boot = _since_boot(pid)
        return since_boot is not None and abs(since_boot - started) < 0.05
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


_EPOCH_RECORDS = 1e8  # larger: seconds since the epoch (older records), not since boot
_TICKS = os.sysconf("SC_CLK_TCK")


def _since_boot(pid: int) -> float | None:
    """When the process started, in seconds since boot (/proc/<pid>/stat, field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19]) / _TICKS


def start_time(pid: int) -> float | None:
    """What ``same_process`` checks a pid against later: its start, in seconds since boot."""
    return _since_boot(pid)


class LocalExecutor:
    """Jobs as processes on this machine, each under a detached supervisor
    (crispml.core.supervisor) that records its life in the database."""

    name = "local"

    def status(self, handle: JobHandle) -> ExecutorStatus | None:
        return None  # the supervisor writes the job's life into the store itself

    def __init__(self, db_url: str, home: Path, env: dict[str, str] | None = None) -> None:
        self._db_url = db_url
        self._home = home
        self._env = env or {}
        self._processes: dict[tuple[int, float], psutil.Process] = {}
        self._seen: set[int] = set()  # pids whose CPU was looked at once

    def submit(self, request: LaunchRequest) -> None:
        launch = {
            "argv": request.argv,
            "workdir": str(request.workdir),
            "stdin": request.stdin_lines,
            "environment": request.environment,
            "stop_grace": request.stop_grace,
            "sandbox": request.sandbox.to_json() if request.sandbox else None,
        }
        (request.workdir / "launch.json").write_text(json.dumps(launch))
        with (request.workdir / "supervisor.log").open("ab") as log:
            launcher = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "crispml.core.supervisor",
                    self._db_url,
                    str(self._home),
                    request.job_id,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={**os.environ, **self._env},
                close_fds=True,
            )
        launcher.wait()  # it exits at once: the real supervisor is its detached child

    def stop(self, handle: JobHandle) -> bool:
        if same_process(handle.supervisor_pid, handle.supervisor_started):
            assert handle.supervisor_pid is not None
            os.kill(handle.supervisor_pid, signal.SIGTERM)  # it escalates after the grace
            return True
        return self.kill(handle)  # no supervisor: signal the job's group ourselves

    def kill(self, handle: JobHandle) -> bool:
        if same_process(handle.pid, handle.pid_started):
            assert handle.pid is not None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(handle.pid, signal.SIGKILL)
            return True
        return False

    def logs(self, handle: JobHandle, max_bytes: int) -> str:
        """Read from the end of the file: cheap at any size."""
        try:
            with open_job_file(handle.workdir / "output.log") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - max_bytes))
                data = f.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        return text.split("\n", 1)[1] if size > max_bytes and "\n" in text else text

    def alive(self, handle: JobHandle) -> bool:
        return same_process(handle.supervisor_pid, handle.supervisor_started)

    def usage(self, handle: JobHandle) -> tuple[float, int]:
        if not same_process(handle.pid, handle.pid_started):
            return 0.0, 0
        try:
            assert handle.pid is not None
            procs = [self._process(handle.pid)]
            procs += [self._process(c.pid) for c in procs[0].children(recursive=True)]
            cpu = sum(self._cpu(p) for p in procs)
            rss = sum(p.memory_info().rss for p in procs)
            return cpu, rss
        except psutil.Error:
            return 0.0, 0

    def _cpu(self, proc: psutil.Process) -> float:
        """CPU percent since the previous look at this process (the objects are kept between
        refreshes of the table); the first look, which psutil answers with 0, is the average
        over the process's life instead."""
        if proc.pid not in self._seen:
            self._seen.add(proc.pid)
            proc.cpu_percent(interval=None)  # the baseline for the next look
            times = proc.cpu_times()
            age = max(time.time() - proc.create_time(), 1e-3)
            return float(100.0 * (times.user + times.system) / age)
        return float(proc.cpu_percent(interval=None))

    def _process(self, pid: int) -> psutil.Process:
        proc = psutil.Process(pid)
        key = (pid, proc.create_time())
        cached = self._processes.get(key)
        if cached is None:
            if len(self._processes) > 1000:
                self._processes.clear()
                self._seen.clear()
            self._seen.discard(pid)  # a new process under a reused pid
            cached = self._processes[key] = proc
        return cached


def load_executor(
    name: str,
    db_url: str,
    home: Path,
    env: dict[str, str],
    points: Iterable[EntryPoint] | None = None,
) -> Executor:
    """The executor registered under ``name`` in the ``crispml.executors`` entry points, checked:
    one registration per name, a factory that loads (its requirements installed), and what it
    makes is an Executor (every method of the protocol) that answers to that name. Each problem
    is a ValueError that says what to do, at start-up rather than at a job's launch."""
    found = [p for p in (points or entry_points(group="crispml.executors")) if p.name == name]
    if not found and name == "local":  # running from a source tree without installed metadata
        return LocalExecutor(db_url, home, env)
    if not found:
        raise ValueError(f"No job executor named '{name}' is installed.")
    if len({p.value for p in found}) > 1:
        where = ", ".join(sorted({p.value for p in found}))
        raise ValueError(f"Two job executors are named '{name}' ({where}): uninstall one of them.")
    point = found[0]
    try:
        factory = point.load()
    except ImportError as exc:
        raise ValueError(
            f"The job executor '{name}' ({point.value}) cannot load: {exc}. Install what it "
            f"needs (for Ray: pip install 'crispml[ray]')."
        ) from exc
    executor = factory(db_url, home, env)
    missing = [m for m in EXECUTOR_METHODS if not callable(getattr(executor, m, None))]
    if missing:
        raise ValueError(
            f"The job executor '{name}' ({point.value}) lacks {', '.join(missing)} of the "
            "Executor protocol (crispml.core.executors.Executor)."
        )
    if getattr(executor, "name", None) != name:
        raise ValueError(
            f"The job executor registered as '{name}' calls itself "
            f"'{getattr(executor, 'name', None)}': the two must agree."
        )
    return cast(Executor, executor)


EXECUTOR_METHODS = ("status", "submit", "stop", "logs", "alive", "kill", "usage")
