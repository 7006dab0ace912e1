"""The per-job supervisor: ``python -m crispml.core.supervisor DB_URL HOME JOB_ID``.

Started by the scheduler, it detaches at once (a second fork: the web server never waits for
it, and it is nobody's child but init's), so the job outlives the browser and the web server.
It starts the command *first*, from ``runs/<id>/launch.json`` and with the standard library only
(so a job starts about as fast as the bare command), in its own process group with stdout and
stderr in order in ``runs/<id>/output.log``; only then does it load the database layer to record
the pid and its start time. It feeds stdin lines, waits, and writes the final status. On SIGTERM
(a stop) it sends SIGTERM to the job's whole process group and SIGKILL after the grace period.
When the job ends it starts queued jobs whose turn has come.

A job with a sandbox (crispml.core.sandbox) starts inside bubblewrap, as its owner's OS account,
in a cgroup with its memory and process limits; a job the kernel killed for memory is recorded as
"out of memory at <limit>", and links it left in its folder are removed before the server reads
it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from crispml.core.sandbox import SANDBOX_PATH, JobLimits, SandboxSpec, command, remove_links


def _detach() -> None:
    if os.fork() > 0:
        os._exit(0)  # the launcher's child exits at once; the grandchild runs the job


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_sandboxed(pgid: int, sig: signal.Signals) -> None:
    """A polite signal to a sandboxed job's processes, not to bubblewrap itself, which would die
    of it and take the job with it at once (it ends its sandbox with itself)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pgid:
            with contextlib.suppress(OSError):
                if os.getpgid(int(entry)) == pgid:
                    os.kill(int(entry), sig)


def _job_environment() -> dict[str, str]:
    """The server's environment without crispml's own settings (secrets, database URL)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}


def main(argv: list[str]) -> int:
    db_url, home, job_id = argv[0], Path(argv[1]), argv[2]
    _detach()
    workdir = home / "runs" / job_id
    launch = json.loads((workdir / "launch.json").read_text())
    stopping = threading.Event()
    argv, env = launch["argv"], {**_job_environment(), **launch["environment"]}
    sandbox = SandboxSpec.from_json(launch["sandbox"]) if launch.get("sandbox") else None
    limits = None
    with (workdir / "output.log").open("ab", buffering=0) as log:
        try:
            if sandbox is not None:
                path = launch["environment"].get("PATH", SANDBOX_PATH)
                if shutil.which(argv[0], path=path) is None:  # as exec would say, inside
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
                argv = command(sandbox, argv, launch["workdir"], launch["environment"])
                env = {"PATH": SANDBOX_PATH, "LANG": "C.UTF-8"}
                limits = JobLimits(job_id, sandbox.memory_mb, sandbox.processes)
            proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                argv,
                cwd=launch["workdir"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if launch["stdin"] else subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                preexec_fn=limits.enter if limits else None,  # one thread here
            )
            failure = ""
        except Exception as exc:  # any failure to start is the job's failure
            proc = None
            reason = getattr(exc, "strerror", None) or exc
            failure = f"crispml: could not start {launch['argv'][0]!r}: {reason}\n"
            log.write(failure.encode())

        def on_stop(_signum: int, _frame: object) -> None:
            if stopping.is_set() or proc is None:
                return
            stopping.set()
            if sandbox is not None:
                _signal_sandboxed(proc.pid, signal.SIGTERM)
            else:
                _signal_group(proc.pid, signal.SIGTERM)

            def escalate() -> None:
                if proc.poll() is None:
                    _signal_group(proc.pid, signal.SIGKILL)

            threading.Timer(float(launch["stop_grace"]), escalate).start()

        signal.signal(signal.SIGTERM, on_stop)
        # The command runs; now the heavier database layer.
        from crispml.core.jobs import JobRuntime

        runtime = JobRuntime.from_url(db_url, home)
        claimed = runtime.claim(job_id, os.getpid())
        if proc is None:
            if claimed is not None:
                runtime.finish(job_id, "failed", None, None, failure.strip())
            runtime.schedule()
            return 0
        if claimed is None:  # stopped (or gone) before it could start: end it now
            on_stop(signal.SIGTERM, None)
        else:
            runtime.running(job_id, proc.pid)
            if runtime.stop_requested(job_id):  # a stop that came between claim and start
                on_stop(signal.SIGTERM, None)
        if launch["stdin"] and proc.stdin is not None:
            try:
                proc.stdin.write("".join(f"{line}\n" for line in launch["stdin"]).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
        code = proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)  # leftovers of the job's group, if any
    if sandbox is not None:
        if code > 128:  # bubblewrap passes a signal on as 128 + its number
            code = -(code - 128)
        with contextlib.suppress(OSError):
            remove_links(workdir)
    out_of_memory = limits is not None and limits.out_of_memory()
    if limits is not None:
        limits.remove()
    if claimed is not None and out_of_memory and code != 0:
        assert limits is not None
        message = f"out of memory at {limits.describe_memory()} (setting sandbox_memory_mb)"
        with (workdir / "output.log").open("a") as tail:
            tail.write(f"\ncrispml: {message}: the kernel killed the job\n")
        runtime.finish(job_id, "failed", None, "SIGKILL", message)
    elif claimed is not None:
        if code == 0:
            runtime.finish(job_id, "succeeded", 0, None, "")
        elif code < 0:
            name = signal.Signals(-code).name
            stopped = stopping.is_set() or runtime.stop_requested(job_id)
            runtime.finish(
                job_id, "stopped" if stopped else "failed", None, name, f"ended by {name}"
            )
        else:
            runtime.finish(
                job_id,
                "stopped" if stopping.is_set() else "failed",
                code,
                None,
                f"exit code {code}",
            )
    runtime.schedule()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
