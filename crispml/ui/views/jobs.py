"""Jobs: the live process table, submitting a command, history with filters, logs."""

from __future__ import annotations

import contextlib
import json
import shlex
from datetime import UTC, datetime, time
from pathlib import Path

import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.core.jobs import FINISHED, KIND_LABELS, KINDS, Job, JobSpec
from crispml.core.records import read_job_file
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.views import environments
from crispml.ui.widgets import feedback, live_plots, process_table
from crispml.ui.widgets.confirm import confirm_button

STATUSES = ["queued", "starting", "running", "succeeded", "failed", "stopped", "lost"]


def _submit() -> None:
    user = context.current_user()
    line = str(st.session_state.get(ws.user_key("jobs.command"), ""))
    try:
        argv = shlex.split(line)  # tokenised only: the program runs without a shell
    except ValueError as exc:
        feedback.queue_error(f"The command cannot be read: {exc}.")
        return
    name = str(st.session_state.get(ws.user_key("jobs.name"), ""))
    env = str(st.session_state.get(ws.user_key("jobs.env")) or environments.default_environment())
    try:
        job = context.services().jobs.submit(user.id, user.username, JobSpec(argv, name, env=env))
    except CrispmlError as exc:
        feedback.queue_error(exc)
        return
    feedback.queue(f"Submitted job {job.id} ({job.status}).")


def _command_box() -> None:
    with st.expander("Run a command as a job", icon=":material/terminal:"):
        ws.ensure(ws.user_key("jobs.command"), str, "")
        ws.ensure(ws.user_key("jobs.name"), str, "")
        st.text_input(
            "Command", key=ws.user_key("jobs.command"), placeholder="python train.py --epochs 10"
        )
        st.text_input("Name (optional)", key=ws.user_key("jobs.name"))
        ready = [e.name for e in context.services().environments.all() if e.ready]
        env_key = ws.user_key("jobs.env")
        if st.session_state.get(env_key) not in ready:
            ws.set_value(env_key, environments.default_environment())
        st.selectbox(
            "Environment",
            ready,
            key=env_key,
            help="`python` in the command is this environment's interpreter.",
        )
        st.button("Submit", type="primary", on_click=_submit)


def _details(job: Job) -> None:
    user = context.current_user()
    service = context.services().jobs
    st.markdown(f"**{job.name}** · `{job.id}` · {job.status}")
    st.caption("Command: `" + " ".join(shlex.quote(a) for a in job.argv) + "`")
    if job.kind in ("training", "sweep trial"):  # what the command trains with: its run.json
        with contextlib.suppress(OSError, ValueError):
            spec = json.loads(read_job_file(Path(job.workdir) / "run.json", 1_000_000))
            shown = ", ".join(f"{k}={v!r}" for k, v in (spec.get("params") or {}).items())
            st.caption(f"Parameters ({spec.get('algorithm')}): {shown}, seed={spec.get('seed')}")
    if job.error:
        st.caption(f"Outcome: {job.error}")
    live_plots.show([live_plots.Watched(job.name, job.id)], key="jobs")
    rerun, delete, _ = st.columns([1, 1, 2])
    if rerun.button(":material/replay: Rerun", key=f"rerun-{job.id}"):
        new = service.rerun(user.id, job.id, admin=user.is_admin)
        feedback.done(f"Submitted job {new.id} again.")
    with delete:
        if job.finished and confirm_button(
            "Delete",
            key=f"delete-job-{job.id}",
            message=f"Delete job {job.id} with its folder and log?",
        ):
            service.delete(user.id, job.id, admin=user.is_admin, actor=user.username)
            feedback.done(f"Deleted job {job.id}.")


def render() -> None:
    user = context.current_user()
    st.title("Jobs")
    st.caption(
        "Long computations run as separate processes: they go on when you close the "
        "browser and when the web server restarts. **Work** (training, sweep trials, "
        "commands, profiles, environment builds) shares the machine's job slots; "
        "**services** (notebooks, API servers) wait for requests and have slots of their own."
    )
    feedback.show_pending()
    if not user.may_run_code:
        st.info(
            "Running commands is not enabled for your account: an admin allows it on Users and "
            "sessions. Training on Modeling is open to everyone.",
            icon=":material/lock:",
        )
    else:
        _command_box()
    _live()
    _chosen_details()


@st.fragment(run_every=process_table.REFRESH)
def _live() -> None:
    """Running and queued, then the history: one query, so they never disagree, refreshed
    together."""
    user = context.current_user()
    everything = context.services().jobs.history(None if user.is_admin else user.id, limit=1000)
    process_table.full([j for j in everything if not j.finished])
    st.subheader("History")
    f1, f2, f3 = st.columns(3)
    statuses = f1.multiselect("Status", STATUSES, key=ws.user_key("jobs.filter_status"))
    kinds = f2.multiselect(
        "Kind",
        list(KINDS),
        format_func=KIND_LABELS.__getitem__,
        key=ws.user_key("jobs.filter_kind"),
    )
    since = f3.date_input("Since", value=None, key="jobs.filter_since")
    start = datetime.combine(since, time(), UTC) if since else None
    jobs = [
        j
        for j in everything
        if (not statuses or j.status in statuses)
        and (not kinds or j.kind in kinds)
        and (start is None or j.created_at >= start)
    ]
    if not jobs:
        st.info(
            "No jobs match: clear the filters to see them all."
            if statuses or kinds or since
            else "No jobs yet: train a model on **Modeling**, or run a command above.",
            icon=":material/info:",
        )
        return
    st.dataframe(
        [
            {
                "Id": j.id,
                "Name": j.name,
                "Owner": j.owner,
                "Kind": KIND_LABELS.get(j.kind, j.kind),
                "Status": j.status,
                "Exit": j.signal or ("" if j.exit_code is None else str(j.exit_code)),
                "Created (UTC)": f"{j.created_at:%Y-%m-%d %H:%M:%S}",
                "Duration": process_table.duration(j),
            }
            for j in jobs
        ],
        hide_index=True,
        width="stretch",
    )
    finished = sum(j.status in FINISHED for j in jobs)
    st.caption(f"{len(jobs)} job(s), {finished} finished.")


def _chosen_details() -> None:
    user = context.current_user()
    jobs = context.services().jobs.history(None if user.is_admin else user.id, limit=1000)
    if not jobs:
        return
    labels = {j.id: f"{j.name} ({j.id}, {KIND_LABELS.get(j.kind, j.kind)})" for j in jobs}
    chosen = st.selectbox(
        "Job details",
        list(labels),
        index=None,
        format_func=labels.__getitem__,
        placeholder="Choose a job",
        key="jobs.chosen",
    )
    if chosen:
        _details(next(j for j in jobs if j.id == chosen))
