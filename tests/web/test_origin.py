"""The Origin check on its own, as pure ASGI: what counts as the app's origin and what is checked.
The real server's routes, WebSockets included, are checked in test_server.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crispml.settings import Settings
from crispml.web.origin import OriginCheck, origin_of, request_origin
from tests.helpers import in_thread


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:8501", "http://127.0.0.1:8501"),
        ("HTTP://Crispml.Example.ORG:443/", "http://crispml.example.org:443"),
        ("https://crispml.example.org:443/some/page?x=1", "https://crispml.example.org"),
        ("http://example.org:80", "http://example.org"),
        ("http://[::1]:8501/x", "http://[::1]:8501"),
        ("null", None),
        ("", None),
        ("file:///etc/passwd", None),
        ("ws://127.0.0.1:8501", None),
        ("/relative", None),
        ("http://user@127.0.0.1:8501", None),
        ("http://127.0.0.1:99999", None),
        ("http://", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def scope(
    kind: str = "http",
    method: str = "POST",
    path: str = "/jupyter/admin/api/sessions",
    headers: dict[str, str] | None = None,
    scheme: str = "http",
) -> dict[str, Any]:
    sent = {"host": "127.0.0.1:8501", **(headers or {})}
    result: dict[str, Any] = {
        "type": kind,
        "path": path,
        "scheme": scheme,
        "server": ("127.0.0.1", 8501),
        "headers": [(k.encode(), v.encode()) for k, v in sent.items() if v is not None],
    }
    if kind == "http":
        result["method"] = method
    else:
        result["extensions"] = {"websocket.http.response": {}}
    return result


def run(check: OriginCheck, scope: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
    """(whether the app behind was reached, what was sent)."""
    reached: list[bool] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    check.app = app
    in_thread(check(scope, receive, send))
    return bool(reached), sent


def test_request_origin_follows_scheme_and_host() -> None:
    assert request_origin(scope()) == "http://127.0.0.1:8501"
    assert request_origin(scope("websocket", scheme="wss", headers={"host": "a.org"})) == (
        "https://a.org"
    )
    assert request_origin(scope(headers={"host": "a.org:443"}, scheme="https")) == "https://a.org"
    no_host = scope()
    no_host["headers"] = []
    assert request_origin(no_host) == "http://127.0.0.1:8501"


OTHERS = ["http://127.0.0.1:9999", "null", "https://evil.example", "https://127.0.0.1:8501", ""]


@pytest.mark.parametrize("origin", OTHERS)
def test_other_origins_are_refused(origin: str) -> None:
    check = OriginCheck(lambda *a: None)
    reached, sent = run(check, scope(headers={"origin": origin}))
    assert not reached
    assert sent[0]["status"] == 403
    assert "another site" in json.loads(sent[1]["body"])["detail"]
    reached, sent = run(check, scope("websocket", headers={"origin": origin}))
    assert not reached
    assert sent[0] == {
        "type": "websocket.http.response.start",
        "status": 403,
        "headers": sent[0]["headers"],
    }


def test_a_websocket_without_the_response_extension_is_closed_before_accept() -> None:
    bare = scope("websocket", headers={"origin": "null"})
    bare["extensions"] = {}
    reached, sent = run(OriginCheck(lambda *a: None), bare)
    assert not reached and sent == [
        {"type": "websocket.close", "code": 1008, "reason": "cross-origin"}
    ]


def test_a_refused_form_gets_a_readable_page() -> None:
    headers = {"origin": "http://127.0.0.1:9999", "accept": "text/html"}
    _, sent = run(OriginCheck(lambda *a: None), scope(path="/login", headers=headers))
    assert sent[0]["status"] == 403
    assert b'role="alert"' in sent[1]["body"]


def test_what_passes() -> None:
    check = OriginCheck(lambda *a: None)
    own = {"origin": "http://127.0.0.1:8501"}
    assert run(check, scope(headers=own))[0]
    assert run(check, scope("websocket", headers=own))[0]
    assert run(check, scope(headers={"referer": "http://127.0.0.1:8501/files?x=1"}))[0]
    assert not run(check, scope(headers={"referer": "http://127.0.0.1:9999/"}))[0]
    assert run(check, scope())[0]  # a program: neither Origin nor Referer
    assert run(check, scope("websocket"))[0]
    for method in ("GET", "HEAD", "OPTIONS"):  # reads are not checked
        assert run(check, scope(method=method, headers={"origin": "null"}))[0]
    # The model API takes API keys in headers, never a cookie: not checked.
    assert run(check, scope(path="/api/predict", headers={"origin": "https://evil.example"}))[0]
    # Origin wins over Referer.
    assert not run(check, scope(headers={"origin": "null", "referer": "http://127.0.0.1:8501/"}))[0]


def test_public_url_is_the_only_origin_accepted() -> None:
    check = OriginCheck(lambda *a: None, public_url="https://crispml.example.org")
    public = {"origin": "https://crispml.example.org"}
    assert run(check, scope(headers=public))[0]
    assert run(check, scope("websocket", headers=public))[0]
    assert not run(check, scope(headers={"origin": "http://127.0.0.1:8501"}))[0]
    assert not run(check, scope(headers={"origin": "http://crispml.example.org"}))[0]


@pytest.mark.parametrize(
    "url",
    [
        "crispml.example.org",
        "ftp://x.org",
        "https://x.org/crispml",
        "https://x.org?a=1",
        "https://",
    ],
)
def test_public_url_must_be_an_origin(url: str) -> None:
    with pytest.raises(ValueError, match="public_url"):
        Settings(public_url=url)


def test_public_url_keeps_a_plain_origin() -> None:
    assert Settings(public_url="https://x.org:8443/").public_url == "https://x.org:8443"
