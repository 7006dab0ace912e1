"""Notebook: the user's own JupyterLab, started on demand as a job, shown in the page."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.ui import context
from crispml.ui.widgets import feedback
from crispml.ui.widgets.confirm import confirm_button

WARNING = (
    "A notebook runs code, which is a permission an admin grants per user. Your code runs in a "
    "sandbox as your own OS account: it sees your files and the data you give it, never other "
    "users' work or the server's."
)


STOPPING = "notebook.stopping"  # a stop was asked in this session; the server may still run


@st.fragment(run_every=timedelta(seconds=1))
def _waiting(stopping: bool) -> None:
    """While JupyterLab starts or stops: wait here, then rerun the page once it answers (or,
    stopping, once it has ended: a loaded machine can take longer than the stop's own wait)."""
    state = context.services().notebooks.state(context.current_user())
    done = not state.running if stopping else state.upstream is not None or not state.running
    if done:
        st.session_state.pop(STOPPING, None)
        st.rerun()
    verb = "Stopping" if stopping else "Starting"
    with st.spinner(f"{verb} JupyterLab… {state.message}"):
        st.caption("Its kernels are shutting down." if stopping else "This takes a few seconds.")


def render() -> None:
    user = context.current_user()
    services = context.services()
    st.title("Notebook")
    st.caption("Your own JupyterLab, next to your files, data and models, behind the same login.")
    feedback.show_pending()
    if not services.notebooks.allowed(user):
        st.warning(
            "Running code is not enabled for your account. " + WARNING, icon=":material/lock:"
        )
        return
    state = services.notebooks.state(user)
    if not state.running:
        st.session_state.pop(STOPPING, None)
    elif st.session_state.get(STOPPING):
        st.markdown("**JupyterLab:** Stopping.")
        _waiting(stopping=True)
        return
    st.markdown(f"**JupyterLab:** {state.message}")
    row = st.container(horizontal=True)
    try:
        if not state.running and row.button("Start", type="primary", icon=":material/play_arrow:"):
            services.notebooks.start(user)
            st.rerun()
        ends_kernels = "Its running kernels end (what they hold in memory is lost); files stay."
        if state.running:
            stop = confirm_button(
                "Stop",
                key="notebook.stop",
                message=f"Stop your JupyterLab? {ends_kernels}",
                icon=":material/stop:",
                place=row,
            )
            restart = confirm_button(
                "Restart",
                key="notebook.restart",
                message=f"Restart your JupyterLab? {ends_kernels}",
                icon=":material/restart_alt:",
                place=row,
            )
            if stop:
                with st.spinner("Stopping JupyterLab…"):
                    services.notebooks.stop(user)
                st.session_state[STOPPING] = True  # shown until it has ended
                feedback.done("Stopped your JupyterLab; your files stay.")
            if restart:
                with st.spinner("Restarting JupyterLab…"):
                    services.notebooks.restart(user)
                feedback.done("Restarted your JupyterLab.")
    except CrispmlError as exc:
        feedback.error(exc)
    if state.upstream is not None:
        url = state.upstream.base_url + "lab"
        row.link_button("Open in a new tab", url, icon=":material/open_in_new:")
    if state.job is not None and state.job.finished and state.job.status != "succeeded":
        tail = services.jobs.log_tail(state.job, 3_000).strip().splitlines()[-12:]
        st.error(
            f"JupyterLab {state.job.status}"
            + (f": {state.job.error}" if state.job.error else "")
            + ". The end of its log:",
            icon=":material/error:",
        )
        st.code("\n".join(tail) or "(no output)", language=None, wrap_lines=True)
    if state.running and state.upstream is None:
        _waiting(stopping=False)
        return
    if state.upstream is not None:
        st.iframe(state.upstream.base_url + "lab", height=820)
    elif not state.running:
        st.info(
            "Start JupyterLab to work in notebooks. Its folder is your **My files**; kernels run "
            "in the environments listed on **Environments** (those with ipykernel).",
            icon=":material/info:",
        )
    st.caption(
        WARNING + " It stops by itself after "
        f"{int(services.settings.notebook_idle_timeout.total_seconds() // 60)} minutes idle."
    )
