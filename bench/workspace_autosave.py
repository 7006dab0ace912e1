"""Benchmark: what autosave and restore cost a Streamlit script run with 200 bound values.

Two versions of one script, each with 200 text inputs, run through Streamlit's AppTest against
real services (a SQLite file by default, or --database-url):
- "plain": plain session-state keys, no workspace (the baseline: a run that saves nothing);
- "workspace": the same inputs bound with ``ws.key``, with ``restore`` first and ``autosave`` last.
Every measured run changes one value; plain and bound runs are taken in turn, so the machine's
drifts fall on both alike. Reported: the median and p90 of whole runs for both, their
difference, the script time of the ``autosave``/``restore`` calls themselves (timed inside the
script), and the first render of a new session with 200 stored values against one without.

Targets (issue 3; issue 23 made the whole-run figures targets too, all checked): autosave under
5 ms at the median per run, and under 5 ms between the medians of whole runs; restore under 50 ms,
in the call and added to the first render. The exit status is 1 when one is missed.

    .venv/bin/python bench/workspace_autosave.py [--runs 60] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from crispml import services as services_module
from crispml.core.workspace import encode
from crispml.services import bootstrap, build_services
from crispml.settings import Settings
from crispml.ui import context

N = 200
PASSWORD = "bench-password-4821"
SCRIPT = """
import time
import streamlit as st
from crispml.ui import context, workspace as ws
auth = context.require_login()
BOUND = {bound}
t0 = time.perf_counter()
if BOUND:
    ws.restore(auth.user.id)
t1 = time.perf_counter()
for i in range({n}):
    st.text_input(f"value {{i}}", key=(ws.key(f"bench.v{{i}}") if BOUND else f"bench.v{{i}}"))
t2 = time.perf_counter()
if BOUND:
    ws.autosave(auth.user.id, end_of_run=True)
t3 = time.perf_counter()
st.session_state["_bench"] = {{"restore": t1 - t0, "autosave": t3 - t2}}
"""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def p90(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.9) - 1]


class Session:
    """One AppTest session of the script, plain or bound, run one changed value at a time."""

    def __init__(self, bound: bool) -> None:
        self.bound = bound
        self.at = AppTest.from_string(SCRIPT.format(bound=bound, n=N), default_timeout=60)
        self.at.run()
        self.runs = 0
        self.whole: list[float] = []
        self.autosave: list[float] = []

    def run(self) -> None:
        i = self.runs
        key = f"ws.bench.v{i % N}" if self.bound else f"bench.v{i % N}"
        self.at.text_input(key=key).input(f"value {i}")
        t = time.perf_counter()
        self.at.run()
        self.whole.append(time.perf_counter() - t)
        self.autosave.append(self.at.session_state["_bench"]["autosave"])
        self.runs += 1


def interleaved(runs: int) -> tuple[Session, Session]:
    """Plain and bound runs taken in turn, so the machine's drifts fall on both alike."""
    plain, bound = Session(False), Session(True)
    for _ in range(5):  # warm up imports and caches
        plain.run()
        bound.run()
    for values in (plain.whole, bound.whole, bound.autosave):
        values.clear()
    for _ in range(runs):
        plain.run()
        bound.run()
    return plain, bound


def first_renders(repeats: int) -> tuple[list[float], list[float], list[float]]:
    """First renders of new sessions, plain and bound in turn (every value already stored):
    the plain ones, the bound ones, and the restore calls inside the bound ones."""
    whole: dict[bool, list[float]] = {False: [], True: []}
    restore = []
    for _ in range(repeats):
        for bound in (False, True):
            at = AppTest.from_string(SCRIPT.format(bound=bound, n=N), default_timeout=60)
            t = time.perf_counter()
            at.run()
            whole[bound].append(time.perf_counter() - t)
            if bound:
                restore.append(at.session_state["_bench"]["restore"])
    return whole[False], whole[True], restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="crispml-bench-"))
    svc = build_services(
        Settings(
            home=home,
            database_url=args.database_url,
            admin_password=PASSWORD,
            seed_demo_project=False,
        )
    )
    bootstrap(svc)
    services_module.install(svc)
    token = svc.auth.login("admin", PASSWORD).token
    context.use_token_source(lambda: token)

    sessions = interleaved(args.runs)
    plain, bound, autosave = sessions[0].whole, sessions[1].whole, sessions[1].autosave
    admin = svc.auth.first_admin().id
    everything = {f"ws.bench.v{i}": encode(f"stored value {i}") for i in range(N)}
    svc.workspace.save(admin, {"none": everything}, writer="bench", known_revision=0)
    plain_first, bound_first, restore = first_renders(15)
    stored = svc.workspace.load(admin, ("none",)).values
    assert len(stored) == N, f"expected {N} stored values, found {len(stored)}"

    backend = "PostgreSQL" if args.database_url.startswith("postgres") else "SQLite"
    print(f"Workspace autosave and restore, {N} values, {backend}, {args.runs} runs each\n")
    print("| measure | median (ms) | p90 (ms) | target |")
    print("| --- | ---: | ---: | --- |")
    rows = [
        ("script run, plain keys (baseline: saves nothing)", plain, ""),
        ("script run, bound keys with restore + autosave", bound, ""),
        ("autosave call inside the run", autosave, "median < 5 ms"),
        ("first render of a new session, plain", plain_first, ""),
        ("first render of a new session, restoring 200 values", bound_first, ""),
        ("restore call inside the first render", restore, "median < 50 ms"),
    ]
    for label, values, target in rows:
        print(f"| {label} | {ms(statistics.median(values))} | {ms(p90(values))} | {target} |")
    run_cost = statistics.median(bound) - statistics.median(plain)
    first_cost = statistics.median(bound_first) - statistics.median(plain_first)
    print(f"| difference of run medians (autosave's cost per run) | {ms(run_cost)} | | < 5 ms |")
    print(f"| difference of first-render medians (restore's cost) | {ms(first_cost)} | | < 50 ms |")
    ok = statistics.median(autosave) < 0.005 and statistics.median(restore) < 0.050
    ok = ok and run_cost < 0.005 and first_cost < 0.050
    print(f"\ntargets {'met' if ok else 'NOT met'}")
    svc.db.dispose()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
