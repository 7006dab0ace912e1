"""Benchmark: what autosave and restore cost a Streamlit script run with 200 bound values.

Two versions of one script, each with 200 text inputs, run through Streamlit's AppTest against
real services (a SQLite file by default, or --database-url):
- "plain": plain session-state keys, no workspace (the baseline: a run that saves nothing);
- "workspace": the same inputs bound with ``ws.key``, with ``restore`` first and ``autosave`` last.
Every measured run changes one value. Reported: the median and p90 of whole runs for both, their
difference, the script time of the ``autosave``/``restore`` calls themselves (timed inside the
script), and the first render of a new session with 200 stored values against one without.

Targets (issue 3): autosave under 5 ms at the median per run; restore under 50 ms added to the
first render.

    .venv/bin/python bench/workspace_autosave.py [--runs 60] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
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


def measure(bound: bool, runs: int) -> tuple[list[float], list[float], list[float], float]:
    """Whole-run times, in-script autosave and restore times, and the first render."""
    at = AppTest.from_string(SCRIPT.format(bound=bound, n=N), default_timeout=60)
    t = time.perf_counter()
    at.run()
    first = time.perf_counter() - t
    whole, autosave, restore = [], [], []
    for i in range(runs):
        key = f"ws.bench.v{i % N}" if bound else f"bench.v{i % N}"
        at.text_input(key=key).input(f"value {i}")
        t = time.perf_counter()
        at.run()
        whole.append(time.perf_counter() - t)
        autosave.append(at.session_state["_bench"]["autosave"])
        restore.append(at.session_state["_bench"]["restore"])
    return whole, autosave, restore, first


def first_render(bound: bool, repeats: int) -> tuple[list[float], list[float]]:
    """First render of new sessions (with all values already stored, when bound)."""
    whole, restore = [], []
    for _ in range(repeats):
        at = AppTest.from_string(SCRIPT.format(bound=bound, n=N), default_timeout=60)
        t = time.perf_counter()
        at.run()
        whole.append(time.perf_counter() - t)
        restore.append(at.session_state["_bench"]["restore"])
    return whole, restore


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

    measure(False, 5)  # warm up imports and caches
    plain, _, _, _ = measure(False, args.runs)
    bound, autosave, _, _ = measure(True, args.runs)
    admin = svc.auth.first_admin().id
    everything = {f"ws.bench.v{i}": encode(f"stored value {i}") for i in range(N)}
    svc.workspace.save(admin, {"none": everything}, writer="bench", known_revision=0)
    plain_first, _ = first_render(False, 15)
    bound_first, restore = first_render(True, 15)
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
    print(f"\ntargets {'met' if ok else 'NOT met'}")
    svc.db.dispose()


if __name__ == "__main__":
    main()
