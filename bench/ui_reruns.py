"""Benchmark: what a rerun of a page costs the server, and its memory per session (issue 23).

Targets, checked and printed:
- a rerun costs at most 1.3x a plain Streamlit page's server CPU, and its p50 latency at most
  1.15x the plain page's, with 1 and 3 active sessions;
- with 20 active sessions the p50 rerun is at most 2x crispml's 1-session p50;
- the server's RSS with 20 sessions open is at most 1.5x a plain Streamlit server's with 20, plus
  crispml's own start-up size: crispml_20 <= 1.5 * plain_20 + (crispml_start - plain_start).

Three servers run side by side: crispml (``crispml run``, a fresh home with its demo project),
bench/plain_page.py under ``streamlit run`` with Streamlit's own settings (the baseline of the
targets), and the same plain page with crispml's runner setting runner.postScriptGC = false
(shown, no target: Streamlit's default full collection after every run is most of the plain
page's rerun). Real sessions over Streamlit's WebSocket protocol: each logs in over HTTP (crispml's
login form), takes the cookies a browser would have (the session cookie, _streamlit_xsrf), opens
/_stcore/stream with them, its Origin and the XSRF token in Sec-WebSocket-Protocol as Streamlit's
frontend does, and sends BackMsg rerun_script as the frontend does when a user interacts (the
page's script hash, the browser's context; no widget values: the server keeps the last ones). A
rerun is timed from the send to the ForwardMsg script_finished of the full run, and counts only if
its deltas drew "Business understanding" (the landing page's title: not a login page or an
error). Fragment runs are never requested.

1 and 3 active sessions rerun in a closed loop (the next rerun when the previous one finished);
20 active sessions each rerun after a think time (uniform 0.5x-1.5x of --think, a person working;
--think 0 is a closed loop, which queues 20 runs behind one another on any Streamlit server). Each
measure takes a window per server in each of several rounds, the servers taking turns in an order
rotated each round, so the machine's drift falls on all; the rounds are pooled. Server CPU per
rerun = CPU seconds of the process tree in the window / reruns. RSS (the process tree's) is read
after the first page load, and with 20 sessions open after their windows.

    .venv/bin/python bench/ui_reruns.py [--window 20] [--rounds 3] [--think 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idle_sessions import PASSWORD, crispml_server, plain_server
from processes import cpu_seconds

MARKER = b"Business understanding"
TARGET_CPU, TARGET_P50, TARGET_20, TARGET_RSS = 1.3, 1.15, 2, 1.5


def rss(pid: int) -> float:
    """MiB resident in the process and its children."""
    process = psutil.Process(pid)
    tree = [process, *process.children(recursive=True)]
    return sum(int(p.memory_info().rss) for p in tree) / 2**20


def browser_cookies(url: str, login: bool) -> dict[str, str]:
    """The cookies a browser holds for / after loading the page (and logging in on crispml)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        if login:
            form = http.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf, form
            fields = {"csrf": csrf.group(1), "next": "/", "username": "admin"}
            answer = http.post(
                "/login", data=fields | {"password": PASSWORD}, headers={"Origin": url}
            )
            assert answer.status_code == 303, answer.text
        page = http.get("/", headers={"Accept": "text/html"})  # Streamlit's page, not a login
        if page.status_code != 200 or "<title>Streamlit</title>" not in page.text:
            raise RuntimeError(f"{url}/ is not Streamlit's page: {page.text[:300]}")
        http.get("/_stcore/health").raise_for_status()  # sets _streamlit_xsrf
        cookies = {c.name: c.value or "" for c in http.cookies.jar if c.path == "/"}
    assert "_streamlit_xsrf" in cookies, cookies
    return cookies


@dataclass
class Session:
    ws: websockets.ClientConnection
    url: str
    page_hash: str = ""

    @classmethod
    async def open(cls, url: str, login: bool) -> Session:
        cookies = await asyncio.to_thread(browser_cookies, url, login)
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        ws = await websockets.connect(
            "ws" + url.removeprefix("http") + "/_stcore/stream",
            subprotocols=["streamlit", cookies["_streamlit_xsrf"]],  # type: ignore[list-item]
            additional_headers={"Cookie": cookie, "Origin": url},
            max_size=None,
            ping_interval=None,
            open_timeout=60,
        )
        session = cls(ws, url)
        await session.rerun()  # the first page load
        return session

    async def rerun(self) -> float:
        """One full rerun of the current page; its latency in seconds."""
        msg = BackMsg()
        state = msg.rerun_script
        state.page_script_hash = self.page_hash
        state.widget_states.SetInParent()
        info = state.context_info
        info.timezone, info.locale, info.url = "UTC", "en-US", self.url + "/"
        info.color_scheme = "light"
        start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        drawn = False
        while True:
            data = await asyncio.wait_for(self.ws.recv(), timeout=120)
            assert isinstance(data, bytes)
            fwd = ForwardMsg.FromString(data)
            kind = fwd.WhichOneof("type")
            if kind == "delta":
                drawn |= MARKER in data
            elif kind == "new_session" and fwd.new_session.page_script_hash:
                self.page_hash = fwd.new_session.page_script_hash
            elif kind == "navigation":
                self.page_hash = fwd.navigation.page_script_hash
            elif kind == "script_finished":
                if fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    break
                if fwd.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    raise RuntimeError(f"{self.url}: the script did not compile")
                # a fragment's run, or a run cut short by st.rerun: the full run comes next
        elapsed = time.perf_counter() - start
        if not drawn:
            raise RuntimeError(f"{self.url}: the rerun did not draw the landing page")
        return elapsed


