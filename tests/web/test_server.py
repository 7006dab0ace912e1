"""The real server on a loopback port: the gate, login, logout, health, metrics and bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import connect

from crispml.core.auth import SESSION_COOKIE
from crispml.services import build_services
from crispml.settings import Settings
from tests.helpers import ADMIN_PASSWORD, Server

pytestmark = pytest.mark.server
PUBLIC = {"/login", "/login/style.css", "/healthz"}
WRITES = ("POST", "PUT", "PATCH", "DELETE")
REFUSED = "came from another site or address"  # the Origin check's message


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def served_routes() -> list[tuple[str, str, list[str]]]:
    script = Path(__file__).with_name("list_routes.py")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    return [tuple(r) for r in json.loads(out.stdout)]


def ws_answer(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """101 when the WebSocket opened, else the refusal's status and body (0: no HTTP answer)."""
    try:
        with connect(url, additional_headers=headers, open_timeout=10):
            return 101, ""
    except InvalidStatus as exc:
        return exc.response.status_code, (exc.response.body or b"").decode(errors="replace")
    except WebSocketException:
        return 0, ""


def ws_refused(url: str, cookie: str | None = None) -> bool:
    headers = {"Cookie": cookie} if cookie else {}
    try:
        with connect(url, additional_headers=headers, open_timeout=10):
            return False
    except InvalidStatus as exc:
        return exc.response.status_code in (401, 403)


def test_every_non_public_route_refuses_anonymous_requests(server: Server) -> None:
    routes = served_routes()
    kinds = {kind for kind, _, _ in routes}
    assert "ws" in kinds  # Streamlit's /_stcore/stream is in the table we check
    checked = 0
    with server.client() as client:
        for kind, path, methods in routes:
            if kind == "ws":
                url = server.url.replace("http", "ws") + concrete(path)
                assert ws_refused(url), path
                checked += 1
                continue
            target = concrete(path) + ("/x" if kind == "mount" else "")
            if target in PUBLIC:
                continue
            if target == "/api/x":  # the model API: no login needed, but an API key
                refused = client.get("/api/models")
                assert refused.status_code == 401 and "API key" in refused.json()["detail"]
                checked += 1
                continue
            for method in methods or ["GET"]:
                api = client.request(method, target)
                assert api.status_code == 401, (method, target, api.status_code)
                checked += 1
            page = client.get(target, headers={"accept": "text/html"})
            if "GET" in methods or kind == "mount":
                assert page.status_code == 303, (target, page.status_code)
                assert page.headers["location"].startswith("/login?next=")
        # Paths no route names fall through to Streamlit's app shell: refused as well.
        for target in ["/", "/modeling", "/static/js/x.js", "/../../etc/passwd", "/_stcore/x"]:
            assert client.get(target).status_code == 401, target
            checked += 1
    assert checked > 20


def test_public_routes_answer_without_login(server: Server) -> None:
    with server.client() as client:
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["database"] == {"ok": True} and health.json()["disk"] == {"ok": True}
        login = client.get("/login")
        assert login.status_code == 200
        assert 'name="csrf"' in login.text
        assert client.get("/login/style.css").headers["content-type"].startswith("text/css")


def test_login_sets_a_safe_cookie_and_redirects_to_the_page_first_asked_for(server: Server) -> None:
    with server.client() as client:
        asked = client.get("/modeling?run=3", headers={"accept": "text/html"})
        assert asked.headers["location"] == "/login?next=%2Fmodeling%3Frun%3D3"
        response = server.login(client, next_path="/modeling?run=3")
        assert response.status_code == 303
        assert response.headers["location"] == "/modeling?run=3"
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith(f"{SESSION_COOKIE}=")
        assert "HttpOnly" in set_cookie
        assert "SameSite=lax" in set_cookie
        assert "Secure" not in set_cookie  # plain HTTP on loopback; HTTPS adds Secure
        page = client.get("/modeling", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "SAMEORIGIN"
        token = client.cookies[SESSION_COOKIE]
        url = server.url.replace("http", "ws") + "/_stcore/stream"
        assert not ws_refused(url, f"{SESSION_COOKIE}={token}")


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil", "/logout"]
)
def test_next_never_leaves_the_site(server: Server, target: str) -> None:
    with server.client() as client:
        assert server.login(client, next_path=target).headers["location"] == "/"


def test_login_without_a_valid_csrf_token_is_refused(server: Server) -> None:
    with server.client() as client:
        client.get("/login")
        forged = client.post(
            "/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": "00" * 20}
        )
        assert forged.status_code == 400
        assert "expired or came from another site" in forged.text
        assert SESSION_COOKIE not in forged.headers.get("set-cookie", "")
        # A valid token posted from another origin is refused too.
        page = client.get("/login")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
        cross = client.post(
            "/login",
            data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": csrf},
            headers={"origin": "https://evil.example", "accept": "text/html"},
        )
        assert cross.status_code == 403
        assert 'role="alert"' in cross.text and REFUSED in cross.text
        assert SESSION_COOKIE not in cross.headers.get("set-cookie", "")


