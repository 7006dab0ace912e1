"""/jupyter/<user>/...: the same-origin proxy to each user's JupyterLab, HTTP and WebSocket.

Security note. The auth gate has already required a crispml login. Here:
- only the owner of ``<user>``'s server (who must still be allowed notebooks) or an admin gets
  through; anyone else gets 403 (HTTP) or a refused handshake (WebSocket);
- the proxy authenticates to Jupyter itself. It logs in once per server start with the token
  (server-side) and keeps Jupyter's login cookie to itself: neither the token nor that cookie
  ever reaches the browser (the token is also removed from the pages and JSON Jupyter sends,
  such as JupyterLab's page config). crispml's own cookies and any client ``Authorization`` are
  not passed on;
- requests reach Jupyter cookie-authenticated, so Jupyter's own XSRF check (``_xsrf`` cookie and
  ``X-XSRFToken`` header) applies to every non-GET request. The browser's ``Origin`` is
  translated to Jupyter's only when it is this app's own origin; a foreign origin is passed on
  unchanged and Jupyter's origin check refuses it;
- Jupyter's Content-Security-Policy allows framing by the app's own origin only;
- each JupyterLab listens on a Unix socket in its owner's notebook folder (mode 0600, inside the
  owner's sandbox): no TCP port, so no other process or user on this machine can connect.
Upstream failures answer 502 with a readable page; nothing waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from html import escape
from http.cookiejar import CookieJar
from http.cookies import SimpleCookie
from typing import Any

import httpx
import websockets
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from crispml.core.auth import USERNAME_RE, AuthSession
from crispml.core.notebook import Upstream
from crispml.services import Services

log = logging.getLogger("crispml.jupyter")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Request headers never passed on: hop-by-hop, ours to set, and the WebSocket handshake's own.
DROP_REQUEST = HOP_BY_HOP | {
    "host",
    "referer",
    "authorization",
    "cookie",
    "origin",
    "content-length",
    "accept-encoding",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
}
# Cookies that pass, both ways: Jupyter's XSRF cookie only. crispml's own cookies never reach
# Jupyter, and a (user-controlled) Jupyter cannot set cookies on the app's origin.
PASS_COOKIES = frozenset({"_xsrf"})
SCRUB_MAX = 8 * 1024 * 1024  # JupyterLab's pages (they hold the token) are a few KB
LOOKUP_TTL_S = 1.0  # how long a user's server lookup is reused (a Lab page makes many requests)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Each JupyterLab listens on a Unix socket; requests to it name this host.
INNER_HOST = "localhost"
INNER = f"http://{INNER_HOST}"


class _NoCookies(CookieJar):
    """httpx keeps no cookies: one user's Jupyter cookie must never go to another's server."""

    def set_cookie(self, cookie: Any) -> None:
        return None

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def _page(status: int, title: str, message: str) -> HTMLResponse:
    body = (
        f"<!doctype html><meta charset=utf-8><title>crispml: {escape(title)}</title>"
        f"<body style='font-family:system-ui;margin:3rem;max-width:42rem'>"
        f"<h1>{escape(title)}</h1><p>{escape(message)}</p>"
        f"<p><a href='/notebook' target='_top'>Go to the Notebook page</a></p></body>"
    )
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


class JupyterProxy:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._clients: dict[str, httpx.AsyncClient] = {}  # one per server socket
        self._logins: dict[str, str] = {}  # job id -> Jupyter's login cookie ("name=value")
        self._login_locks: dict[str, asyncio.Lock] = {}
        self._lookups: dict[str, tuple[float, Upstream | None]] = {}

    def client(self, upstream: Upstream) -> httpx.AsyncClient:
        """A client that reaches this server over its Unix socket (no TCP port anywhere)."""
        if not _is_socket(upstream.socket):
            raise httpx.ConnectError("JupyterLab's socket is missing")
        client = self._clients.get(upstream.socket)
        if client is None:
            while len(self._clients) >= 64:
                self._clients.pop(next(iter(self._clients)))  # closed when collected
            client = self._clients[upstream.socket] = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=upstream.socket),
                cookies=_NoCookies(),
                follow_redirects=False,
                timeout=httpx.Timeout(30.0, read=300.0),
                trust_env=False,
            )
        return client

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/jupyter/{user}", self.to_lab, methods=["GET", "HEAD"]),
            Route("/jupyter/{user}/{path:path}", self.http, methods=METHODS),
            WebSocketRoute("/jupyter/{user}/{path:path}", self.websocket),
        ]

    # --- who may pass ------------------------------------------------------------------------

    async def _upstream(self, auth: Any, owner: str) -> Upstream | str:
        """The owner's server, or why the caller may not reach it / it cannot be reached."""
        if not isinstance(auth, AuthSession):
            return "forbidden"  # the gate lets no one without a session this far
        user = auth.user
        if not USERNAME_RE.fullmatch(owner):
            return "forbidden"
        if user.username != owner and not user.is_admin:
            return "forbidden"
        if user.username == owner and not self.services.notebooks.allowed(user):
            return "forbidden"
        cached = self._lookups.get(owner)
        if cached is not None and time.monotonic() - cached[0] < LOOKUP_TTL_S:
            upstream = cached[1]
        else:
            upstream = await run_in_threadpool(self.services.notebooks.upstream, owner)
            self._lookups[owner] = (time.monotonic(), upstream)
        return upstream if upstream is not None else "not running"

    async def _login_cookie(self, upstream: Upstream, *, renew: bool = False) -> str:
        """Jupyter's login cookie for this server start, got with the token, kept here."""
        if not renew and upstream.job_id in self._logins:
            return self._logins[upstream.job_id]
        lock = self._login_locks.setdefault(upstream.job_id, asyncio.Lock())
        async with lock:  # a Lab page's first burst of requests logs in once
            if not renew and upstream.job_id in self._logins:
                return self._logins[upstream.job_id]
            return await self._login(upstream)

    async def _login(self, upstream: Upstream) -> str:
        response = await self.client(upstream).get(
            f"{INNER}{upstream.base_url}api/me",
            headers={"Authorization": f"token {upstream.token}"},
        )
        jar: SimpleCookie = SimpleCookie()
        for value in response.headers.get_list("set-cookie"):
            jar.load(value)
        login = next((f"{k}={m.value}" for k, m in jar.items() if k.startswith("username-")), "")
        if response.status_code != 200 or not login:
            raise httpx.HTTPError(f"login to JupyterLab failed ({response.status_code})")
        self._logins.pop(upstream.job_id, None)
        self._logins[upstream.job_id] = login
        while len(self._logins) > 64:
            self._logins.pop(next(iter(self._logins)))
        return login

    def _headers(
        self, request: Request | WebSocket, upstream: Upstream, login: str
    ) -> list[tuple[str, str]]:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in DROP_REQUEST]
        kept = [f"{n}={v}" for n, v in request.cookies.items() if n in PASS_COOKIES]
        headers.append(("cookie", "; ".join([*kept, login])))
        headers.append(("accept-encoding", "identity"))
        own = f"{request.url.scheme.replace('ws', 'http')}://{request.url.netloc}"
        inner = INNER
        origin = request.headers.get("origin")
        if origin is not None:
            headers.append(("origin", inner if origin == own else origin))
        referer = request.headers.get("referer")
        if referer is not None:  # Jupyter compares a GET's Referer with its Host
            inside = referer == own or referer.startswith(own + "/")
            headers.append(("referer", inner + referer[len(own) :] if inside else referer))
        return headers

    # --- HTTP --------------------------------------------------------------------------------

    async def to_lab(self, request: Request) -> Response:
        return RedirectResponse(f"/jupyter/{request.path_params['user']}/lab", status_code=307)

    async def http(self, request: Request) -> Response:
        owner = request.path_params["user"]
        found = await self._upstream(getattr(request.state, "auth", None), owner)
        if found == "forbidden":
            return _page(403, "Not yours", "This JupyterLab belongs to another user.")
        if isinstance(found, str):
            return _page(
                502,
                "JupyterLab is not running",
                f"{owner}'s JupyterLab is not running. Start it on the Notebook page.",
            )
        target = f"{INNER}{_raw_path(request.scope)}"
        body = await request.body()
        client = self.client(found)
        try:
            for attempt in range(2):
                login = await self._login_cookie(found, renew=attempt > 0)
                upstream = await client.send(
                    client.build_request(
                        request.method,
                        target,
                        headers=self._headers(request, found, login),
                        content=body,
                    ),
                    stream=True,
                )
                expired = upstream.status_code in (401, 403) or (
                    upstream.status_code == 302 and "/login" in upstream.headers.get("location", "")
                )
                if not expired or attempt or request.method not in ("GET", "HEAD"):
                    break
                await upstream.aclose()  # the login may have expired: once more, logged in anew
            return await self._response(upstream, found)
        except httpx.HTTPError as exc:
            log.warning("jupyter proxy: %s's server: %s", owner, exc)
            return _page(
                502,
                "JupyterLab is not answering",
                f"{owner}'s JupyterLab did not answer ({type(exc).__name__}). It may have "
                "stopped or be starting; try again, or restart it on the Notebook page.",
            )

    async def _response(self, upstream: httpx.Response, found: Upstream) -> Response:
        headers: list[tuple[str, str]] = []
        for key, value in upstream.headers.multi_items():
            name = key.lower()
            if name in HOP_BY_HOP or name == "content-length":
                continue
            if name == "set-cookie" and value.split("=", 1)[0].strip() not in PASS_COOKIES:
                continue  # Jupyter's login cookie stays with the proxy; no other cookie passes
            if name == "location":
                value = value.replace(INNER, "")
            headers.append((key, value))
        if upstream.headers.get("content-type", "").startswith("text/html"):
            data = bytearray()  # pages carry the token in their config: read, scrub, send
            try:
                async for chunk in upstream.aiter_raw():
                    data += chunk
                    if len(data) > SCRUB_MAX:
                        raise httpx.HTTPError("a page larger than the proxy reads")
            finally:
                await upstream.aclose()
            body = bytes(data).replace(found.token.encode(), b"")  # never to the browser
            response = Response(body, status_code=upstream.status_code)
        else:
            response = StreamingResponse(
                upstream.aiter_raw(),
                status_code=upstream.status_code,
                background=BackgroundTask(upstream.aclose),
            )
        for key, value in headers:
            response.headers.append(key, value)
        return response

    # --- WebSocket ---------------------------------------------------------------------------

    async def websocket(self, websocket: WebSocket) -> None:
        owner = websocket.path_params["user"]
        found = await self._upstream(websocket.scope.get("state", {}).get("auth"), owner)
        if isinstance(found, str):
            await websocket.close(code=1008, reason=found)
            return
        target = f"ws://{INNER_HOST}{_raw_path(websocket.scope)}"
        requested = websocket.scope.get("subprotocols") or None
        upstream = None
        if not _is_socket(found.socket):
            await websocket.close(code=1011, reason="JupyterLab is not running")
            return
        for attempt in range(2):
            try:
                login = await self._login_cookie(found, renew=attempt > 0)
                upstream = await websockets.unix_connect(
                    found.socket,
                    target,
                    additional_headers=self._headers(websocket, found, login),
                    subprotocols=requested,
                    proxy=None,
                    max_size=None,
                    compression=None,
                    open_timeout=15,
                )
                break
            except websockets.InvalidStatus as exc:
                if attempt or exc.response.status_code not in (401, 403):
                    log.warning("jupyter proxy: websocket to %s's server: %s", owner, exc)
                    break  # refused (another origin, say): not a login to renew
            except (OSError, httpx.HTTPError, websockets.WebSocketException) as exc:
                log.warning("jupyter proxy: websocket to %s's server: %s", owner, exc)
                break
        if upstream is None:
            await websocket.close(code=1011, reason="JupyterLab refused or did not answer")
            return
        async with upstream:
            await websocket.accept(subprotocol=upstream.subprotocol)
            await _pump(websocket, upstream)


def _is_socket(path: str) -> bool:
    """A socket itself, not a link: the folder is the user's, and the proxy must not be sent
    to another socket of this machine."""
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _raw_path(scope: Any) -> str:
    """The path as the browser sent it (still percent-encoded), with its query."""
    raw = scope.get("raw_path") or scope["path"].encode()
    path = str(raw.decode("latin-1"))
    query = scope.get("query_string") or b""
    return path + ("?" + query.decode("latin-1") if query else "")


def _sendable(code: int) -> int:
    """Close codes that may be sent (1005, 1006 and 1015 only describe a closed connection)."""
    return 1000 if code in (1005, 1006) else 1011 if code == 1015 else code


async def _pump(client: WebSocket, upstream: Any) -> None:
    """Frames both ways, text as text and binary as binary, until either side closes."""

    async def to_upstream() -> None:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(code=_sendable(message.get("code", 1000)))
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async def to_client() -> None:
        try:
            async for frame in upstream:
                if isinstance(frame, str):
                    await client.send_text(frame)
                else:
                    await client.send_bytes(frame)
        except websockets.ConnectionClosed:
            pass
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await client.close(code=_sendable(upstream.close_code or 1000))

    tasks = [asyncio.create_task(to_upstream()), asyncio.create_task(to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
