"""Live training plots: one chart per metric (train and validation together, several runs
compared), a progress bar with the time left, the log's tail and downloads.

    live_plots.show([Watched("run 1", job)], key="modeling")

The controls (refresh interval, x axis, smoothing, log scale, outliers) are kept in the user's
workspace. Only the charts and the log rerun on the interval (a fragment), never the page; the
trackers behind them are shared and read only what the jobs appended since the last refresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

import altair as alt
import pandas as pd
import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.core.jobs import Job
from crispml.core.tracking import TRACKERS, Curve, RunTracker, curve, group_metrics, y_range
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.widgets import process_table

INTERVALS = [0, 1, 2, 5, 10, 30]  # seconds; 0 is off
AXES = {"step": "Step", "epoch": "Epoch", "time": "Time (s)"}
POINTS = 800  # about a chart's width in pixels: more points would not show
LOG_LINES = 40
INTERVALS_KEYS = ("interval", "axis", "smoothing", "log", "outliers")
_WAS_LIVE = "_crispml.live.was_running"


@dataclass(frozen=True)
class Watched:
    label: str
    job_id: str


@dataclass(frozen=True)
class Options:
    interval: int
    axis: str
    smoothing: float
    log: bool
    outliers: bool


def options() -> Options:
    """The chart controls, bound to the user's workspace (the same on every page)."""
    keys = {name: ws.user_key(f"live.{name}") for name in INTERVALS_KEYS}
    if st.session_state.get(keys["interval"]) not in INTERVALS:
        ws.set_value(keys["interval"], 2)
    if st.session_state.get(keys["axis"]) not in AXES:
        ws.set_value(keys["axis"], "step")
    ws.ensure(keys["smoothing"], float, 0.6)
    ws.default(keys["smoothing"], 0.6)
    ws.ensure(keys["log"], bool, False)
    ws.default(keys["log"], False)
    ws.ensure(keys["outliers"], bool, False)
    ws.default(keys["outliers"], False)
    interval, axis, smoothing, toggles = st.columns([1, 1.2, 1.4, 1.1])
    chosen = interval.selectbox(
        "Refresh",
        INTERVALS,
        format_func=lambda s: f"every {s} s" if s else "off",
        key=keys["interval"],
        help="How often the charts and the log are read again while runs are going.",
    )
    x = axis.segmented_control(
        "X axis", list(AXES), format_func=lambda a: a.capitalize(), key=keys["axis"]
    )
    weight = smoothing.slider(
        "Smoothing",
        0.0,
        0.99,
        step=0.01,
        key=keys["smoothing"],
        help="Exponential moving average, debiased as in TensorBoard; the raw values show "
        "faintly behind.",
    )
    with toggles:
        use_log = st.toggle("Log scale", key=keys["log"])
        skip = st.toggle(
            "Ignore outliers",
            key=keys["outliers"],
            help="Scale the y axis to the 1st to 99th percentile.",
        )
    return Options(int(chosen or 0), str(x or "step"), float(weight), bool(use_log), bool(skip))


def show(watched: Sequence[Watched], key: str) -> None:
    """The live view of ``watched`` runs: controls, then a fragment that refreshes itself.
    One per page: the controls are the user's, with the same keys everywhere."""
    if not watched:
        st.caption("No run to show: train one on **Modeling**.")
        return
    chosen = options()
    jobs = _jobs(watched)
    running = any(not job.finished for _, job in jobs)
    every = chosen.interval if running and chosen.interval else None
    state_key = f"{_WAS_LIVE}.{key}"
    st.session_state[state_key] = running

    def body() -> None:
        current = _jobs(watched)
        if st.session_state.get(state_key) and not any(not j.finished for _, j in current):
            st.session_state[state_key] = False
            st.rerun()  # every run ended: the page shows their results and stops refreshing
        if running and not every:
            st.button(":material/refresh: Refresh now", key=f"live.refresh.{key}")  # reruns this
        _render(current, chosen, key)

    st.fragment(body, run_every=every)()


