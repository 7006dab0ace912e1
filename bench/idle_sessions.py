"""Benchmark: what open pages that nobody touches cost the server (issue 23).

Target, checked and printed: an idle crispml session costs at most 1 % of a CPU core, with 1, 5
and 20 sessions open. The baseline, measured in the same run: a plain Streamlit page of about the
same content (bench/plain_page.py, Streamlit's own settings) with as many sessions.

Real sessions: one Chromium (Debian's) with a browser context per session, each logged in and
left on its landing page (Business understanding; its sidebar lists the user's jobs). After
the pages have loaded and a settling time, the CPU time of the server process (and any
children) is read over a window; per session = CPU seconds / window / sessions. The spread of
three windows shows how noisy the machine was.

    .venv/bin/python bench/idle_sessions.py [--window 45] [--sessions 1 5 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, sync_playwright
from processes import cpu_seconds

PASSWORD = "bench-password-4821"
TARGET = 1.0  # % of a core per idle session
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(argv: list[str], env: dict[str, str], url: str, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(log.read_text())


def crispml_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRISPML_", "STREAMLIT_"))}
    env |= {"CRISPML_ADMIN_PASSWORD": PASSWORD, "CRISPML_SEED_SAMPLE_DATA": "false"}
    argv = [sys.executable, "-m", "crispml", "--home", str(tmp / "home"), "run"]
    url = f"http://127.0.0.1:{port}"
    return start([*argv, "--port", str(port)], env, url + "/healthz", tmp / "crispml.log"), url


def plain_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-m", "streamlit", "run", str(HERE / "plain_page.py")]
    argv += ["--server.port", str(port), "--server.headless", "true"]
    argv += ["--browser.gatherUsageStats", "false"]
    url = f"http://127.0.0.1:{port}"
    return start(argv, dict(os.environ), url + "/_stcore/health", tmp / "plain.log"), url


def open_crispml(browser: Browser, url: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(url + "/")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.get_by_text("Signed in as").wait_for(timeout=120_000)
    page.get_by_role("heading", name="Business understanding").wait_for(timeout=120_000)
    return page


def open_plain(browser: Browser, url: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(url + "/")
    page.get_by_role("heading", name="Business understanding").wait_for(timeout=120_000)
    return page


def idle_cost(
    pid: int, pages: list[Page], window: float, settle: float, windows: int = 3
) -> list[float]:
    """% of a core per session in each window, after ``settle`` seconds of quiet."""
    for page in pages:
        page.wait_for_load_state("networkidle")
    time.sleep(settle)  # the last page's first fragment runs, its caches, the frozen heap
    costs = []
    for _ in range(windows):
        before, t = cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        used = cpu_seconds(pid) - before
        costs.append(100 * used / (time.monotonic() - t) / len(pages))
    return costs


def measure(
    browser: Browser,
    server: Callable[[Path], tuple[subprocess.Popen[bytes], str]],
    opener: Callable[[Browser, str], Page],
    count: int,
    tmp: Path,
    window: float,
) -> list[float]:
    proc, url = server(tmp)
    try:
        pages = [opener(browser, url) for _ in range(count)]
        costs = idle_cost(proc.pid, pages, window, settle=10)
        for page in pages:
            page.context.close()
        return costs
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=45)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 5, 20])
    args = parser.parse_args()
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for count in args.sessions:
            with tempfile.TemporaryDirectory(prefix="crispml-bench-idle-") as tmp:
                mine = measure(browser, crispml_server, open_crispml, count, Path(tmp), args.window)
            with tempfile.TemporaryDirectory(prefix="crispml-bench-idle-") as tmp:
                plain = measure(browser, plain_server, open_plain, count, Path(tmp), args.window)
            rows.append((count, mine, plain))
            print(f"{count} sessions done", file=sys.stderr)
        browser.close()

    print(f"Server CPU per idle session, % of one core ({args.window:.0f} s windows, 3 each)\n")
    print("| sessions | crispml (median) | crispml (windows) | plain Streamlit (median) | target |")
    print("| ---: | ---: | --- | ---: | --- |")
    met = True
    for count, mine, plain in rows:
        median = sorted(mine)[1]
        met &= median <= TARGET
        spread = ", ".join(f"{c:.2f}" for c in mine)
        print(
            f"| {count} | {median:.2f} | {spread} | {sorted(plain)[1]:.2f} | "
            f"≤ {TARGET:.0f} % {'met' if median <= TARGET else 'NOT met'} |"
        )
    print(f"\ntargets {'met' if met else 'NOT met'}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
