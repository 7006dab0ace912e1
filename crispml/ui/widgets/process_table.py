"""The process table: live jobs with CPU and memory, stop per job and stop all.

Both versions refresh themselves with ``st.fragment(run_every=...)``: only the table reruns,
not the page, and often only while a job is active. ``compact`` goes in the sidebar; ``full``
on the Jobs page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.core.jobs import ACTIVE, KIND_LABELS, SERVICE_KINDS, Job
from crispml.ui import context
from crispml.ui.widgets import feedback
from crispml.ui.widgets.confirm import confirm_button

REFRESH = timedelta(seconds=2)  # while something is queued or running
IDLE_REFRESH = timedelta(seconds=15)  # else: a job started elsewhere shows within this


def duration(job: Job) -> str:
    if job.started_at is None:
        return ""
    end = job.ended_at or datetime.now(UTC)
    return hms((end - job.started_at).total_seconds())


def _table(jobs: list[Job]) -> None:
    service = context.services().jobs
    rows = []
    for job in jobs:
        cpu, rss = service.usage(job)
        rows.append(
            {
                "Name": job.name,
                "Kind": KIND_LABELS.get(job.kind, job.kind),
                "Owner": job.owner,
                "Status": job.status,
                "Started": f"{job.started_at:%H:%M:%S}" if job.started_at else "",
                "Duration": duration(job),
                "CPU %": round(cpu, 1),
                "Memory MB": round(rss / 1e6, 1),
            }
        )
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={  # every column visible at 1280 px (the name takes what is left)
            "Name": st.column_config.TextColumn(width="medium"),
            "Kind": st.column_config.TextColumn(width="small"),
            "Owner": st.column_config.TextColumn(width="small"),
            "Status": st.column_config.TextColumn(width="small"),
            "Started": st.column_config.TextColumn(width="small"),
            "Duration": st.column_config.TextColumn(width="small"),
            "CPU %": st.column_config.NumberColumn(format="%.1f", width="small"),
            "Memory MB": st.column_config.NumberColumn(format="%.1f", width="small"),
        },
    )


def hms(seconds: float) -> str:
    """A duration as H:MM:SS."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _visible_jobs(statuses: tuple[str, ...] = ACTIVE) -> list[Job]:
    user = context.current_user()
    return context.services().jobs.history(
        None if user.is_admin else user.id, statuses=statuses, limit=200
    )


def compact() -> None:
    """The sidebar's view: my (admins: all) running and queued jobs. It refreshes every 2 s
    while a job is active, else every 15 s (a job started on a page reruns the page, and the
    list with it)."""
    every = REFRESH if _visible_jobs() else IDLE_REFRESH
    st.fragment(_compact, run_every=every)()


def _compact() -> None:
    jobs = _visible_jobs()
    if not jobs:
        st.caption(":material/memory: No jobs running.")
        return
    st.caption(f":material/memory: {len(jobs)} job{'s' if len(jobs) != 1 else ''} active")
    for job in jobs[:8]:
        st.caption(
            f"{'▶' if job.status == 'running' else '…'} {job.name} · {job.status} · {duration(job)}"
        )


def full(jobs: list[Job]) -> None:
    """The Jobs page's table of running and queued jobs, work and services apart: name,
    owner, kind, status, started, duration, CPU %, memory; stop one or all. The page refreshes
    it (with the history, from the same query)."""
    user = context.current_user()
    service = context.services().jobs
    work = [j for j in jobs if j.kind not in SERVICE_KINDS]
    services = [j for j in jobs if j.kind in SERVICE_KINDS]
    st.subheader("Work: running and queued")
    if work:
        _table(work)
    else:
        hint = "Run a command above, or train a model." if user.may_run_code else "Train a model."
        st.info(f"No work is running or queued. {hint}", icon=":material/info:")
    st.subheader("Services")
    if services:
        _table(services)
    else:
        st.caption("No notebook or API server is running.")
    if not jobs:
        return
    labels = {j.id: f"{j.name} ({j.id}, {j.status})" for j in jobs}
    chosen = st.selectbox(
        "Job", list(labels), format_func=labels.__getitem__, key="jobs.live_choice"
    )
    stop_col, all_col = st.columns(2)
    with stop_col:
        if chosen and confirm_button(
            "Stop job",
            key=f"stop-{chosen}",
            message=f"Stop {labels[chosen]}? It gets SIGTERM, then SIGKILL after the grace period.",
        ):
            try:
                service.stop(user.id, chosen, admin=user.is_admin, actor=user.username)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                st.toast(f"Stopping {labels[chosen]}.", icon=":material/check_circle:")
    with all_col:
        label = "Stop all jobs" if user.is_admin else "Stop all mine"
        if confirm_button(
            label, key="stop-all", message=f"Stop {len(jobs)} running and queued job(s)?"
        ):
            count = service.stop_all(None if user.is_admin else user.id, actor=user.username)
            st.toast(f"Stopping {count} job(s).", icon=":material/check_circle:")
