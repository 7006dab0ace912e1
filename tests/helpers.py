"""Test helpers: real PostgreSQL databases, free ports, and a real crispml server process."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

PG_ADMIN_URL = os.environ.get("CRISPML_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_PASSWORD = "tulip-meadow-4821"
USER_PASSWORD = "lilac-harbor-93"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_pg_database() -> str:
    """A new, empty database on the real server; returns its URL."""
    import psycopg

    name = f"crispml_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    assert re.fullmatch(r"crispml_test_[0-9a-f]+", name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    """A real ``crispml run`` process on a free loopback port, with its own CRISPML_HOME."""

    home: Path
    port: int = field(default_factory=free_port)
    env_extra: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"server-{self.port}.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CRISPML_", "STREAMLIT_"))}
        # No sample data on first start (it costs seconds per server); tests that want it ask.
        env.update(
            {
                "CRISPML_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "CRISPML_SEED_SAMPLE_DATA": "false",
                **self.env_extra,
            }
        )
        return env

    def start(self, timeout: float = 40) -> Server:
        self.home.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "crispml",
                "--home",
                str(self.home),
                "run",
                "--port",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def cli(self, *args: str, stdin: str = "") -> str:
        """Run a ``crispml`` command on this server's home, as an operator would."""
        return subprocess.run(
            [sys.executable, "-m", "crispml", "--home", str(self.home), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
            env=self.env(),
            timeout=60,
        ).stdout.strip()

    def add_user(self, name: str, password: str = USER_PASSWORD) -> None:
        self.cli("user", "add", name, "--password-stdin", stdin=password + "\n")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)

    def login(
        self,
        client: httpx.Client,
        username: str = "admin",
        password: str = ADMIN_PASSWORD,
        next_path: str = "/",
    ) -> httpx.Response:
        page = client.get("/login", headers={"accept": "text/html"})
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert csrf, page.text
        return client.post(
            "/login",
            data={
                "username": username,
                "password": password,
                "csrf": csrf.group(1),
                "next": next_path,
            },
        )


T = TypeVar("T")


def in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on its own loop in a thread: the browser tests' Playwright keeps an event
    loop running in the main thread, where asyncio.run() refuses to start another."""
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
