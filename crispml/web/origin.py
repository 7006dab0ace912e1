"""The Origin check: pure ASGI middleware that refuses cross-origin WebSockets and writes.

Security note: the session cookie is ``SameSite=Lax``, and browsers count every port of a host as
the same *site*, so a page served from another port of our host (or a sibling subdomain) would get
the cookie sent along with its requests. This middleware closes that gap for every route at once,
Streamlit's and the Jupyter proxy's included, by comparing the browser's ``Origin`` with the app's
own exact origin (scheme, host and port):

- the app's origin is ``public_url`` when set (behind a reverse proxy), else the one the request
  itself names: its scheme (``https`` when uvicorn trusts the proxy's ``X-Forwarded-Proto``) and
  its ``Host`` header;
- checked: every WebSocket handshake, and every HTTP request whose method is not GET, HEAD or
  OPTIONS (POST, PUT, PATCH, DELETE and anything else that may change state);
- ``Origin: null``, a malformed Origin and any other origin are refused; an HTTP request without
  Origin is judged by its ``Referer`` when it has one; a request with neither comes from a
  program (the CLI, curl), which a browser never is on a cross-origin write or a WebSocket, so it
  passes (the auth gate still wants its session cookie);
- the model API under ``/api/`` is left out: programs call it with API keys in headers, never
  with a browser cookie, so a cross-origin page gains nothing there.

Refusals: a WebSocket handshake gets HTTP 403 before it is accepted; an HTTP request gets 403 with
a JSON message, or the readable login-style page when a browser form posted it.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from crispml.web.gate import KEY_PREFIXES
from crispml.web.login import _alert, _page  # the login page's look, for refused forms

log = logging.getLogger("crispml.origin")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}
WS_SCHEMES = {"ws": "http", "wss": "https"}
MESSAGE = (
    "This request came from another site or address than crispml's own, so it was refused. "
    "Open crispml at its own address and try again."
)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL, lower-case, without a default port;
    None for anything else (``null``, relative or malformed URLs, other schemes, user info)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in DEFAULT_PORTS or not host or parts.username is not None:
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def request_origin(scope: Scope) -> str | None:
    """The origin the browser addressed: the request's scheme and its Host header."""
    scheme = str(scope.get("scheme") or "http")
    scheme = WS_SCHEMES.get(scheme, scheme)
    host = _header(scope, b"host")
    if not host and scope.get("server"):
        server_host, server_port = scope["server"][0], scope["server"][1]
        host = (
            f"[{server_host}]:{server_port}"
            if ":" in server_host
            else f"{server_host}:{server_port}"
        )
    return origin_of(f"{scheme}://{host}") if host else None


class OriginCheck:
    def __init__(self, app: ASGIApp, *, public_url: str = "") -> None:
        self.app = app
        self.public_origin = origin_of(public_url) if public_url else None
        if public_url and self.public_origin is None:
            raise ValueError(f"public_url {public_url!r} is not an http(s) URL")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.needs_check(scope):
            await self.app(scope, receive, send)
            return
        claimed = self.claimed_origin(scope)
        if claimed is None:  # no Origin and no Referer: a program, not a browser
            await self.app(scope, receive, send)
            return
        expected = self.public_origin or request_origin(scope)
        if expected is not None and origin_of(claimed) == expected:
            await self.app(scope, receive, send)
            return
        log.warning(
            "refused a cross-origin %s %s from %r (this app's origin: %s)",
            scope.get("method", "WebSocket"),
            scope["path"],
            claimed[:200],
            expected,
        )
        await _refuse(scope, receive, send)

    @staticmethod
    def needs_check(scope: Scope) -> bool:
        if scope["type"] == "websocket":
            return True
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            return False
        return not str(scope["path"]).startswith(KEY_PREFIXES)

    @staticmethod
    def claimed_origin(scope: Scope) -> str | None:
        """Origin when sent (``null`` included); for HTTP, else Referer; else None."""
        origin = _header(scope, b"origin")
        if origin is not None or scope["type"] == "websocket":
            return origin
        referer = _header(scope, b"referer")
        return referer or None


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"cache-control", b"no-store"), (b"content-type", b"application/json")]
    body = json.dumps({"detail": MESSAGE}).encode()
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:  # closed before accept: the server answers 403
            await send({"type": "websocket.close", "code": 1008, "reason": "cross-origin"})
        return
    if scope["path"] in ("/login", "/logout") or "text/html" in (_header(scope, b"accept") or ""):
        link = '<p><a href="/">Open crispml</a></p>'
        await _page("Refused", _alert("error", MESSAGE) + link, 403)(scope, receive, send)
        return
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
