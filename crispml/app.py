"""Composition root: builds the services, our routes and middleware, and the Streamlit ``st.App``.

Nothing happens at import time. ``create_app`` is called by ``crispml run`` and by ``asgi.py``.
Middleware order (outermost first):
1. SecurityHeaders - every response, the login page and refusals included;
2. RequestCounter  - Prometheus counts of every answer;
3. OriginCheck     - WebSockets and writes from another origin are refused, logged in or not;
4. AuthGate        - nothing below runs without a login session, except the public paths;
then Streamlit's own middleware and routes, with ours matched first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from crispml import services as services_module
from crispml.core.jobs import SERVICE_KINDS
from crispml.services import Services, bootstrap, build_services
from crispml.serving.api import shared_api
from crispml.serving.app import create_api
from crispml.settings import Settings, load_settings
from crispml.web.files import file_routes
from crispml.web.gate import AuthGate, SecurityHeaders
from crispml.web.health import Metrics, RequestCounter, health_routes
from crispml.web.jobs import job_routes
from crispml.web.jupyter import JupyterProxy
from crispml.web.login import LoginRoutes
from crispml.web.origin import OriginCheck

log = logging.getLogger("crispml")
UI_SCRIPT = Path(__file__).parent / "ui" / "main.py"


@dataclass(frozen=True)
class AppParts:
    """Everything ``st.App`` takes, so the one module-level ``app`` can be written out plainly."""

    script_path: Path
    routes: list[BaseRoute]
    middleware: list[Middleware]
    lifespan: Any
    services: Services

    def app_kwargs(self) -> dict[str, Any]:
        return {
            "routes": self.routes,
            "middleware": self.middleware,
            "lifespan": self.lifespan,
            "on_script_error": on_script_error,
        }


def on_script_error(exc: Exception) -> bool:
    """An unexpected error in a page: a readable message with a reference, never a traceback
    (the traceback goes to the server log under the same reference)."""
    import secrets

    import streamlit as st

    reference = secrets.token_hex(4)
    log.error("page error %s", reference, exc_info=exc)
    st.error(
        f"Something went wrong on this page (reference {reference}). Your work is saved: reload "
        "the page or try again. If it keeps happening, give an admin the reference.",
        icon=":material/error:",
    )
    return True  # the default display is replaced


def announce_admin_password(settings: Settings, password: str) -> None:
    bar = "=" * 72
    print(
        f"\n{bar}\n  First start: created the admin account '{settings.admin_username}'.\n"
        f"  Password (shown only this once): {password}\n"
        f"  Change it on the 'My account' page or with: crispml user passwd "
        f"{settings.admin_username}\n{bar}\n",
        flush=True,
    )


def build_parts(settings: Settings | None = None) -> AppParts:
    settings = settings or load_settings()
    services = build_services(settings)
    services_module.install(services)
    metrics = Metrics(services)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        generated = bootstrap(services)
        if generated:
            announce_admin_password(settings, generated)
        for note in services.jobs.recover():  # jobs whose supervisor died while we were down
            log.warning(note)
        sandbox = services.jobs.runtime.capability()
        if not sandbox.available:
            log.warning("sandbox: %s", sandbox.message)
        else:
            log.info("sandbox: %s", sandbox.message)
        yield {}
        if settings.services_on_shutdown == "stop":  # else they run on, reattached at start
            count = services.jobs.stop_all(None, actor="shutdown", kinds=SERVICE_KINDS)
            log.info("stopped %d service(s) at shutdown (services_on_shutdown = stop)", count)
        services.db.dispose()

    routes: list[BaseRoute] = [
        *LoginRoutes(services).routes(),
        *health_routes(services, metrics),
        *file_routes(services),
        *job_routes(services),
        *JupyterProxy(services).routes(),
        Mount("/api", app=create_api(shared_api(services))),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(RequestCounter, metrics=metrics),
        Middleware(OriginCheck, public_url=settings.public_url),
        Middleware(AuthGate, authenticate=services.auth.authenticate),
    ]
    return AppParts(UI_SCRIPT, routes, middleware, lifespan, services)


def streamlit_config(settings: Settings) -> dict[str, Any]:
    """Streamlit options crispml sets; the rest keep Streamlit's defaults."""
    config: dict[str, Any] = {
        "server.address": settings.host,
        "server.port": settings.port,
        "server.headless": True,
        "server.runOnSave": False,
        "server.fileWatcherType": "none",
        "browser.gatherUsageStats": False,
        "client.toolbarMode": "minimal",
        "client.showErrorDetails": "none",
        "theme.primaryColor": "#0f766e",
        "logger.level": settings.log_level,
        "server.maxUploadSize": settings.max_upload_mb,
        # Streamlit runs a full collection after every script run, fragments included: about
        # 250 ms of a core with crispml's modules loaded, every 2 s for a page that shows live
        # jobs. Python's own generational collection stays on, and the heap alive after the
        # first page run is frozen (``context.freeze_startup_heap``) so it is not walked again.
        "runner.postScriptGC": False,
    }
    if settings.public_url:  # behind a proxy that rewrites Host, Streamlit's own WebSocket
        config["server.corsAllowedOrigins"] = [settings.public_url]  # check must know it too
    if settings.uses_tls:
        config["server.sslCertFile"] = str(settings.ssl_certfile)
        config["server.sslKeyFile"] = str(settings.ssl_keyfile)
    return config


def create_app(settings: Settings | None = None) -> Any:
    import streamlit as st

    parts = build_parts(settings)
    return st.App(parts.script_path, **parts.app_kwargs())