Runs = dict[tuple[str, int], list["Window"]]
Rss = dict[str, tuple[float, float]]  # MiB at start, with 20 sessions


@dataclass
class Window:
    latencies: list[float]
    cpu: float  # server CPU seconds
    seconds: float

    @property
    def reruns(self) -> int:
        return len(self.latencies)

    @property
    def cpu_per_rerun(self) -> float:
        return self.cpu / self.reruns


async def window(pid: int, sessions: list[Session], seconds: float, think: float = 0) -> Window:
    """Reruns in each session until ``seconds`` have passed (the last ones finish)."""
    for session in sessions:  # warm-up, not measured
        await session.rerun()
    rng = random.Random(len(sessions))
    latencies: list[float] = []
    start, before = time.monotonic(), cpu_seconds(pid)
    deadline = start + seconds

    async def loop(session: Session) -> None:
        while time.monotonic() < deadline:
            if think:  # a person between two interactions: part of the load, not a wait
                await asyncio.sleep(rng.uniform(0.5, 1.5) * think)
                if time.monotonic() >= deadline:
                    break
            latencies.append(await session.rerun())

    await asyncio.gather(*(loop(s) for s in sessions))
    used = cpu_seconds(pid) - before
    return Window(latencies, used, time.monotonic() - start)


def pooled(windows: list[Window]) -> Window:
    latencies = [x for w in windows for x in w.latencies]
    return Window(latencies, sum(w.cpu for w in windows), sum(w.seconds for w in windows))


