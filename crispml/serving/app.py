"""The model API: FastAPI, speaking the article's protocol (``/models``, ``/configs``,
``/base64``, ``/predict``) and MLflow's ``/invocations``, behind API keys.

    crispml serve [--model NAME[:VERSION] ...] [--public] [--port 8503]

Every request needs an API key (``Authorization: Bearer cml_...`` or ``X-API-Key``) unless the
server runs ``--public``. Bad input gets a 4xx whose message names the problem and the item; an
unexpected error gets a 500 with a request id (the traceback goes to the server log under it).

This module assembles the app; its parts: the state the routes share (api.py: the served models
in registry.py, keys.py, inputs.py, predictions.py), the routes (routes/, one module per
resource) and the OpenAPI schemas (schemas.py).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from crispml.core.errors import CrispmlError, NotFound, Unavailable
from crispml.serving.api import ModelApi
from crispml.serving.limits import BodyLimit
from crispml.serving.models import WorkerCrashed
from crispml.serving.routes import routers
from crispml.serving.schemas import with_examples

log = logging.getLogger("crispml.serving")


async def _known(_request: Request, exc: Exception) -> JSONResponse:
    """A CrispmlError: 404 for what does not exist, 503 for a fault of the database or disk,
    400 for the rest (bad input), with its message."""
    status = 404 if isinstance(exc, NotFound) else 503 if isinstance(exc, Unavailable) else 400
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    """A 500 with a request id; the traceback goes to the log under it."""
    reference = secrets.token_hex(4)
    if isinstance(exc, WorkerCrashed):  # the worker restarts; the traceback says nothing
        log.error("model API error %s: %s; restarting it", reference, exc)
    else:
        log.error("model API error %s", reference, exc_info=exc)
    return JSONResponse(
        {"detail": f"The server failed on this request (request id {reference}).",
         "request_id": reference},
        status_code=500,
    )  # fmt: skip


def create_api(api: ModelApi) -> FastAPI:
    """The model API's app over ``api`` (which it refreshes on start and closes on stop)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(api.refresh)
        try:
            yield
        finally:
            await run_in_threadpool(api.close)

    app = FastAPI(
        title="crispml model API",
        description="Registered models behind API keys; the article's protocol and MLflow's.",
        lifespan=lifespan,
    )
    # The whole body counted as it arrives (chunked too), before any route buffers it.
    app.add_middleware(
        BodyLimit, max_bytes=api.limits.max_request_bytes, setting="api_max_request_mb"
    )
    app.add_exception_handler(CrispmlError, _known)
    app.add_exception_handler(Exception, _unexpected)
    for router in routers(api):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        """The document, with the served models' names as examples (made anew each time)."""
        from fastapi.openapi.utils import get_openapi

        document = get_openapi(title=app.title, version="1", routes=app.routes,
                               description=app.description)  # fmt: skip
        return with_examples(document, api.registry.public_weights())

    app.openapi = openapi  # type: ignore[method-assign]
    return app
