"""The per-job supervisor: ``python -m crispml.core.supervisor DB_URL HOME JOB_ID``.

Started by the scheduler, it detaches at once (a second fork: the web server never waits for
it, and it is nobody's child but init's), so the job outlives the browser and the web server.
It starts the command in its own process group with stdout and stderr in order in
``runs/<id>/output.log``, records the pid and its start time, feeds stdin lines, waits, and writes
the final status. On SIGTERM (a stop) it sends SIGTERM to the job's whole process group and
SIGKILL after the grace period. When the job ends it starts queued jobs whose turn has come.
Imports nothing of the web or UI layers, and stays small.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def _detach() -> None:
    if os.fork() > 0:
        os._exit(0)  # the launcher's child exits at once; the grandchild runs the job
    os.setsid() if os.getpgrp() != os.getpid() else None


def main(argv: list[str]) -> int:
    db_url, home, job_id = argv[0], Path(argv[1]), argv[2]
    _detach()
    from crispml.core.jobs import JobRuntime

    runtime = JobRuntime.from_url(db_url, home)
    job = runtime.claim(job_id, os.getpid())
    if job is None:
        runtime.schedule()
        return 0
    log_path = runtime.workdir(job_id) / "output.log"
    with log_path.open("ab", buffering=0) as log:
        try:
            proc = subprocess.Popen(
                job.argv,
                cwd=job.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if job.stdin_lines else subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **job.environment},
            )
        except OSError as exc:
            message = f"crispml: could not start {job.argv[0]!r}: {exc.strerror or exc}\n"
            log.write(message.encode())
            runtime.finish(job_id, "failed", None, None, message.strip())
            runtime.schedule()
            return 0
        runtime.running(job_id, proc.pid)
        stopping = threading.Event()

        def on_stop(_signum: int, _frame: object) -> None:
            if stopping.is_set():
                return
            stopping.set()
            _signal_group(proc.pid, signal.SIGTERM)

            def escalate() -> None:
                if proc.poll() is None:
                    _signal_group(proc.pid, signal.SIGKILL)

            threading.Timer(runtime.stop_grace, escalate).start()

        signal.signal(signal.SIGTERM, on_stop)
        if runtime.stop_requested(job_id):  # a stop that came between claim and start
            on_stop(signal.SIGTERM, None)
        if job.stdin_lines and proc.stdin is not None:
            try:
                proc.stdin.write("".join(f"{line}\n" for line in job.stdin_lines).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
        code = proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)  # leftovers of the job's group, if any
    if code == 0:
        runtime.finish(job_id, "succeeded", 0, None, "")
    elif code < 0:
        name = signal.Signals(-code).name
        status = "stopped" if stopping.is_set() or runtime.stop_requested(job_id) else "failed"
        runtime.finish(job_id, status, None, name, f"ended by {name}")
    else:
        status = "stopped" if stopping.is_set() else "failed"
        runtime.finish(job_id, status, code, None, f"exit code {code}")
    runtime.schedule()
    return 0


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


if __name__ == "__main__":
    time.sleep(0)
    sys.exit(main(sys.argv[1:]))
