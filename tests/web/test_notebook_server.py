"""A real JupyterLab, started as a job, reached only through the app's same-origin proxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import stat
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import websockets

from crispml.services import build_services
from crispml.settings import Settings
from tests.core.test_sandbox import ATTACK
from tests.helpers import USER_PASSWORD, Server, in_thread

pytestmark = pytest.mark.server

V1 = "v1.kernel.websocket.jupyter.org"


def record(server: Server, user: str = "admin") -> dict:
    return json.loads((server.home / "notebooks" / f"{user}.json").read_text())


@pytest.fixture(scope="module")
def lab(server: Server) -> Iterator[Server]:
    server.add_user("olga")
    server.cli("user", "notebook", "olga", "--allow")
    assert "Running" in server.cli("notebook", "start")
    yield server
    server.cli("notebook", "stop")


@contextlib.contextmanager
def logged_in(server: Server, user: str = "admin") -> Iterator[httpx.Client]:
    with server.client() as client:
        if user == "admin":
            server.login(client)
        else:
            server.login(client, user, USER_PASSWORD)
        yield client


def session_cookie(client: httpx.Client) -> str:
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


async def run_code(server: Server, cookie: str, kernel: str, code: str, v1: bool) -> str:
    """Execute code on a kernel through the proxy's WebSocket; return its output."""
    url = server.url.replace("http", "ws", 1) + f"/jupyter/admin/api/kernels/{kernel}/channels"
    session, msg_id = uuid.uuid4().hex, uuid.uuid4().hex
    async with websockets.connect(
        f"{url}?session_id={session}",
        additional_headers={"Cookie": cookie, "Origin": server.url},
        subprotocols=[V1] if v1 else None,
        proxy=None,
        max_size=None,
    ) as ws:
        assert ws.subprotocol == (V1 if v1 else None)
        message = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "session": session,
                "username": "test",
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {"code": code, "silent": False, "store_history": False},
            "buffers": [],
        }
        if v1:
            await ws.send(v1_frame("shell", message))
        else:
            await ws.send(json.dumps({**message, "channel": "shell"}))
        output = []
        while True:
            raw = await asyncio.wait_for(ws.recv(), 60)
            reply = v1_parse(raw) if isinstance(raw, bytes) else json.loads(raw)
            if reply["parent_header"].get("msg_id") != msg_id:
                continue
            kind = reply["header"]["msg_type"]
            if kind == "stream":
                output.append(reply["content"]["text"])
            elif kind == "error":
                raise AssertionError(reply["content"]["evalue"])
            elif kind == "status" and reply["content"]["execution_state"] == "idle":
                return "".join(output)


