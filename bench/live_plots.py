"""Benchmark: one refresh of the live training plots, at 10 thousand, 1 million and 10 million
points, with a 1 GB output log.

Issue 9 asks that a refresh of a run whose metrics file holds 1,000,000 points and whose log is
1 GB costs under 300 ms of script time, independent of the file sizes. For each size a real job
(a sleeping process, so the view is live) gets a ``metrics.jsonl`` of that many points (four
metrics per line) and a 1 GB ``output.log``. Before each timed refresh, 10 lines of metrics and
1 KB of log are appended, as a training job would. Measured with Streamlit's AppTest running the
live view (controls, progress, one chart per metric, the log's tail):

- crispml, first view: reads the files once (a one-off per run and server process);
- crispml, refresh: what every later refresh costs;
- naive: what a hand-written page does on every refresh: read the whole metrics file with
  pandas, plot every point with ``st.line_chart``, read the whole log to show its end.

    .venv/bin/python bench/live_plots.py [--sizes 10000,1000000,10000000] [--log-gb 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

NAIVE = """
import json
import pandas as pd
import streamlit as st
frame = pd.read_json({metrics!r}, lines=True)
values = pd.json_normalize(frame["metrics"]).set_index(frame["step"])
st.line_chart(values)
with open({log!r}, "rb") as f:
    text = f.read().decode("utf-8", "replace")
st.code("\\n".join(text.splitlines()[-40:]))
"""

LIVE = """
from crispml.ui import context, workspace
from crispml.ui.widgets import live_plots
auth = context.require_login()
workspace.restore(auth.user.id)
live_plots.show([live_plots.Watched("bench", {job_id!r})], key="bench")
"""


def write_metrics(path: Path, points: int) -> None:
    lines = points // 4
    with path.open("w") as f:
        for start in range(0, lines, 100_000):
            f.write(
                "".join(
                    f'{{"time":{1.7e9 + i:.3f},"step":{i},"metrics":{{"train_loss":'
                    f'{1 / (i + 1):.6f},"val_loss":{1.2 / (i + 1):.6f},"train_acc":'
                    f'{i / lines:.6f},"val_acc":{i / lines * 0.9:.6f}}}}}\n'
                    for i in range(start, min(start + 100_000, lines))
                )
            )


def write_log(path: Path, gigabytes: float) -> None:
    line = b"epoch 1 batch 123/456 loss 0.123456 lr 0.001 some more words of a chatty log line\n"
    block = line * (1024 * 1024 // len(line))
    with path.open("wb") as f:
        for _ in range(int(gigabytes * 1024)):
            f.write(block)


def append(folder: Path, step: int) -> None:
    with (folder / "metrics.jsonl").open("a") as f:
        for i in range(step, step + 10):
            f.write(json.dumps({"time": time.time(), "step": i, "metrics": {"train_loss": 0.1}}))
            f.write("\n")
    with (folder / "output.log").open("a") as f:
        f.write("x" * 1023 + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000,10000000")
    parser.add_argument("--log-gb", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--naive-repeats", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    home = Path(tempfile.mkdtemp(prefix="crispml-bench-live-"))
    svc = None
    try:
        from streamlit.testing.v1 import AppTest

        from crispml import services as services_module
        from crispml.core.jobs import JobSpec
        from crispml.services import bootstrap, build_services
        from crispml.settings import Settings
        from crispml.ui import context

        password = "tulip-meadow-4821"
        svc = build_services(Settings(home=home, admin_password=password))
        bootstrap(svc, samples=False)
        services_module.install(svc)
        admin = svc.auth.first_admin()
        assert admin is not None
        token = svc.auth.login("admin", password).token
        context.use_token_source(lambda: token)
        big_log = home / "big.log"
        started = time.perf_counter()
        write_log(big_log, args.log_gb)
        print(
            f"log: {big_log.stat().st_size / 2**30:.2f} GiB, written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        results = []
        for size in [1_000, *sizes]:  # the first, small one warms up (imports, caches)
            job = svc.jobs.submit(
                admin.id, "admin", JobSpec(["sleep", "3600"], f"bench-{size}", env="system")
            )
            deadline = time.monotonic() + 30
            while svc.jobs.get(admin.id, job.id).status != "running":
                assert time.monotonic() < deadline, "the job did not start"
                time.sleep(0.1)
            folder = svc.jobs.runtime.workdir(job.id)
            write_metrics(folder / "metrics.jsonl", size)
            (folder / "output.log").unlink(missing_ok=True)
            (folder / "output.log").hardlink_to(big_log)
            page = AppTest.from_string(LIVE.format(job_id=job.id), default_timeout=900)
            t = time.perf_counter()
            page.run()
            first = time.perf_counter() - t
            assert not page.exception, page.exception
            assert any("points · latest" in c.value for c in page.caption)
            refresh = []
            for repeat in range(args.repeats):
                append(folder, size + repeat * 10)
                t = time.perf_counter()
                page.run()
                refresh.append(time.perf_counter() - t)
                assert not page.exception, page.exception
            naive_page = AppTest.from_string(
                NAIVE.format(metrics=str(folder / "metrics.jsonl"), log=str(folder / "output.log")),
                default_timeout=1800,
            )
            naive = []
            for _ in range(args.naive_repeats if size in sizes else 1):
                append(folder, size + 10_000)
                t = time.perf_counter()
                naive_page.run()
                naive.append(time.perf_counter() - t)
                assert not naive_page.exception, naive_page.exception
            svc.jobs.stop(admin.id, job.id, admin=True, actor="admin")
            results.append((size, first, refresh, naive))
            print(f"done: {size:,} points", flush=True)
        print()
        print(
            "| points | crispml first view (s) | crispml refresh, median (ms) | p90 (ms) "
            "| naive refresh (s) | naive / crispml |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for size, first, refresh, naive in results[1:]:
            median = statistics.median(refresh)
            p90 = sorted(refresh)[max(0, round(0.9 * len(refresh)) - 1)]
            slow = statistics.median(naive)
            print(
                f"| {size:,} | {first:.2f} | {median * 1000:.0f} | {p90 * 1000:.0f} "
                f"| {slow:.2f} | {slow / median:.0f}x |"
            )
    finally:
        if svc is not None:
            for job in svc.jobs.history(None, statuses=["running", "queued", "starting"]):
                svc.jobs.stop(0, job.id, admin=True, actor="admin")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
