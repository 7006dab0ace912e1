"""Benchmark: the Data understanding page on a table of 1 million rows.

Issue 7 asks that large tables stay responsive: the profile is computed once, cached by dataset
version, and computed as a job when it would take more than a few seconds. Measured here, in one
run on the same table (1,000,000 rows: 6 numeric columns, 2 categorical, some gaps):

- baseline: pandas reading the Parquet copy and ``describe(include="all")``, what a page that
  profiles on every rerun would at least pay;
- crispml's full profile (what the profile job computes once);
- what the page pays on a rerun once the profile is cached: reading the cached JSON, and a whole
  AppTest run of the Data understanding page (profile tab open, 100 sample rows).

    .venv/bin/python bench/data_profile.py [--rows 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(i, 1 + i, rows) for i in range(6)})
    frame.loc[rng.random(rows) < 0.02, "x1"] = np.nan
    frame["segment"] = rng.choice(["a", "b", "c", "d", None], rows)
    frame["label"] = rng.choice(["yes", "no"], rows, p=[0.2, 0.8])
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="crispml-bench-data-"))
    try:
        from streamlit.testing.v1 import AppTest

        from crispml import services as services_module
        from crispml.core.data.profile import profile_table
        from crispml.services import bootstrap, build_services
        from crispml.settings import Settings
        from crispml.ui import context

        password = "tulip-meadow-4821"
        svc = build_services(Settings(home=home, admin_password=password))
        bootstrap(svc, samples=False)
        services_module.install(svc)
        admin = svc.auth.first_admin()
        assert admin is not None
        project = svc.projects.list(admin.id)[0]
        files = home / "users" / "admin" / "files"
        files.mkdir(parents=True, exist_ok=True)
        table(args.rows).to_parquet(files / "big.parquet", index=False)
        t = time.perf_counter()
        dataset = svc.datasets.register(admin, project.id, "big", files / "big.parquet", "big")
        register_s = time.perf_counter() - t
        path = svc.datasets.folder(dataset.id) / "data.parquet"

        def baseline() -> object:
            return pd.read_parquet(path).describe(include="all")

        def full_profile() -> object:
            return profile_table(pd.read_parquet(path))

        rows = [
            ("baseline: read + pandas describe(all)", timed(baseline, args.repeats)),
            ("crispml profile (the job's work, once)", timed(full_profile, args.repeats)),
        ]
        how = "as a job" if svc.datasets.needs_job(dataset) else "inline, with a spinner"
        svc.datasets.profile(dataset)  # what the job leaves behind
        rows.append(
            (
                "page rerun: read the cached profile",
                timed(lambda: svc.datasets.cached_profile(dataset), args.repeats),
            )
        )
        token = svc.auth.login("admin", password).token
        context.use_token_source(lambda: token)
        script = (
            "from crispml.ui import context, workspace\n"
            "from crispml.ui.views import data_understanding\n"
            "a = context.require_login()\nworkspace.restore(a.user.id)\n"
            "data_understanding.render()\n"
        )
        page = AppTest.from_string(script, default_timeout=120).run()  # warm: imports, frame read
        assert not page.exception, page.exception
        assert page.metric[0].value == f"{args.rows:,}"

        def rerun() -> object:
            return page.run()

        rows.append(("page rerun: whole AppTest run, cached", timed(rerun, args.repeats)))
        print(f"table: {args.rows:,} rows x 8 columns; registering it took {register_s:.2f} s")
        print(f"a first visit profiles it {how}")
        print("| measure | median (s) | min (s) | max (s) |")
        print("| --- | ---: | ---: | ---: |")
        for name, times in rows:
            print(
                f"| {name} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |"
            )
        base = statistics.median(rows[0][1])
        cached = statistics.median(rows[-1][1])
        print(
            f"\nA cached page rerun costs {cached / base:.2f} x the baseline's single describe()."
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