def _jobs(watched: Sequence[Watched]) -> list[tuple[str, Job]]:
    user = context.current_user()
    found = []
    for item in watched:
        try:
            job = context.services().jobs.get(user.id, item.job_id, admin=user.is_admin)
        except CrispmlError:
            continue  # deleted meanwhile
        found.append((item.label, job))
    return found


def tracker(job: Job) -> RunTracker:
    patterns = context.services().settings.log_metric_patterns
    return TRACKERS.refreshed(Path(job.workdir), patterns)


def _render(jobs: list[tuple[str, Job]], chosen: Options, key: str) -> None:
    if not jobs:
        st.caption("These runs' jobs have been deleted.")
        return
    trackers = [(label, job, tracker(job)) for label, job in jobs]
    for label, job, run in trackers:
        if not job.finished:
            _progress(label if len(trackers) > 1 else "", job, run)
        _latest(label, run)
    names = sorted({name for _, _, run in trackers for name in run.series})
    if not names:
        waiting = any(not job.finished for _, job, _ in trackers)
        st.caption(
            "No metrics yet: they appear as the job logs them."
            if waiting
            else "These runs logged no metrics over time."
        )
    else:
        _charts(trackers, names, chosen)
    _log(trackers, key)


def _progress(label: str, job: Job, run: RunTracker) -> None:
    share = run.fraction()
    elapsed = (datetime.now(UTC) - (job.started_at or job.created_at)).total_seconds()
    parts = [label] if label else []
    last = run.last_step
    counted = f"step {last:g} of {run.total}" if run.total and last is not None else ""
    parts.append(run.message or counted)
    parts.append(f"{process_table.hms(elapsed)} elapsed")
    if share and share > 0:
        parts.append(f"about {process_table.hms(elapsed * (1 - share) / share)} left")
    text = " · ".join(p for p in parts if p)
    if share is None:
        st.caption(f"{text} · {job.status}")
    else:
        st.progress(min(1.0, share), text=text)


def _latest(label: str, run: RunTracker) -> None:
    """The newest value of each metric, in words (also what a screen reader gets)."""
    with run.lock:
        latest = {name: s for name, s in run.series.items() if len(s)}
        if not latest:
            return
        shown = ", ".join(f"{n} {float(s.values[-1]):.4g}" for n, s in list(latest.items())[:8])
        more = f" and {len(latest) - 8} more" if len(latest) > 8 else ""
        step = run.last_step
        st.caption(
            f"{label} · {run.points:,} points · latest"
            + (f" at step {step:g}" if step is not None else "")
            + f": {shown}{more}"
        )


def _charts(trackers: list[tuple[str, Job, RunTracker]], names: list[str], chosen: Options) -> None:
    groups = group_metrics(names)
    columns = st.columns(2)
    several = len(trackers) > 1
    for index, (base, parts) in enumerate(groups.items()):
        curves: list[tuple[str, Curve]] = []
        for label, job, run in trackers:
            origin = job.started_at.timestamp() if job.started_at else None
            with run.lock:
                for part, name in parts.items():
                    series = run.series.get(name)
                    if series is None or not len(series):
                        continue
                    line = " · ".join(p for p in (label if several else "", part or name) if p)
                    made = curve(
                        series,
                        chosen.axis,
                        smoothing=chosen.smoothing,
                        points=POINTS,
                        log=chosen.log,
                        origin=origin,
                    )
                    curves.append((line, made))
        if curves:
            with columns[index % 2]:
                st.altair_chart(chart(base, curves, chosen), width="stretch")