def test_wrong_password_then_lockout_message(server: Server) -> None:
    server.add_user("carol")
    with server.client() as client:
        for _ in range(4):
            wrong = server.login(client, "carol", "wrong-password")
            assert wrong.status_code == 401
            assert "Invalid user name or password." in wrong.text
            assert 'value="carol"' in wrong.text  # what the user typed is kept
        locked = server.login(client, "carol", "wrong-password")
        assert locked.status_code == 429
        assert "Too many failed attempts. Try again after" in locked.text
        assert server.login(client, "carol", "lilac-harbor-93").status_code == 429
        unknown = server.login(client, "nobody-here", "wrong-password")
        assert "Invalid user name or password." in unknown.text


def test_an_attacker_at_one_address_does_not_stop_the_admin_at_another(server: Server) -> None:
    """Six wrong passwords for admin from one client, through a proxy on this machine (uvicorn
    takes X-Forwarded-For from loopback): that client is stopped, the admin at another logs in."""
    attacker = {"x-forwarded-for": "203.0.113.9"}
    with httpx.Client(base_url=server.url, headers=attacker, timeout=30) as client:
        statuses = [server.login(client, "admin", "wrong-password").status_code for _ in range(6)]
        assert statuses == [401, 401, 401, 401, 429, 429]
        assert server.login(client).status_code == 429  # the right password, from there
    owner = {"x-forwarded-for": "198.51.100.7"}
    with httpx.Client(base_url=server.url, headers=owner, timeout=30) as client:
        assert server.login(client).status_code == 303


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        (
            {
                "content": b"\xff\xfe\x00garbage",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            400,
        ),
        (
            {
                "content": b"username=a&password=" + b"x" * 20_000,
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            413,
        ),
        (
            {"content": b'{"username": "admin"}', "headers": {"content-type": "application/json"}},
            415,
        ),
        ({"files": {"username": ("a.txt", b"admin")}}, 415),
        ({"data": {"username": "admin"}}, 400),
        ({"data": {"username": "a" * 5000, "password": "p" * 5000}}, 400),
    ],
)
def test_malformed_login_posts_get_a_readable_page(
    server: Server, kwargs: dict, status: int
) -> None:
    with server.client() as client:
        client.get("/login")
        response = client.post("/login", **kwargs)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/html")
        assert 'role="alert"' in response.text
        assert "Traceback" not in response.text
        assert client.get("/healthz").status_code == 200  # still serving


