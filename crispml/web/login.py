"""The login page, login form POST and logout: our own routes, not Streamlit pages.

Security note: the login form is protected against CSRF by a keyed token bound to a per-browser
nonce cookie (crispml.core.tokens), and by the Origin check in front of every route
(crispml.web.origin). Form bodies are read up to ``max_form_bytes`` and parsed by us, so an
oversized or malformed post gets a readable 4xx page.
The session cookie is HttpOnly, SameSite=Lax, Secure over HTTPS, and a new token is issued on every
login. ``next`` only ever redirects within this site. Failed logins are throttled per client
address: the connection's, or X-Forwarded-For's only from a proxy listed in ``trusted_proxies``.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Sequence
from html import escape
from importlib import resources
from urllib.parse import parse_qs, quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from crispml import __version__
from crispml.core import tokens
from crispml.core.auth import SESSION_COOKIE, AuthSession, LoginFailed
from crispml.core.errors import Unavailable
from crispml.services import Services

CSRF_COOKIE = "crispml_csrf"
LOGO = (
    '<svg viewBox="0 0 36 36" aria-hidden="true"><rect width="36" height="36" rx="8" '
    'fill="#0f766e"/><path d="M9 24 L15 14 L21 20 L27 10" stroke="#fff" stroke-width="3" '
    'fill="none" stroke-linecap="round" stroke-linejoin="round"/><circle cx="27" cy="10" r="2.5" '
    'fill="#5eead4"/></svg>'
)


LOGO_ICON = LOGO.replace('aria-hidden="true"', 'xmlns="http://www.w3.org/2000/svg"')


class BadForm(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (other sites, odd schemes) becomes '/'."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return "/"
    return target


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> str | None:
    """``text`` as a canonical IP address (a port, as some proxies add, dropped), else None."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_address(request: Request, trusted_proxies: Sequence[Network]) -> str:
    """The client's IP address, for login throttling and the sessions list.

    The connection's address, unless that is a trusted proxy: then X-Forwarded-For is read
    from the right (the entries proxies appended), skipping trusted proxies, and the first other
    entry is the client. What a client wrote into the header itself lies further left.
    """
    peer = request.client.host if request.client else ""

    def trusted(text: str) -> bool:
        ip = _ip(text)
        return ip is not None and any(ipaddress.ip_address(ip) in n for n in trusted_proxies)

    if not trusted(peer):
        return peer
    hops = [hop for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")]
    for hop in reversed(hops):
        if not trusted(hop):
            return _ip(hop) or peer  # garbled: the proxy is the nearest address known
    return (_ip(hops[0]) or peer) if hops else peer


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · crispml</title>
<link rel="stylesheet" href="/login/style.css">
<link rel="icon" href="data:image/svg+xml,{quote(LOGO_ICON)}">
</head><body><main><div class="card">
<div class="brand">{LOGO}<h1>crispml</h1></div>
<p class="tagline">The ML workbench, one CRISP-DM phase at a time.</p>
{body}
</div><footer>crispml {escape(__version__)}</footer></main></body></html>"""
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def _alert(kind: str, message: str) -> str:
    return f'<div class="alert {kind}" role="alert">{escape(message)}</div>' if message else ""


async def _read_form(request: Request, limit: int) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadForm(415, "The form was not sent as a web form. Reload the page and try again.")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BadForm(413, "The form is too large. Reload the page and try again.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadForm(413, "The form is too large. Reload the page and try again.")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadForm(400, "The form could not be read. Reload the page and try again.") from exc
    return {key: values[0] for key, values in fields.items()}


class LoginRoutes:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.secret = services.secret_key
        self.settings = services.settings
        self.trusted_proxies = [ipaddress.ip_network(p) for p in self.settings.trusted_proxies]
        self._css = resources.files("crispml.web").joinpath("assets/style.css").read_text()

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login_page, methods=["GET", "HEAD"]),
            Route("/login", self.login_submit, methods=["POST"]),
            Route("/login/style.css", self.style, methods=["GET", "HEAD"]),
            Route("/logout", self.logout, methods=["GET", "POST"]),
        ]

    async def style(self, request: Request) -> Response:
        return Response(self._css, media_type="text/css", headers={"cache-control": "max-age=3600"})

    def _form(
        self,
        request: Request,
        *,
        message: str = "",
        kind: str = "error",
        username: str = "",
        next_path: str = "/",
        status: int = 200,
    ) -> HTMLResponse:
        nonce = secrets.token_urlsafe(24)
        csrf = tokens.sign(self.secret, "login", nonce)
        focus_name, focus_password = ("", " autofocus") if username else (" autofocus", "")
        body = f"""{_alert(kind, message)}
<form method="post" action="/login" autocomplete="on">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="next" value="{escape(next_path)}">
<label for="username">User name</label>
<input type="text" id="username" name="username" value="{escape(username)}" maxlength="64"
 autocomplete="username" autocapitalize="none" spellcheck="false" required{focus_name}>
<label for="password">Password</label>
<input type="password" id="password" name="password" maxlength="1024"
 autocomplete="current-password" required{focus_password}>
<button type="submit">Log in</button>
</form>"""
        response = _page("Log in", body, status)
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=is_https(request),
            path="/login",
        )
        return response

    async def login_page(self, request: Request) -> Response:
        next_path = safe_next(request.query_params.get("next"))
        if isinstance(getattr(request.state, "auth", None), AuthSession):
            return RedirectResponse(next_path, status_code=303)
        message, kind = "", "info"
        if request.query_params.get("expired"):
            message = "Your session has ended. Please log in again."
        elif request.query_params.get("logged_out"):
            message = "You have logged out."
        return self._form(request, message=message, kind=kind, next_path=next_path)

    async def login_submit(self, request: Request) -> Response:
        try:
            form = await _read_form(request, self.settings.max_form_bytes)
        except BadForm as exc:
            return self._form(request, message=str(exc), status=exc.status)
        username = form.get("username", "")[:64]
        next_path = safe_next(form.get("next"))
        nonce = request.cookies.get(CSRF_COOKIE, "")
        # A post from another origin never gets here: crispml.web.origin refuses it (exactly,
        # port and public_url included).
        if not tokens.verify(self.secret, "login", nonce, form.get("csrf", "")):
            return self._form(
                request,
                message="The login form expired or came from another site. Please try again.",
                username=username,
                next_path=next_path,
                status=400,
            )
        if not username.strip() or not form.get("password"):
            return self._form(
                request,
                message="Enter your user name and password.",
                username=username,
                next_path=next_path,
                status=400,
            )
        try:
            new = await run_in_threadpool(
                self.services.auth.login,
                username,
                form["password"],
                ip=client_address(request, self.trusted_proxies),
                user_agent=request.headers.get("user-agent", ""),
            )
        except LoginFailed as exc:
            status = 429 if exc.retry_at else 401
            return self._form(
                request, message=str(exc), username=username, next_path=next_path, status=status
            )
        except Unavailable as exc:  # the database is down or its disk full: say so
            logging.getLogger("crispml.web").warning("login: %s (%s)", exc, exc.detail)
            return self._form(
                request, message=str(exc), username=username, next_path=next_path, status=503
            )
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            new.token,
            max_age=int(self.settings.session_lifetime.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=is_https(request),
            path="/",
        )
        response.delete_cookie(CSRF_COOKIE, path="/login")
        return response

    async def logout(self, request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE, "")
        given = request.query_params.get("t", "")
        if request.method == "POST":
            try:
                given = (await _read_form(request, self.settings.max_form_bytes)).get("t", "")
            except BadForm as exc:
                return _page("Log out", _alert("error", str(exc)), exc.status)
        if not tokens.logout_token_valid(self.secret, token, given):
            # A bare link (maybe from another site): ask, with a form that carries the token.
            fresh = tokens.logout_token(self.secret, token)
            body = f"""<p>Do you want to log out?</p>
<form method="post" action="/logout"><input type="hidden" name="t" value="{fresh}">
<button type="submit">Log out</button></form>"""
            return _page("Log out", body)
        try:
            await run_in_threadpool(self.services.auth.logout, token)
        except Unavailable as exc:
            return _page("Log out", _alert("error", str(exc)), 503)
        response = RedirectResponse("/login?logged_out=1", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
        return response
