"""/jobs/<id>/log and /jobs/<id>/metrics.csv: a job's full log and its metrics (every point of
every source, as CSV) as downloads, for its owner or an admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from crispml.core.auth import AuthSession
from crispml.core.errors import NotFound
from crispml.core.jobs import Job
from crispml.core.records import open_job_file
from crispml.core.tracking import TRACKERS
from crispml.services import Services


async def _job(services: Services, request: Request) -> Job | JSONResponse:
    auth = getattr(request.state, "auth", None)
    if not isinstance(auth, AuthSession):
        return JSONResponse({"detail": "Login required."}, status_code=401)
    try:
        return await run_in_threadpool(
            services.jobs.get, auth.user.id, request.path_params["job_id"], admin=auth.user.is_admin
        )
    except NotFound as exc:
        return JSONResponse({"detail": str(exc)}, status_code=404)


def job_routes(services: Services) -> list[Route]:
    async def log(request: Request) -> Response:
        job = await _job(services, request)
        if isinstance(job, JSONResponse):
            return job
        try:  # never a link a job put in its log's place
            opened = open_job_file(services.jobs.log_path(job))
        except OSError:
            return JSONResponse({"detail": "This job has written no output yet."}, status_code=404)

        def chunks() -> Iterator[bytes]:
            with opened:
                while chunk := opened.read(1 << 16):
                    yield chunk

        name = f"{job.name}-{job.id}.log".replace('"', "")
        return StreamingResponse(
            iterate_in_threadpool(chunks()),
            media_type="text/plain; charset=utf-8",
            headers={
                "x-content-type-options": "nosniff",
                "content-disposition": f"attachment; filename*=utf-8''{quote(name)}",
            },
        )

    async def metrics(request: Request) -> Response:
        job = await _job(services, request)
        if isinstance(job, JSONResponse):
            return job
        folder = Path(job.workdir)
        patterns = services.settings.log_metric_patterns
        tracker = await run_in_threadpool(TRACKERS.refreshed, folder, patterns)
        if not tracker.series:
            return JSONResponse({"detail": "This job has logged no metrics."}, status_code=404)
        name = f"{job.name}-{job.id}-metrics.csv".replace('"', "")
        return StreamingResponse(
            iterate_in_threadpool(tracker.csv_lines()),
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="{name}"',
                "x-content-type-options": "nosniff",
            },
        )

    return [
        Route("/jobs/{job_id}/log", log, methods=["GET", "HEAD"]),
        Route("/jobs/{job_id}/metrics.csv", metrics, methods=["GET", "HEAD"]),
    ]