def test_forged_and_expired_cookies_send_you_to_login(server: Server) -> None:
    with httpx.Client(base_url=server.url, cookies={SESSION_COOKIE: "forged"}) as client:
        page = client.get("/", headers={"accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2F&expired=1"
        assert (
            f'{SESSION_COOKIE}=""' in page.headers["set-cookie"]
            or "Max-Age=0" in page.headers["set-cookie"]
        )
        login = client.get(page.headers["location"])
        assert "Your session has ended" in login.text


def test_disabled_user_cookie_is_refused(server: Server) -> None:
    server.add_user("dave")
    with server.client() as client:
        assert server.login(client, "dave", "lilac-harbor-93").status_code == 303
        assert client.get("/", headers={"accept": "text/html"}).status_code == 200
        server.cli("user", "disable", "dave")
        assert client.get("/", headers={"accept": "text/html"}).status_code == 303
        again = server.login(client, "dave", "lilac-harbor-93")
        assert "This account is disabled" in again.text


def test_logout_revokes_in_every_tab(server: Server) -> None:
    with server.client() as tab1, server.client() as tab2:
        server.login(tab1)
        tab2.cookies.set(SESSION_COOKIE, tab1.cookies[SESSION_COOKIE])
        # A bare /logout link (maybe from another site) only asks.
        ask = tab1.get("/logout")
        assert ask.status_code == 200
        assert "Do you want to log out?" in ask.text
        assert tab1.get("/", headers={"accept": "text/html"}).status_code == 200
        token = re.search(r'name="t" value="([0-9a-f]+)"', ask.text).group(1)
        out = tab1.post("/logout", data={"t": token})
        assert out.status_code == 303
        assert out.headers["location"] == "/login?logged_out=1"
        assert tab2.get("/", headers={"accept": "text/html"}).status_code == 303
        assert tab2.get("/_stcore/host-config").status_code == 401


def test_metrics_are_for_admins_only(server: Server) -> None:
    server.add_user("erin")
    with server.client() as anonymous:
        assert anonymous.get("/metrics").status_code == 401
    with server.client() as user:
        server.login(user, "erin", "lilac-harbor-93")
        assert user.get("/metrics").status_code == 403
    with server.client() as admin:
        server.login(admin)
        metrics = admin.get("/metrics")
        assert metrics.status_code == 200
        assert "crispml_http_requests_total" in metrics.text
        assert re.search(r"crispml_active_login_sessions [1-9]", metrics.text)


def test_login_survives_a_server_restart(tmp_path: Path) -> None:
    srv = Server(tmp_path / "home").start()
    try:
        with srv.client() as client:
            srv.login(client)
            cookie = client.cookies[SESSION_COOKIE]
        srv.stop()
        srv.start()
        with httpx.Client(base_url=srv.url, cookies={SESSION_COOKIE: cookie}) as client:
            assert client.get("/", headers={"accept": "text/html"}).status_code == 200
    finally:
        srv.stop()


def test_first_start_prints_a_generated_admin_password_once_and_seeds_sample_data(
    tmp_path: Path,
) -> None:
    srv = Server(tmp_path / "home")
    srv.env_extra = {}
    env = srv.env()
    env.pop("CRISPML_ADMIN_PASSWORD")
    env["CRISPML_SEED_SAMPLE_DATA"] = "true"  # what a fresh start does
    srv.env = lambda: env  # type: ignore[method-assign]
    srv.start()
    try:
        printed = re.search(r"Password \(shown only this once\): (\S+)", srv.log())
        assert printed, srv.log()
        with srv.client() as client:
            assert srv.login(client, "admin", printed.group(1)).status_code == 303
        assert oct((srv.home / "secret_key").stat().st_mode & 0o777) == "0o600"
        assert oct(srv.home.stat().st_mode & 0o777) == "0o700"
        srv.stop()
        services = build_services(Settings(home=srv.home))
        admin = services.auth.first_admin()
        assert admin is not None
        (demo,) = services.projects.list(admin.id)
        samples = {(d.name, d.kind, d.rows) for d in services.datasets.all(admin.id, demo.id)}
        assert samples == {("Iris", "table", 150), ("Shapes", "images", 200)}
        services.db.dispose()
        srv.start()
        assert srv.log().count("shown only this once") == 1
        assert len(services.datasets.all(admin.id, demo.id)) == 2  # seeded once, not again
    finally:
        srv.stop()


def test_binding_beyond_loopback_without_tls_warns(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:  # the port is taken, so the server stops right after warning
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "crispml",
                "--home",
                str(tmp_path),
                "run",
                "--host",
                "0.0.0.0",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert "WARNING: binding to 0.0.0.0 without TLS" in proc.stderr
    assert proc.returncode != 0
    assert f"Port {port} is not available" in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--port", "99999"], "setting 'port': Input should be less than or equal to 65535"),
        (["run", "--port", "x"], "Invalid value for '--port'"),
    ],
)
def test_bad_cli_settings_get_a_message_not_a_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crispml", "--home", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cookies_are_secure_behind_an_https_proxy(server: Server) -> None:
    """A TLS-terminating proxy on this machine sets X-Forwarded-Proto; uvicorn trusts loopback.
    httpx speaks plain HTTP here, so it withholds Secure cookies: the test sends the CSRF cookie
    itself, as a browser talking HTTPS to the proxy would."""
    proxied = {"x-forwarded-proto": "https"}
    with httpx.Client(base_url=server.url, headers=proxied) as client:
        page = client.get("/login")
        assert "Secure" in page.headers["set-cookie"]
        nonce = page.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
        response = client.post(
            "/login",
            data={"username": "admin", "password": ADMIN_PASSWORD, "csrf": csrf},
            headers={"cookie": f"crispml_csrf={nonce}"},
        )
        assert response.status_code == 303
        assert "Secure" in response.headers["set-cookie"]


def test_an_odd_cookie_from_another_app_does_not_hide_the_session(server: Server) -> None:
    """Cookies ignore ports: another app on this host may set one that strict parsers reject."""
    with server.client() as client:
        server.login(client)
        token = client.cookies[SESSION_COOKIE]
    header = f'prefs={{"a":1,"b":2}}; {SESSION_COOKIE}={token}'
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/", headers={"accept": "text/html", "cookie": header})
        assert page.status_code == 200
    url = server.url.replace("http", "ws") + "/_stcore/stream"
    assert not ws_refused(url, header)


def test_parallel_wrong_logins_get_answers_not_errors(server: Server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def attempt(_: int) -> int:
        with server.client() as client:
            return server.login(client, "parallel-nobody", "wrong-password").status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(attempt, range(16)))
    assert set(statuses) <= {401, 429}
    assert 429 in statuses
    with server.client() as client:
        assert client.get("/healthz").status_code == 200


def write_targets() -> list[str]:
    """Every path the app serves, as a concrete URL, for the methods that may change state; the
    Origin check runs before routing, so a route's own methods do not matter. Paths no route
    names fall through to Streamlit. The model API (/api/, API keys, no cookie) is left out."""
    targets = {
        concrete(path) + ("/x" if kind == "mount" else "")
        for kind, path, _ in served_routes()
        if kind in ("http", "mount")
    }
    targets |= {"/", "/modeling", "/_stcore/x"}
    return sorted(t for t in targets if not t.startswith("/api/"))


def foreign_origins(server: Server) -> list[str]:
    other_port = server.port + 1 if server.port < 65535 else server.port - 1
    return [
        f"http://127.0.0.1:{other_port}",  # another port of the same host: the same *site*
        "null",
        "https://evil.example",
        f"https://127.0.0.1:{server.port}",  # another scheme
        f"http://localhost:{server.port}",  # another host name
    ]


def test_cross_origin_websockets_and_writes_are_refused_on_every_route(server: Server) -> None:
    ws_paths = [concrete(path) for kind, path, _ in served_routes() if kind == "ws"]
    assert {"/_stcore/stream", "/jupyter/x/x"} <= set(ws_paths)
    targets = write_targets()
    assert {"/login", "/logout", "/jupyter/x/x", "/_stcore/upload_file/x/x"} <= set(targets)
    with server.client() as client:
        server.login(client)
        cookie = f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"
        for path in ws_paths:
            for origin in foreign_origins(server):
                url = server.url.replace("http", "ws") + path
                status, body = ws_answer(url, {"Cookie": cookie, "Origin": origin})
                assert status == 403 and REFUSED in body, (path, origin, status, body)
        for target in targets:
            for method in WRITES:
                for origin in foreign_origins(server):
                    refused = client.request(method, target, headers={"origin": origin})
                    assert refused.status_code == 403, (method, target, origin)
                    assert REFUSED in refused.text  # JSON, or a page for /login and /logout
                # Without Origin, the Referer tells where a browser's request came from.
                referer = foreign_origins(server)[0] + "/page"
                refused = client.request(method, target, headers={"referer": referer})
                assert refused.status_code == 403, (method, target, "referer")
        # Nothing above reached a handler: the session is still open (POST /logout was refused).
        assert client.get("/", headers={"accept": "text/html"}).status_code == 200


def test_the_apps_own_origin_passes_the_check(server: Server) -> None:
    own = {"origin": server.url}
    with server.client() as anonymous:
        for target in write_targets():
            for method in WRITES:
                for headers in (own, {"referer": server.url + "/modeling"}, {}):
                    answer = anonymous.request(method, target, headers=headers)
                    assert REFUSED not in answer.text, (method, target, headers)
                    if target not in PUBLIC:  # the gate's answer: login required
                        assert answer.status_code == 401, (method, target, answer.status_code)
        # The model API is for programs with API keys: no Origin check, its own 401.
        api = anonymous.post("/api/predict", headers={"origin": "https://evil.example"})
        assert api.status_code == 401 and REFUSED not in api.text
    with server.client() as client:
        client.headers.update(own)
        assert server.login(client).status_code == 303
        cookie = f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"
        url = server.url.replace("http", "ws") + "/_stcore/stream"
        assert ws_answer(url, {"Cookie": cookie, "Origin": server.url})[0] == 101
        assert ws_answer(url, {"Cookie": cookie})[0] == 101  # a program: no Origin
        _, body = ws_answer(
            server.url.replace("http", "ws") + "/jupyter/admin/api/kernels/k/channels",
            {"Cookie": cookie, "Origin": server.url},
        )
        assert REFUSED not in body  # the proxy answers (no JupyterLab is running)


def test_behind_a_proxy_public_url_is_the_origin(tmp_path: Path) -> None:
    """A proxy that neither keeps the Host header nor says the scheme: the browser's origin is
    public_url, not what the request names."""
    public = "https://crispml.example.org"
    srv = Server(tmp_path / "home", env_extra={"CRISPML_PUBLIC_URL": public}).start()
    try:
        ws_url = srv.url.replace("http", "ws") + "/_stcore/stream"
        with srv.client() as client:
            client.headers["origin"] = srv.url
            refused = srv.login(client)
            assert refused.status_code == 403 and REFUSED in refused.text
            client.headers["origin"] = public
            assert srv.login(client).status_code == 303
            cookie = f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"
            assert ws_answer(ws_url, {"Cookie": cookie, "Origin": public})[0] == 101
            status, body = ws_answer(ws_url, {"Cookie": cookie, "Origin": srv.url})
            assert status == 403 and REFUSED in body
    finally:
        srv.stop()
