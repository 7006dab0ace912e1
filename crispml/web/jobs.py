"""/jobs/<id>/log: a job's full log as a download, for its owner or an admin."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from crispml.core.auth import AuthSession
from crispml.core.errors import NotFound
from crispml.services import Services


def job_routes(services: Services) -> list[Route]:
    async def log(request: Request) -> Response:
        auth = getattr(request.state, "auth", None)
        if not isinstance(auth, AuthSession):
            return JSONResponse({"detail": "Login required."}, status_code=401)
        try:
            job = services.jobs.get(
                auth.user.id, request.path_params["job_id"], admin=auth.user.is_admin
            )
        except NotFound as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        path = services.jobs.log_path(job)
        if not path.exists():
            return JSONResponse({"detail": "This job has written no output yet."}, status_code=404)
        return FileResponse(
            path,
            media_type="text/plain; charset=utf-8",
            filename=f"{job.name}-{job.id}.log",
            headers={"x-content-type-options": "nosniff"},
        )

    return [Route("/jobs/{job_id}/log", log, methods=["GET", "HEAD"])]
