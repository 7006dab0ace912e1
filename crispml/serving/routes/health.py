"""``/healthz`` and ``/readyz``: liveness and readiness, no key needed."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from crispml.serving.api import ModelApi
from crispml.serving.schemas import Health, Readiness


def router(api: ModelApi) -> APIRouter:
    routes = APIRouter()

    @routes.get("/healthz")
    async def healthz() -> Health:
        """Liveness: the server answers (no key needed)."""
        return Health(status="ok")

    @routes.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"description": "No model loaded, or one failed."}},
    )
    async def readyz() -> JSONResponse:
        """Readiness (no key needed): the loaded weights, and under ``failed`` the versions
        that cannot be loaded (the reasons go to the log); 503 until a model is loaded or while
        one fails."""
        registry = api.registry
        if registry.due():
            await run_in_threadpool(registry.refresh)
        ready = bool(registry.models) and not registry.failed
        body = {
            "ready": ready,
            "models": sorted(registry.models),
            "failed": sorted(registry.failed),
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    return routes
