"""Environments: the Python environments jobs and models run in. Admins build, register and
delete them; every user picks the one their jobs use by default."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from crispml.core.envs.registry import SYSTEM, Environment
from crispml.core.errors import CrispmlError
from crispml.core.text import human_size
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.widgets import feedback
from crispml.ui.widgets.confirm import confirm_button

DEFAULT_KEY = "env.default"  # user-scoped: the environment new jobs run in


def default_environment() -> str:
    """The user's chosen environment (the Jobs page and Modeling start with it)."""
    value = st.session_state.get(ws.user_key(DEFAULT_KEY))
    return value if isinstance(value, str) and value else SYSTEM


def _health(env: Environment) -> str:
    if not env.ready:
        return "building"
    if env.healthy is None:
        return "not checked"
    return "healthy" if env.healthy else f"{len(env.problems)} problem(s)"


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else ""


def _table(envs: list[Environment]) -> None:
    st.dataframe(
        [
            {
                "Name": e.name,
                "Kind": e.kind,
                "Python": e.python_version,
                "Packages": ", ".join(f"{n} {v}" for n, v in e.key_packages().items()),
                "Size": human_size(e.size_bytes),
                "Health": _health(e),
                "Created (UTC)": _when(e.created_at),
                "Last used (UTC)": _when(e.last_used),
            }
            for e in envs
        ],
        hide_index=True,
        width="stretch",
    )


@st.fragment(run_every=timedelta(seconds=2))
def _builds() -> None:
    """Builds in progress with the end of their logs; the page reloads when one ends."""
    services = context.services()
    building = [e for e in services.environments.registry.all() if not e.ready]
    was = st.session_state.get("_crispml.envs.building", [])
    st.session_state["_crispml.envs.building"] = [e.name for e in building]
    if set(was) - {e.name for e in building}:
        st.rerun(scope="app")  # a build ended: show the table as it is now
    for env in building:
        st.markdown(f"**Building {env.name}** (job `{env.build_job}`)")
        if env.build_job:
            job = services.jobs.get(0, env.build_job, admin=True)
            st.code(
                services.jobs.log_tail(job, 8_000) or "(starting)",
                language=None,
                height=200,
                wrap_lines=True,
            )


def _build_form() -> None:
    services = context.services()
    with st.expander("Build a new venv with uv", icon=":material/construction:"):
        pythons = services.environments.pythons()
        with st.form("env.build", clear_on_submit=False, border=False):
            name = st.text_input("Name", placeholder="e.g. sklearn-1-5")
            python = st.selectbox(
                "Python",
                [p.version for p in pythons],
                format_func=lambda v: next(f"{v} ({p.path})" for p in pythons if p.version == v),
                help="Interpreters installed on this machine; none is ever downloaded.",
            )
            requirements = st.text_area(
                "Requirements, one per line",
                placeholder="scikit-learn==1.5.2\npandas>=2.2",
                help="As in a requirements.txt, without options such as --index-url.",
            )
            if st.form_submit_button("Build", type="primary"):
                user = context.current_user()
                try:
                    env, job = services.environments.create_venv(
                        user, name, python or "", requirements
                    )
                except CrispmlError as exc:
                    feedback.error(exc)
                else:
                    feedback.done(f"Building {env.name} as job {job.id}.")


def _register_form() -> None:
    expander = st.expander("Register an existing interpreter", icon=":material/link:")
    with expander, st.form("env.register", border=False):
        name = st.text_input("Name", key="env.register.name")
        path = st.text_input("Interpreter path", placeholder="/opt/python3.12/bin/python3")
        if st.form_submit_button("Register"):
            user = context.current_user()
            try:
                env = context.services().environments.register_interpreter(user, name, path)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"Registered {env.name} (Python {env.python_version}).")


def _details(env: Environment) -> None:
    user = context.current_user()
    services = context.services()
    st.markdown(f"**{env.name}** · {env.kind} · Python {env.python_version or '?'}")
    prefix = f" · prefix `{env.prefix}`" if env.prefix else ""
    st.caption(f"Interpreter: `{env.interpreter}`{prefix}")
    if env.requirements:
        st.caption("Requirements: " + ", ".join(f"`{r}`" for r in env.requirements))
    if env.checked_at is not None:
        if env.problems:
            for problem in env.problems:
                st.error(problem, icon=":material/error:")
        else:
            when = _when(env.checked_at)
            st.success(f"Healthy when checked at {when} UTC.", icon=":material/check_circle:")
    check, log, delete = st.columns(3)
    if env.build_job:
        log.link_button(":material/download: Build log", f"/jobs/{env.build_job}/log")
    if check.button(":material/stethoscope: Check health", key=f"env.check.{env.name}"):
        try:
            with st.spinner(f"Starting {env.name}'s interpreter…"):
                result = services.environments.check(env.name)
        except CrispmlError as exc:
            feedback.error(exc)
        else:
            verdict = "healthy" if result.ok else f"{len(result.problems)} problem(s)"
            feedback.done(f"{env.name}: {verdict}.")
    if user.is_admin and env.kind in ("venv", "path"):
        with delete:
            if confirm_button(
                "Delete",
                key=f"env.delete.{env.name}",
                message=f"Delete {env.name}" + (" and its folder?" if env.kind == "venv" else "?"),
            ):
                try:
                    services.environments.delete(user, env.name)
                except CrispmlError as exc:
                    feedback.error(exc)
                else:
                    feedback.done(f"Deleted {env.name}.")


def render() -> None:
    user = context.current_user()
    services = context.services()
    st.title("Environments")
    st.caption(
        "Each job and model runs with the Python environment it needs: crispml's own (system), "
        "venvs built here with uv, conda environments found on this machine, or registered "
        "interpreters."
    )
    feedback.show_pending()
    envs = services.environments.all(refresh=st.button(":material/refresh: Look again"))
    ready = [e.name for e in envs if e.ready]
    key = ws.user_key(DEFAULT_KEY)
    ws.ensure(key, str, SYSTEM)
    if st.session_state.get(key) not in ready:
        ws.set_value(key, SYSTEM)
    st.selectbox(
        "My jobs run in",
        ready,
        key=key,
        help="Your default environment for new jobs; each job can still choose another.",
    )
    _table(envs)
    if any(not e.ready for e in envs):
        _builds()
    labels = {e.name: f"{e.name} ({e.kind})" for e in envs}
    chosen = st.selectbox(
        "Environment details",
        list(labels),
        index=None,
        format_func=labels.__getitem__,
        placeholder="Choose an environment",
        key="env.chosen",
    )
    if chosen:
        _details(next(e for e in envs if e.name == chosen))
    if user.is_admin:
        _build_form()
        _register_form()
