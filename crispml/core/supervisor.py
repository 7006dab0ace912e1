"""The per-job supervisor: ``python -m crispml.core.supervisor DB_URL HOME JOB_ID``.

Started by the scheduler, it detaches at once (a second fork: the web server never waits for
it, and it is nobody's child but init's), so the job outlives the browser and the web server.
It starts the command *first*, from ``runs/<id>/launch.json`` and with the standard library only
(so a job starts about as fast as the bare command), in its own process group with stdout and
stderr in order in ``runs/<id>/output.log``; only then does it load the database layer to record
the pid and its start time. It feeds stdin lines, waits, and writes the final status. On SIGTERM
(a stop) it sends SIGTERM to the job's whole process group and SIGKILL after the grace period.
When the job ends it starts queued jobs whose turn has come.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


def _detach() -> None:
    if os.fork() > 0:
        os._exit(0)  # the launcher's child exits at once; the grandchild runs the job


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _job_environment() -> dict[str, str]:
    """The server's environment without crispml's own settings (secrets, database URL)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}


def main(argv: list[str]) -> int:
    db_url, home, job_id = argv[0], Path(argv[1]), argv[2]
    _detach()
    workdir = home / "runs" / job_id
    launch = json.loads((workdir / "launch.json").read_text())
    stopping = threading.Event()
    with (workdir / "output.log").open("ab", buffering=0) as log:
        try:
            proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                launch["argv"],
                cwd=launch["workdir"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if launch["stdin"] else subprocess.DEVNULL,
                start_new_session=True,
                env={**_job_environment(), **launch["environment"]},
            )
            failure = ""
        except OSError as exc:
            proc = None
            failure = f"crispml: could not start {launch['argv'][0]!r}: {exc.strerror or exc}\n"
            log.write(failure.encode())

        def on_stop(_signum: int, _frame: object) -> None:
            if stopping.is_set() or proc is None:
                return
            stopping.set()
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
    if claimed is not None:
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
