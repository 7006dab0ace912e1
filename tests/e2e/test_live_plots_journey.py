"""Live plots in a real browser: a job logs metrics for about ten seconds; its charts, progress
and log follow it without a page reload; the downloaded log equals the file on disk."""

from __future__ import annotations

import csv
import io
import re
import sys

import pytest
from playwright.sync_api import Download, Page, expect

from tests.e2e.conftest import choose, log_in, settle, shot, wait_for_shell
from tests.helpers import Server

pytestmark = pytest.mark.e2e

JOB = """
import math, time, crispml_job
crispml_job.total_steps(40)
go = crispml_job.run_dir() / "go"
for step in range(1, 41):
    loss = 1 / step + 0.05 * math.sin(step)
    crispml_job.log_metrics({"train_loss": loss, "val_loss": loss * 1.2}, step=step)
    print(f"step {step}: loss={loss:.4f}", flush=True)
    while step == 2 and not go.exists():  # the test says when to go on
        time.sleep(0.1)
    time.sleep(0.25)
print("finished", flush=True)
"""


def latest_step(page: Page) -> int:
    text = page.get_by_text(re.compile(r"latest at step \d+")).first.inner_text()
    match = re.search(r"latest at step (\d+)", text)
    assert match, text
    return int(match.group(1))


def download(page: Page, name: str) -> bytes:
    """Click a download link button (it opens a new tab that turns into the download)."""
    found: list[Download] = []

    def keep(item: Download) -> None:
        found.append(item)

    page.context.on("page", lambda popup: popup.on("download", keep))
    page.on("download", keep)
    page.get_by_role("link", name=name).click()
    for _ in range(100):
        if found:
            break
        page.wait_for_timeout(100)
    assert found, f"no download from {name!r}"
    path = found[0].path()
    assert path is not None
    return path.read_bytes()


def test_charts_follow_a_running_job_without_a_reload(server: Server, new_page) -> None:
    job_id = server.cli("jobs", "submit", "--name", "curves", "--", sys.executable, "-c", JOB)
    job_id = job_id.strip().split()[-1]
    page = new_page()
    page.goto(server.url + "/jobs")
    log_in(page, server)
    wait_for_shell(page)
    # Once it runs (the process table reruns the page when a job starts), open its details.
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("curves · running", exact=False)).to_be_visible(timeout=30_000)
    settle(page)
    choose(page, "Job details", "curves")
    expect(page.get_by_text("latest at step 2:", exact=False)).to_be_visible(timeout=30_000)
    page.evaluate("window.__not_reloaded = true")
    (server.home / "runs" / job_id / "go").touch()  # about ten seconds of metrics from here
    expect(page.get_by_text(re.compile(r"latest at step ([3-9]|\d\d):"))).to_be_visible()
    first = latest_step(page)
    expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"elapsed · about .* left"))).to_be_visible()
    page.get_by_text(re.compile(r"latest at step \d+")).first.scroll_into_view_if_needed()
    shot(page, "live-plots")
    # The fragment rereads the files every 2 s: more points arrive with no reload.
    for _ in range(40):
        page.wait_for_timeout(500)
        if latest_step(page) > first:
            break
    assert latest_step(page) > first
    assert page.evaluate("window.__not_reloaded") is True
    # At the end: all 40 steps, the log's last line, and the page still the same page.
    expect(page.get_by_text("latest at step 40", exact=False)).to_be_visible(timeout=30_000)
    expect(page.get_by_text("finished").first).to_be_visible(timeout=30_000)
    assert page.evaluate("window.__not_reloaded") is True

    settle(page)
    log_file = server.home / "runs" / job_id / "output.log"
    assert download(page, "Full log") == log_file.read_bytes()
    rows = list(csv.DictReader(io.StringIO(download(page, "Metrics (CSV)").decode())))
    assert len(rows) == 80
    assert {r["metric"] for r in rows} == {"train_loss", "val_loss"}
    assert sorted(int(r["step"]) for r in rows if r["metric"] == "val_loss") == list(range(1, 41))