def p(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def plain_without_gc(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    os.environ["STREAMLIT_RUNNER_POST_SCRIPT_GC"] = "false"  # as crispml sets it
    try:
        return plain_server(tmp)
    finally:
        del os.environ["STREAMLIT_RUNNER_POST_SCRIPT_GC"]


SERVERS = {"crispml": crispml_server, "plain": plain_server, "no GC": plain_without_gc}


async def run(args: argparse.Namespace, tmp: Path) -> bool:
    urls: dict[str, str] = {}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, server in SERVERS.items():
            (tmp / name).mkdir()
            procs[name], urls[name] = server(tmp / name)
        sessions: dict[str, list[Session]] = {name: [] for name in urls}
        memory: Rss = {}

        async def grow(name: str, count: int) -> None:
            while len(sessions[name]) < count:
                sessions[name].append(await Session.open(urls[name], name == "crispml"))

        for name in urls:
            await grow(name, 1)
            memory[name] = (rss(procs[name].pid), 0.0)
        runs: Runs = {}
        for count, think in ((1, 0.0), (3, 0.0), (20, args.think)):
            for name in urls:
                await grow(name, count)
            for round_ in range(args.rounds):
                for name in list(urls)[round_ % 3 :] + list(urls)[: round_ % 3]:
                    w = await window(procs[name].pid, sessions[name][:count], args.window, think)
                    runs.setdefault((name, count), []).append(w)
                    line = f"{w.reruns} reruns, p50 {1000 * p(w.latencies, 50):.1f} ms"
                    print(f"round {round_ + 1}, {count} active, {name}: {line}", file=sys.stderr)
        for name in urls:
            memory[name] = (memory[name][0], rss(procs[name].pid))
        for session in (s for group in sessions.values() for s in group):
            await session.ws.close()
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=30)
    return report(args, runs, memory)


def cells(*values: object) -> None:
    print("| " + " | ".join(str(v) for v in values) + " |")


def report(args: argparse.Namespace, runs: Runs, rss_: Rss) -> bool:
    checks: list[bool] = []

    def check(value: float, limit: float, unit: str = "x") -> str:
        checks.append(value <= limit)
        return f"≤ {limit:g}{unit} {'met' if checks[-1] else 'NOT met'}"

    def row(label: str, values: tuple[float, ...], fmt: str, ratio: bool, target: str = "") -> None:
        """crispml, plain, their ratio, the target, no GC, crispml / no GC."""
        a, b, c = (format(v, fmt) for v in values)
        r, s = (f"{values[0] / v:.2f}x" if ratio else "" for v in values[1:])
        cells(label, a, b, r, target, c, s)

    print(f"Landing page reruns over Streamlit's WebSocket, {args.window:g} s per measure and")
    print(f"server in each of {args.rounds} rounds, the servers taking turns, pooled. no GC: the")
    print("plain page with runner.postScriptGC = false, as crispml sets it (shown, no target).\n")
    cells("measure", "crispml", "plain", "ratio", "target", "no GC", "crispml / no GC")
    cells("---", "---:", "---:", "---:", "---", "---:", "---:")
    for n in (1, 3):
        windows = [pooled(runs[name, n]) for name in SERVERS]
        for label, get, limit in (
            ("server CPU per rerun", lambda w: w.cpu_per_rerun, TARGET_CPU),
            ("p50 rerun", lambda w: p(w.latencies, 50), TARGET_P50),
            ("p90 rerun", lambda w: p(w.latencies, 90), 0),
        ):
            ms = tuple(1000 * get(w) for w in windows)
            target = check(ms[0] / ms[1], limit) if limit else ""
            row(f"{label}, {n} active (ms)", ms, ".1f", True, target)
        row(f"reruns answered, {n} active", tuple(w.reruns for w in windows), "d", False)
    busy = {name: pooled(runs[name, 20]) for name in SERVERS}
    p50 = {n: (p(pooled(runs[n, 1]).latencies, 50), p(busy[n].latencies, 50)) for n in busy}
    ms = tuple(1000 * twenty for _, twenty in p50.values())
    row(f"p50 rerun, 20 active, think {args.think:g} s (ms)", ms, ".1f", False)
    ratios = tuple(twenty / one for one, twenty in p50.values())
    target = check(ratios[0], TARGET_20)
    row("p50 at 20 / p50 at 1 active, same server (x)", ratios, ".2f", False, target)
    row("reruns answered, 20 active", tuple(w.reruns for w in busy.values()), "d", False)
    cpu = tuple(100 * w.cpu / w.seconds for w in busy.values())
    row("server CPU, 20 active (% of a core)", cpu, ".0f", False)
    (c0, c20), (p0, p20), (n0, n20) = rss_.values()
    limit = TARGET_RSS * p20 + c0 - p0
    row("RSS at start, after the first page (MiB)", (c0, p0, n0), ".0f", False)
    target = check(c20, round(limit), " MiB (below)")
    row("RSS with 20 sessions open (MiB)", (c20, p20, n20), ".0f", True, target)
    print(f"\nMemory: crispml_20 <= {TARGET_RSS} * plain_20 + (crispml_start - plain_start):")
    print(f"{c20:.0f} <= {TARGET_RSS} * {p20:.0f} + ({c0:.0f} - {p0:.0f}) = {limit:.0f} MiB")
    print("\nNoise: crispml / plain in each round (20 / 1: crispml / crispml), and the spread\n")
    spec = [("CPU", 1, "plain", 1), ("p50", 1, "plain", 1), ("CPU", 3, "plain", 3)]
    spec += [("p50", 3, "plain", 3), ("p50", 20, "crispml", 1)]
    cells("round", *(f"{what}, {n} active{' / 1' * (k != n)}" for what, n, _, k in spec))
    cells(*["---:"] * 6)

    def stat(what: str, w: Window) -> float:
        return w.cpu_per_rerun if what == "CPU" else p(w.latencies, 50)

    table = [
        [
            stat(what, runs["crispml", n][r]) / stat(what, runs[other, k][r])
            for what, n, other, k in spec
        ]
        for r in range(args.rounds)
    ]
    for r, values in enumerate(table, 1):
        cells(r, *(f"{v:.2f}x" for v in values))
    cells("min-max", *(f"{min(c):.2f}-{max(c):.2f}x" for c in zip(*table, strict=True)))
    print(f"\ntargets {'met' if all(checks) else 'NOT met'}")
    return all(checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20, help="seconds per measure")
    parser.add_argument("--rounds", type=int, default=3, help="crispml/plain rounds, at least 2")
    parser.add_argument("--think", type=float, default=2, help="mean think time at 20 sessions")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds: at least 2, so the spread of the rounds shows the noise")
    with tempfile.TemporaryDirectory(prefix="crispml-bench-reruns-") as tmp:
        met = asyncio.run(run(args, Path(tmp)))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