def chart(title: str, curves: list[tuple[str, Curve]], chosen: Options) -> alt.LayerChart:
    """One metric's chart: a faint raw line and the smoothed one per series, and the min/max
    band where points were merged."""
    smoothing = chosen.smoothing > 0
    lines = pd.concat(
        [
            pd.DataFrame({"x": c.x, "value": c.y, "smoothed": c.smooth, "series": name})
            for name, c in curves
        ],
        ignore_index=True,
    )
    domain = y_range([c.sample for _, c in curves], chosen.log) if chosen.outliers else None
    kind: Literal["log", "linear"] = "log" if chosen.log else "linear"
    scale = (
        alt.Scale(type=kind, zero=False, domain=list(domain))
        if domain
        else alt.Scale(type=kind, zero=False)
    )
    x = alt.X("x:Q", title=AXES[chosen.axis])
    color = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(scheme="tableau10"),
        legend=alt.Legend(orient="bottom", symbolOpacity=1),
    )
    layers: list[alt.Chart] = []
    bands = [
        pd.DataFrame({"x": c.band_x, "low": c.band_low, "high": c.band_high, "series": name})
        for name, c in curves
        if len(c.band_x)
    ]
    if bands:
        layers.append(
            alt.Chart(pd.concat(bands, ignore_index=True))
            .mark_area(opacity=0.15, clip=True)
            .encode(x=x, y=alt.Y("low:Q", scale=scale), y2="high:Q", color=color)
        )
    tooltip = [alt.Tooltip("series:N"), alt.Tooltip("x:Q", title=AXES[chosen.axis])]
    raw = (
        alt.Chart(lines)
        .mark_line(opacity=0.25 if smoothing else 1.0, clip=True)
        .encode(
            x=x,
            y=alt.Y("value:Q", title=title, scale=scale),
            color=color,
            tooltip=[*tooltip, alt.Tooltip("value:Q", format=".4g")],
        )
    )
    layers.append(raw)
    # A series of one point (a final metric logged once per part) draws no line: a dot then.
    single = lines[lines.groupby("series")["x"].transform("size") == 1]
    if len(single):
        layers.append(
            alt.Chart(single)
            .mark_point(filled=True, size=90, opacity=1, clip=True)
            .encode(
                x=x,
                y=alt.Y("value:Q", title=title, scale=scale),
                color=color,
                tooltip=[*tooltip, alt.Tooltip("value:Q", format=".4g")],
            )
        )
    if smoothing:
        layers.append(
            alt.Chart(lines)
            .mark_line(clip=True)
            .encode(
                x=x,
                y=alt.Y("smoothed:Q", title=title, scale=scale),
                color=color,
                tooltip=[*tooltip, alt.Tooltip("smoothed:Q", format=".4g")],
            )
        )
    merged = sum(c.points for _, c in curves) > len(lines)
    subtitle = f"{sum(c.points for _, c in curves):,} points" + (
        f", {len(lines):,} drawn (band: min to max of merged points)" if merged else ""
    )
    layered = alt.layer(*layers).properties(
        height=260, title=alt.Title(title, subtitle=subtitle, anchor="start")
    )
    return cast(alt.LayerChart, layered)


def _log(trackers: list[tuple[str, Job, RunTracker]], key: str) -> None:
    jobs = {job.id: (label, job) for label, job, _ in trackers}
    if not jobs:  # every watched job was deleted meanwhile
        return
    job_id = next(iter(jobs))
    if len(jobs) > 1:
        job_id = st.selectbox(
            "Log of",
            list(jobs),
            format_func=lambda i: jobs[i][0],
            key=f"live.log.{key}",
        )
    job = jobs[job_id][1]
    log_pane(job)
    runs = {j.id: run for _, j, run in trackers}
    left, right, _ = st.columns([1, 1, 2])
    left.link_button(":material/download: Full log", f"/jobs/{job.id}/log")
    right.link_button(
        ":material/download: Metrics (CSV)",
        f"/jobs/{job.id}/metrics.csv",
        disabled=not runs[job.id].series,
    )


def log_pane(job: Job) -> None:
    """The last lines of a job's output; while it runs, each refresh shows the newest."""
    text = context.services().jobs.log_tail(job, 16_000)
    lines = text.splitlines()[-LOG_LINES:]
    state = "running: newest lines last" if not job.finished else job.status
    st.caption(f"Output of {job.name} ({state})")
    st.code("\n".join(lines) or "(no output yet)", language=None, wrap_lines=True)
