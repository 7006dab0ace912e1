"""``crispml run`` (the web app) and ``crispml serve`` (the model API)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated

import typer

from crispml.cli._common import cli_settings, open_services


def run(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8501).")] = None,
) -> None:
    """Start the web app: login, the Streamlit workbench and the API on one port."""
    from crispml.app import create_app, streamlit_config

    settings = cli_settings(host=host, port=port)
    if settings.exposed_without_tls:
        typer.secho(
            f"WARNING: binding to {settings.host} without TLS. Passwords and session cookies "
            "would cross the network in clear text. Put crispml behind an HTTPS reverse proxy "
            "or set ssl_certfile and ssl_keyfile.",
            fg="yellow",
            err=True,
        )
    # Streamlit signs its own cookies (XSRF for uploads); derive its key from ours so they stay
    # valid across restarts. It is a "sensitive" option, settable only through the environment.
    os.environ.setdefault(
        "STREAMLIT_SERVER_COOKIE_SECRET",
        hashlib.sha256(b"streamlit:" + settings.load_secret_key()).hexdigest(),
    )
    scheme = "https" if settings.uses_tls else "http"
    typer.echo(f"crispml: serving on {scheme}://{settings.host}:{settings.port}", err=True)
    create_app(settings).run(config=streamlit_config(settings))


def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="A registered model to serve, NAME or NAME:VERSION (repeatable). "
            "Default: the deployed versions, followed as they are deployed and undeployed."
        ),
    ] = None,
    public: Annotated[
        bool, typer.Option(help="Serve without API keys: anyone who reaches the port may predict.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Bind address (setting api_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (setting api_port, 8503).")] = None,
    database_url_file: Annotated[
        Path | None,
        typer.Option(help="Read the database URL from this file (not from argv).", hidden=True),
    ] = None,
) -> None:
    """Serve registered models over REST (the article's /models, /configs, /base64, /predict
    and MLflow's /invocations), behind API keys."""
    import uvicorn

    from crispml.serving.api import model_api
    from crispml.serving.app import create_api
    from crispml.serving.server import limit_malloc_arenas, server_options

    limit_malloc_arenas()
    database_url = None  # not given: the settings' own
    if database_url_file is not None:
        database_url = database_url_file.read_text().strip() or None
    with open_services(database_url=database_url) as services:
        settings = services.settings
        host = host or settings.api_host
        port = port or settings.api_port
        api = model_api(services, model or [], public=public)
        api.refresh()  # an unknown --model is an error now, not at the first request
        if public:
            typer.secho(
                "WARNING: --public: no API key is needed; anyone who reaches "
                f"{host}:{port} may use the models.",
                fg="yellow",
                err=True,
            )
        typer.echo(f"crispml: model API on http://{host}:{port} (docs at /docs)", err=True)
        uvicorn.run(
            create_api(api), host=host, port=port, log_level=settings.log_level, **server_options()
        )
