"""Jobs on a Ray cluster through the Ray Jobs API (``pip install crispml[ray]``).

The job's record stays in crispml's store: Ray has no supervisor writing outcomes there, so the
job service asks ``status`` for live Ray jobs and copies the outcome and the full log into the
store and ``runs/<id>/output.log``. History and logs therefore survive a restart of the Ray head.
The address of the head's dashboard comes from ``CRISPML_RAY_ADDRESS``
(default http://127.0.0.1:8265). Ray is imported only when a Ray job is touched.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from crispml.core.executors import ExecutorStatus, JobHandle, LaunchRequest

_STATUSES = {
    "PENDING": "starting",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "STOPPED": "stopped",
}


def submission_id(job_id: str) -> str:
    return f"crispml-{job_id}"


class RayExecutor:
    name = "ray"

    def __init__(self, db_url: str, home: Path, env: dict[str, str] | None = None) -> None:
        settings = {**os.environ, **(env or {})}
        self.address = settings.get("CRISPML_RAY_ADDRESS") or "http://127.0.0.1:8265"

    def _client(self) -> Any:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.address)

    def submit(self, request: LaunchRequest) -> None:
        """The command already names its crispml environment's interpreter by path, and its
        variables (PATH, PYTHONPATH with the job-side helpers) go in the Ray runtime
        environment: Ray's nodes must see the same paths (one node, or a shared home)."""
        self._client().submit_job(
            entrypoint=shlex.join(request.argv),
            submission_id=submission_id(request.job_id),
            runtime_env={"env_vars": dict(request.environment)},
        )

    def status(self, handle: JobHandle) -> ExecutorStatus | None:
        try:
            info = self._client().get_job_info(submission_id(handle.job_id))
        except Exception as exc:
            if "does not exist" in str(exc):  # a restarted head has forgotten the job
                return ExecutorStatus(
                    "lost",
                    None,
                    "the Ray head no longer knows this job (it was restarted while the job ran)",
                )
            return ExecutorStatus("unknown", None, f"Ray: {exc}")  # the head is unreachable
        status = _STATUSES.get(str(info.status).split(".")[-1], "running")
        return ExecutorStatus(status, None, info.message or "")

    def stop(self, handle: JobHandle) -> bool:
        return bool(self._client().stop_job(submission_id(handle.job_id)))

    def kill(self, handle: JobHandle) -> bool:
        try:
            return self.stop(handle)
        except Exception:
            return False

    def logs(self, handle: JobHandle, max_bytes: int) -> str:
        try:
            text = str(self._client().get_job_logs(submission_id(handle.job_id)))
        except Exception:  # the head is gone: what was copied into the store remains
            path = handle.workdir / "output.log"
            text = path.read_text(errors="replace") if path.exists() else ""
        return text[-max_bytes:]

    def alive(self, handle: JobHandle) -> bool:
        status = self.status(handle)
        return status is not None and status.status in ("starting", "running")

    def usage(self, handle: JobHandle) -> tuple[float, int]:
        return 0.0, 0  # Ray's dashboard has these; not read here
