"""/healthz (public: can the database and the disk be written now?) and /metrics (admins)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crispml import __version__
from crispml.core.auth import AuthSession
from crispml.services import Services


class Metrics:
    """The app's own Prometheus registry (not the process-global one, so tests stay isolated)."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "crispml_http_requests",
            "HTTP requests answered",
            ["method", "status"],
            registry=self.registry,
        )
        self.sessions = Gauge(
            "crispml_active_login_sessions", "Login sessions still valid", registry=self.registry
        )
        self.sessions.set_function(services.auth.count_active_sessions)
        Gauge("crispml_info", "crispml version", ["version"], registry=self.registry).labels(
            __version__
        ).set(1)


class RequestCounter:
    """Pure ASGI middleware that counts HTTP responses by method and status."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(scope["method"], str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counted)


def check_parts(services: Services) -> dict[str, dict[str, object]]:
    """What /healthz reports: whether a write can be made now, to the database and to the disk
    of CRISPML_HOME (users' files, runs, models), and why not."""
    database = services.db.write_check()
    disk = disk_check(services.settings.home)
    return {
        "database": {"ok": not database, **({"problem": database} if database else {})},
        "disk": {"ok": not disk, **({"problem": disk} if disk else {})},
    }


def disk_check(home: Path) -> str:
    """'' when a small file can be written, synced and removed in ``home``, else why not."""
    probe = home / f".healthz-{os.getpid()}"
    try:
        with probe.open("wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        free = shutil.disk_usage(home).free // 1_000_000 if home.exists() else 0
        why = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        return f"Files cannot be written in CRISPML_HOME: {why} ({free} MB free)."
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return ""


def health_routes(services: Services, metrics: Metrics) -> list[Route]:
    async def healthz(request: Request) -> Response:
        parts = await run_in_threadpool(check_parts, services)
        ok = all(part["ok"] for part in parts.values())
        body = {"status": "ok" if ok else "failing", **parts, "version": __version__}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        auth = getattr(request.state, "auth", None)
        if not isinstance(auth, AuthSession) or not auth.user.is_admin:
            return JSONResponse({"detail": "Metrics are for admins."}, status_code=403)
        data = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