def v1_frame(channel: str, message: dict) -> bytes:
    """The v1 kernel WebSocket protocol: offsets, then channel and the message's parts."""
    parts = [channel.encode()] + [
        json.dumps(message[k]).encode() for k in ("header", "parent_header", "metadata", "content")
    ]
    offsets = [8 * (len(parts) + 2)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = (len(offsets)).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + b"".join(parts)


def v1_parse(data: bytes) -> dict:
    count = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    parts = [data[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    keys = ("channel", "header", "parent_header", "metadata", "content")
    found = dict(zip(keys, parts, strict=False))
    return {k: (p.decode() if k == "channel" else json.loads(p)) for k, p in found.items()}


def test_lab_contents_and_a_kernel_through_the_proxy(lab: Server) -> None:
    token = record(lab)["token"]
    with logged_in(lab) as client:
        page = client.get("/jupyter/admin/lab", headers={"accept": "text/html"})
        assert page.status_code == 200, page.text[:500]
        assert "JupyterLab" in page.text and "jupyter-config-data" in page.text
        assert token not in page.text  # the page config's token was taken out
        assert not any(c.startswith("username-") for c in client.cookies)  # Jupyter's login too
        assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
        xsrf = client.cookies["_xsrf"]
        # Jupyter's own XSRF check stays on: a POST without the header is refused by Jupyter.
        refused = client.post("/jupyter/admin/api/contents", json={"type": "notebook"})
        assert refused.status_code == 403
        created = client.post(
            "/jupyter/admin/api/contents",
            json={"type": "notebook"},
            headers={"X-XSRFToken": xsrf},
        )
        assert created.status_code == 201, created.text
        name = created.json()["path"]
        assert (lab.home / "users" / "admin" / "files" / name).exists()  # its root: My files
        specs = client.get("/jupyter/admin/api/kernelspecs").json()
        assert "crispml-system" in specs["kernelspecs"]
        kernel = client.post(
            "/jupyter/admin/api/kernels",
            json={"name": "crispml-system"},
            headers={"X-XSRFToken": xsrf},
        ).json()["id"]
        cookie = session_cookie(client)
        for v1 in (False, True):  # legacy JSON frames, then the binary v1 subprotocol
            code = "import sys, crispml_job; print(6 * 7, crispml_job.__name__)"
            assert in_thread(run_code(lab, cookie, kernel, code, v1)) == "42 crispml_job\n"
        attack_from_a_kernel(lab, cookie, kernel)
        terminals = client.post("/jupyter/admin/api/terminals", headers={"X-XSRFToken": xsrf})
        assert terminals.status_code == 404  # terminals are off unless an admin enables them
        foreign = websockets.connect(
            lab.url.replace("http", "ws", 1)
            + f"/jupyter/admin/api/kernels/{kernel}/channels?session_id=x",
            additional_headers={"Cookie": cookie, "Origin": "http://evil.example"},
            proxy=None,
        )
        with pytest.raises(websockets.WebSocketException):  # Jupyter's origin check refuses it
            in_thread(_open(foreign))


def attack_from_a_kernel(lab: Server, cookie: str, kernel: str) -> None:
    """The sandbox attack suite (tests/core/test_sandbox.py), from a notebook kernel: the
    admin's own code is sandboxed too, as its own OS account, and reaches nothing of olga's or
    of the server's."""
    diary = lab.home / "users" / "olga" / "files" / "diary.txt"
    diary.parent.mkdir(parents=True, exist_ok=True)
    diary.write_text("olga's secret")
    victim = lab.cli("jobs", "submit", "--user", "olga", "--", "sleep", "120").strip()
    svc = build_services(Settings(home=lab.home))
    folder = lab.home / "notebooks" / "olga"
    folder.mkdir(parents=True, exist_ok=True)
    (lab.home / "notebooks" / "olga.json").write_text('{"token": "olgas-token"}')
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "jupyter.sock"))
    listener.listen()
    try:
        deadline = time.monotonic() + 60
        while not (job := svc.jobs.get(0, victim, admin=True)).pid:
            assert time.monotonic() < deadline, job.status
            time.sleep(0.2)
        assert lab.proc is not None
        targets = {
            "home": str(lab.home),
            # its own notebook folder (in notebooks/) and the registry (models/, read-only)
            "visible": ["users", "runs", "notebooks", "models"],
            "secret_key": str(lab.home / "secret_key"),
            "database": str(lab.home / "crispml.db"),
            "other_file": str(diary),
            "other_files": str(diary.parent),
            "other_log": str(lab.home / "runs" / victim / "output.log"),
            "other_run": str(lab.home / "runs" / victim),
            "other_notebook_record": str(lab.home / "notebooks" / "olga.json"),
            "other_socket": str(folder / "jupyter.sock"),
            "app_port": lab.port,
            "other_pid": job.pid,
            "server_pid": lab.proc.pid,
            "own_files": str(lab.home / "users" / "admin" / "files"),
        }
        code = f"import sys; sys.argv = ['attack', {json.dumps(targets)!r}]\n" + ATTACK
        output = in_thread(run_code(lab, cookie, kernel, code, True))
    finally:
        listener.close()
        svc.jobs.stop(0, victim, admin=True, actor="test")
        svc.db.dispose()
    attempts = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert len(attempts) == 16, output
    got = [a for a in attempts if a["result"] != "refused"]
    assert not got, got
    assert "OWN OK" in output
    print(f"\nsandbox: {len(attempts)} attempts from a notebook kernel, all refused")


async def _open(connection: object) -> None:
    async with connection as ws:  # type: ignore[attr-defined]
        await asyncio.wait_for(ws.recv(), 10)


def test_others_and_strangers_are_refused(lab: Server) -> None:
    sock, token = record(lab)["socket"], record(lab)["token"]
    with logged_in(lab, "olga") as other:
        refused = other.get("/jupyter/admin/lab", headers={"accept": "text/html"})
        assert refused.status_code == 403 and "another user" in refused.text
        assert other.get("/jupyter/admin/api/contents").status_code == 403
        cookie = session_cookie(other)
    with lab.client() as anonymous:
        assert anonymous.get("/jupyter/admin/api/contents").status_code == 401
        page = anonymous.get("/jupyter/admin/lab", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    url = lab.url.replace("http", "ws", 1) + "/jupyter/admin/api/events/subscribe"
    for headers in ({"Cookie": cookie}, {}):
        with pytest.raises(websockets.InvalidStatus):
            in_thread(_open(websockets.connect(url, additional_headers=headers, proxy=None)))
    # No TCP port: a Unix socket (mode 0600, its owner's OS account) in the owner's folder.
    assert stat.S_ISSOCK(os.lstat(sock).st_mode) and os.lstat(sock).st_mode & 0o077 == 0
    # Straight to the socket without the token: refused by Jupyter itself.
    with httpx.Client(transport=httpx.HTTPTransport(uds=sock), timeout=10) as direct:
        assert direct.get("http://localhost/jupyter/admin/api/contents").status_code == 403
        lab_page = direct.get("http://localhost/jupyter/admin/lab")
    assert lab_page.status_code == 302 and "login" in lab_page.headers["location"]
    assert token not in lab_page.text
    # Olga's own server would be hers: she may start one, and admin may look in
    assert "Running" in lab.cli("notebook", "start", "--user", "olga")
    with logged_in(lab, "olga") as olga:
        assert olga.get("/jupyter/olga/api/contents").status_code == 200
    with logged_in(lab) as admin:
        assert admin.get("/jupyter/olga/api/contents").status_code == 200
    lab.cli("notebook", "stop", "--user", "olga")


def test_a_server_that_died_gets_a_readable_502(server: Server) -> None:
    assert "Running" in server.cli("notebook", "start")
    svc = build_services(Settings(home=server.home))
    try:
        admin = svc.auth.get_user("admin")
        job = svc.notebooks.state(admin).job
        assert job is not None and job.pid
        os.killpg(job.pid, signal.SIGKILL)  # the whole job: runner and JupyterLab
        deadline = time.monotonic() + 30
        while not svc.notebooks.state(admin).job.finished:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert "Not running" in svc.notebooks.state(admin).message
    finally:
        svc.db.dispose()
    with logged_in(server) as client:
        started = time.monotonic()
        page = client.get("/jupyter/admin/lab", headers={"accept": "text/html"})
        assert page.status_code == 502 and "is not running" in page.text
        assert "Notebook page" in page.text and time.monotonic() - started < 10
