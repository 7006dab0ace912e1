"""/files/<root>/<path>: a user's files, opened in a new tab or downloaded.

Security note: the auth gate has already required a login. Here every request is checked
against the roots the user may reach (own files; others' for admins; shared roots by role), and
every path is confined by crispml.core.files. Only an allow-list of passive types (text, JSON,
raster images, PDF) is shown inline, typed from our own table; everything else (HTML, SVG, any
XML flavour, unknown types) is served as a download. Every response but PDF also carries
``Content-Security-Policy: sandbox`` (a unique origin, no scripts), and all carry
``X-Content-Type-Options: nosniff``. A folder is served only as a zip stream (``?zip=1``).
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from crispml.core import about
from crispml.core.auth import AuthSession
from crispml.core.errors import CrispmlError, InvalidInput, NotFound, PermissionDenied
from crispml.core.files.zips import zip_stream
from crispml.services import Services

# Types a browser may show inline from our origin: our own table, not the host's mime.types.
# Anything else (HTML, SVG, every XML flavour, scripts, unknown types) is a download, and every
# response but PDF carries a sandboxing CSP as a second line of defence.
_TEXT = "text/plain; charset=utf-8"
INLINE_TYPES = {
    **dict.fromkeys(
        ["txt", "log", "md", "py", "csv", "tsv", "jsonl", "yaml", "yml", "toml"], _TEXT
    ),
    "json": "application/json",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "pdf": "application/pdf",
}
SANDBOX = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def _error(status: int, message: str) -> HTMLResponse:
    body = (
        f"<!doctype html><meta charset=utf-8><title>crispml: {status}</title>"
        f"<body style='font-family:system-ui;margin:3rem'><h1>{status}</h1>"
        f"<p>{escape(message)}</p><p><a href='/files'>Back to the app</a></p></body>"
    )
    return HTMLResponse(body, status_code=status)


def disposition(kind: str, name: str) -> str:
    printable = "".join(c for c in name if c.isprintable())
    ascii_name = printable.encode("ascii", "replace").decode().replace('"', "")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(printable)}"


def _about(name: str) -> Response:
    texts = {about.LICENSE: about.license_text, about.NOTICES: about.notices_text}
    if name not in texts:
        return _error(404, f"'{name}' is not one of {', '.join(texts)}.")
    return Response(
        texts[name](),
        media_type=_TEXT,
        headers={
            "content-disposition": disposition("inline", name),
            "x-content-type-options": "nosniff",
            "content-security-policy": SANDBOX,
        },
    )


def file_routes(services: Services) -> list[Route]:
    async def serve(request: Request) -> Response:
        auth = getattr(request.state, "auth", None)
        if not isinstance(auth, AuthSession):  # the gate guarantees one; be strict anyway
            return _error(401, "Log in to open files.")
        root_id = request.path_params["root"]
        path = request.path_params.get("path", "")
        if root_id == "about":  # crispml's own license and notices, for every logged-in user
            return _about(path)
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
                zip_stream(space, path),
                media_type="application/zip",
                headers={"content-disposition": disposition("attachment", name)},
            )
        suffix = real.suffix.lower().lstrip(".")
        inline = suffix in INLINE_TYPES and request.query_params.get("download") != "1"
        media = INLINE_TYPES[suffix] if inline else "application/octet-stream"
        headers = {
            "content-disposition": disposition("inline" if inline else "attachment", real.name),
            "x-content-type-options": "nosniff",
            "cache-control": "private, no-store",
        }
        if suffix != "pdf":  # Chromium's PDF viewer does not run under a sandbox CSP
            headers["content-security-policy"] = SANDBOX
        return FileResponse(real, media_type=media, headers=headers)

    return [
        Route("/files/{root}/{path:path}", serve, methods=["GET", "HEAD"]),
        Route("/files/{root}", serve, methods=["GET", "HEAD"]),
    ]
