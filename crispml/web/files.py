"""/files/<root>/<path>: a user's files, opened in a new tab or downloaded.

Security note: the auth gate has already required a login. Here every request is checked
against the roots the user may reach (own files; others' for admins; shared roots by role), and
every path is confined by crispml.core.files. Files that a browser would run as active content in
our origin (HTML, SVG, XML, XHTML) are served under ``Content-Security-Policy: sandbox`` (a unique
origin, no scripts), and every file with ``X-Content-Type-Options: nosniff``. A folder is served
only as a zip stream (``?zip=1``).
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from crispml.core.auth import AuthSession
from crispml.core.errors import CrispmlError, InvalidInput, NotFound, PermissionDenied
from crispml.core.files import content_type
from crispml.services import Services

ACTIVE_TYPES = (
    "text/html",
    "image/svg+xml",
    "application/xhtml+xml",
    "text/xml",
    "application/xml",
)
SANDBOX = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def _error(status: int, message: str) -> HTMLResponse:
    body = (
        f"<!doctype html><meta charset=utf-8><title>crispml: {status}</title>"
        f"<body style='font-family:system-ui;margin:3rem'><h1>{status}</h1>"
        f"<p>{escape(message)}</p><p><a href='/files'>Back to the app</a></p></body>"
    )
    return HTMLResponse(body, status_code=status)


def disposition(kind: str, name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def file_routes(services: Services) -> list[Route]:
    async def serve(request: Request) -> Response:
        auth = getattr(request.state, "auth", None)
        if not isinstance(auth, AuthSession):  # the gate guarantees one; be strict anyway
            return _error(401, "Log in to open files.")
        root_id = request.path_params["root"]
        path = request.path_params.get("path", "")
        try:
            space = services.files.space(auth.user.username, auth.user.role, root_id)
            real = await run_in_threadpool(space.resolve, path)
        except PermissionDenied as exc:
            return _error(403, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))
        except (InvalidInput, CrispmlError) as exc:
            return _error(400, str(exc))
        if real.is_dir():
            if request.query_params.get("zip") != "1":
                return _error(400, f"'{path or '/'}' is a folder: add ?zip=1 to download it.")
            name = (real.name or root_id.lstrip("~")) + ".zip"
            return StreamingResponse(
                space.zip_stream(path),
                media_type="application/zip",
                headers={"content-disposition": disposition("attachment", name)},
            )
        media = content_type(real.name)
        download = request.query_params.get("download") == "1"
        headers = {
            "content-disposition": disposition("attachment" if download else "inline", real.name),
            "x-content-type-options": "nosniff",
            "cache-control": "private, no-store",
        }
        if media.split(";")[0] in ACTIVE_TYPES:
            headers["content-security-policy"] = SANDBOX
        return FileResponse(real, media_type=media, headers=headers)

    return [
        Route("/files/{root}/{path:path}", serve, methods=["GET", "HEAD"]),
        Route("/files/{root}", serve, methods=["GET", "HEAD"]),
    ]
