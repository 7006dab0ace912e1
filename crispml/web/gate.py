"""The auth gate: pure ASGI middleware in front of every HTTP and WebSocket request.

Security note: this is the only thing between the network and the app. It must stay pure ASGI
(a BaseHTTPMiddleware would not see WebSocket requests). Without a valid login session:
- page requests (GET/HEAD that accept HTML) are redirected to /login?next=<path>;
- every other HTTP request gets 401 with a JSON message;
- WebSocket handshakes (Streamlit's /_stcore/stream included) are refused before accept (HTTP 403).
Only PUBLIC_PATHS, and the model API under /api/ (it requires API keys itself), pass without a
session. Valid sessions put the user in scope["state"]["auth"].
Authenticated HTML responses get ``Cache-Control: no-store`` so the back button after logout
cannot show a cached page.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from urllib.parse import quote

import anyio.to_thread
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crispml.core.auth import SESSION_COOKIE, AuthSession
from crispml.core.errors import Unavailable

log = logging.getLogger("crispml.web")

PUBLIC_PATHS = frozenset({"/login", "/healthz", "/login/style.css"})
# The model API checks API keys itself (clients are programs, not browser sessions).
KEY_PREFIXES = ("/api/",)

Authenticator = Callable[[str | None], AuthSession | None]


def header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def cookie(scope: Scope, name: str) -> str | None:
    """One cookie, parsed leniently as browsers send them (and as Starlette's routes read them):
    another site's odd cookie on the same host must not hide ours."""
    raw = header(scope, b"cookie")
    return cookie_parser(raw).get(name) if raw else None


def clear_cookie_header(name: str) -> tuple[bytes, bytes]:
    return (b"set-cookie", f"{name}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax".encode())


def wants_page(scope: Scope) -> bool:
    return scope.get("method") in ("GET", "HEAD") and "text/html" in header(scope, b"accept")


class AuthGate:
    def __init__(self, app: ASGIApp, *, authenticate: Authenticator) -> None:
        self.app = app
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = cookie(scope, SESSION_COOKIE)
        try:
            auth = await anyio.to_thread.run_sync(self.authenticate, token) if token else None
        except Unavailable as exc:  # the database is down or full: say so, keep the cookie
            log.warning("%s (%s)", exc, exc.detail)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1013, "reason": "try again later"})
            elif scope["path"] in PUBLIC_PATHS:  # /healthz and the login page report it
                await self.app(scope, receive, send)
            else:
                await unavailable(scope, send, str(exc))
            return
        if auth is not None:
            scope.setdefault("state", {})["auth"] = auth
            await self.app(
                scope, receive, _no_store_html(send) if scope["type"] == "http" else send
            )
            return
        if scope["type"] == "http" and (
            scope["path"] in PUBLIC_PATHS or scope["path"].startswith(KEY_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "login required"})
            return
        await _refuse_http(scope, send, had_cookie=token is not None)


async def _refuse_http(scope: Scope, send: Send, *, had_cookie: bool) -> None:
    headers: list[tuple[bytes, bytes]] = [(b"cache-control", b"no-store")]
    if had_cookie:  # forged, expired, revoked or of a disabled user: drop it
        headers.append(clear_cookie_header(SESSION_COOKIE))
    if wants_page(scope):
        target = scope["path"] + (
            "?" + scope["query_string"].decode() if scope.get("query_string") else ""
        )
        location = "/login?next=" + quote(target, safe="")
        if had_cookie:
            location += "&expired=1"
        headers.append((b"location", location.encode()))
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    body = json.dumps({"detail": "Login required."}).encode()
    headers += [
        (b"content-type", b"application/json"),
        (b"www-authenticate", b'Cookie realm="crispml"'),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def unavailable(scope: Scope, send: Send, message: str) -> None:
    """503 with the reason: a small page for browsers, JSON for programs."""
    headers: list[tuple[bytes, bytes]] = [(b"cache-control", b"no-store"), (b"retry-after", b"5")]
    if wants_page(scope):
        body = (
            "<!doctype html><meta charset=utf-8><title>crispml: unavailable</title>"
            "<main style='font-family:sans-serif;max-width:40em;margin:4em auto'>"
            f"<h1>crispml cannot answer now</h1><p>{html.escape(message)}</p>"
            "<p><a href=''>Try again</a></p></main>"
        ).encode()
        headers.append((b"content-type", b"text/html; charset=utf-8"))
    else:
        body = json.dumps({"detail": message}).encode()
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _no_store_html(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            if content_type.startswith(b"text/html"):
                headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
        await send(message)

    return wrapped


class SecurityHeaders:
    """Headers every response gets: no MIME sniffing, no cross-origin framing, no referrer leak."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in (
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"SAMEORIGIN"),
                    (b"referrer-policy", b"same-origin"),
                ):
                    if key not in present:
                        headers.append((key, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, wrapped)
