"""Evaluation: compare runs side by side, sorted by any metric; register a model (any successful
run of the project, the best compared one first) and manage the registry's versions: stages,
and deleting a version registered by mistake."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.core.modeling import STAGES, Run
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.views.data_understanding import project_or_stop
from crispml.ui.views.modeling import RECENT, key_metric, recent_runs, run_details, watch
from crispml.ui.widgets import feedback, pager
from crispml.ui.widgets.confirm import confirm_button

LOWER_IS_BETTER = ("rmse", "mae", "loss")
REGISTRY_PAGE = "eval.registry.page"
REGISTRY_SIZE = 50


def lower_is_better(metric: str) -> bool:
    return any(word in metric for word in LOWER_IS_BETTER)


def _comparison(runs: list[Run], metric: str) -> pd.DataFrame:
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "Run": run.id,
            "Algorithm": run.algorithm,
            "Data": run.dataset_name,
        }
        row.update({f"{k}": v for k, v in run.params.items()})
        row.update({k: v for k, v in run.metrics.items() if isinstance(v, (int, float))})
        row["Duration (s)"] = run.duration_s
        rows.append(row)
    frame = pd.DataFrame(rows)
    if metric in frame:
        frame = frame.sort_values(metric, ascending=lower_is_better(metric), na_position="last")
    return frame


def run_label(run: Run) -> str:
    """What tells runs apart in a list: task, algorithm, data, main metric, and the run's id."""
    name, value = key_metric(run)
    shown = f"{name} {value:.3g}" if value is not None else f"no {name}"
    return f"{run.task} · {run.algorithm} · {run.dataset_name} · {shown} · run {run.id}"


REGISTER_RUN = "eval.register.run"  # the box itself, set from the user's pick on every run
REGISTER_STAGE = "eval.register.stage"


def _register(runs: list[Run], best: Run) -> None:
    """Register any successful run of the project; the box shows exactly the run registered.

    The user's pick is kept in the workspace (by run id); until they pick, the box follows the
    best compared run. A kept pick that is no longer a successful run is dropped and the box
    left empty (never quietly moved to another run)."""
    state = st.session_state
    pick_key = ws.key("eval.register_run")
    ids = [r.id for r in runs]
    labels = {r.id: run_label(r) for r in runs}
    with st.expander("Register a model", icon=":material/inventory_2:", expanded=True):
        st.caption(
            f"Offers every successful run of this project ({len(runs)}), newest first; it "
            "starts on the best of the compared runs. A model name's versions must share a "
            "task and an input (the same columns, or images)."
        )
        pick = state.get(pick_key)
        if pick is not None and pick not in ids:
            ws.set_value(pick_key, None)
            st.warning(
                f"The run chosen before ({pick}) is no longer a successful run of this project: "
                "choose the run to register.",
                icon=":material/warning:",
            )
        state[REGISTER_RUN] = state.get(pick_key, best.id)  # None: the user must choose

        def picked() -> None:
            ws.set_value(pick_key, state.get(REGISTER_RUN))

        run_id = st.selectbox(
            "Run",
            ids,
            format_func=labels.__getitem__,
            key=REGISTER_RUN,
            on_change=picked,
            placeholder="Choose a run",
        )
        name_key = ws.key("eval.model_name")
        ws.default(name_key, "")
        st.text_input("Model name", key=name_key, placeholder="e.g. iris-classifier")
        st.selectbox("Stage", list(STAGES), format_func=lambda s: s or "none", key=REGISTER_STAGE)

        def register() -> None:
            # A callback: it reads the box as the browser shows it at the click, before this
            # run's code could move a default; the run shown is the run registered.
            auth = context.services().auth.authenticate(context.session_token())
            if auth is None:
                return  # the session ended: the run that follows says so, and stops
            chosen, name = state.get(REGISTER_RUN), str(state.get(name_key) or "")
            if chosen not in ids:
                feedback.queue_error("Choose the run to register.")
                return
            try:
                model = context.services().modeling.register(
                    auth.user, str(chosen), name, stage=str(state.get(REGISTER_STAGE) or "")
                )
            except CrispmlError as exc:
                feedback.queue_error(exc)
            else:
                feedback.queue(
                    f"Registered {model.name} version {model.version}. From run "
                    f"{model.run_id}: {model.task}, {model.algorithm}."
                )

        st.button("Register", type="primary", disabled=run_id is None, on_click=register)


def _registry() -> None:
    services = context.services()
    page = services.modeling.versions_page(number=pager.number(REGISTRY_PAGE), size=REGISTRY_SIZE)
    models = page.items
    st.subheader("Model registry")
    if not models:
        st.caption("No model registered yet: register a finished run under **Register a model**.")
        return
    st.dataframe(
        [
            {
                "Model": m.name,
                "Version": m.version,
                "Stage": m.stage,
                "Task": m.task,
                "Algorithm": m.algorithm,
                "Data": m.info.get("dataset", {}).get("name", ""),
                "Environment": m.env,
                "Run": m.run_id,
                "Registered (UTC)": f"{m.created_at:%Y-%m-%d %H:%M}",
                **{k: v for k, v in m.metrics.items() if k.startswith("test_")},
            }
            for m in models
        ],
        hide_index=True,
        width="stretch",
    )
    pager.pager(REGISTRY_PAGE, page, "versions")
    labels = {
        f"{m.name}:{m.version}": f"{m.name} v{m.version} ({m.stage or 'no stage'}) · {m.task} · "
        f"{m.algorithm} · run {m.run_id}"
        for m in models
    }
    left, right, button = st.columns([3, 2, 1], vertical_alignment="bottom")
    chosen = left.selectbox(
        "Version (of the page above)", list(labels), format_func=labels.__getitem__,
        key="eval.version",
    )  # fmt: skip
    stage = right.selectbox(
        "New stage", list(STAGES), format_func=lambda s: s or "none", key="eval.stage"
    )
    name, version = chosen.rsplit(":", 1)
    if button.button("Set stage"):
        try:
            services.modeling.set_stage(context.current_user(), name, int(version), stage)
        except CrispmlError as exc:
            feedback.error(exc)
        else:
            feedback.done(f"{name} v{version} is now {stage or 'without a stage'}.")
    # Keyed by the version: a confirmation pending for one never deletes another.
    if confirm_button(
        "Delete version",
        key=f"eval.delete.{chosen}",
        message=f"Delete {labels[chosen]} and its files? This cannot be undone; a deployed "
        "version must be undeployed first (Deployment).",
        icon=":material/delete:",
    ):
        try:
            services.modeling.delete_version(context.current_user(), name, int(version))
        except CrispmlError as exc:
            feedback.error(exc)
        else:
            feedback.done(f"Deleted {name} v{version}.")


def render() -> None:
    user = context.current_user()
    services = context.services()
    st.title("Evaluation")
    st.caption("Compare runs side by side and register the best model.")
    project = project_or_stop()
    feedback.show_pending()
    services.modeling.active(user.id, project.id)  # runs ended since last read: settled
    runs = recent_runs(user.id, project.id, succeeded=True)
    if not runs:
        st.info("No finished run yet: train on **Modeling** first.", icon=":material/info:")
        _registry()
        return
    if len(runs) == RECENT:
        st.caption(f"The newest {RECENT} finished runs are offered here; **Modeling** lists all.")
    ids = [r.id for r in runs]
    compare_key = ws.key("eval.runs")
    chosen = st.session_state.get(compare_key)
    if not isinstance(chosen, list) or not set(chosen) <= set(ids):
        ws.set_value(compare_key, ids[:10])
    labels = {r.id: f"{r.algorithm} · {r.id}" for r in runs}
    picked = st.multiselect("Runs to compare", ids, format_func=labels.__getitem__, key=compare_key)
    selected = [r for r in runs if r.id in picked] or runs
    metrics = sorted(
        {k for r in selected for k, v in r.metrics.items() if isinstance(v, (int, float))}
    )
    sort_key = ws.key("eval.sort")
    if st.session_state.get(sort_key) not in metrics:
        ws.set_value(sort_key, key_metric(selected[0])[0] if metrics else None)
    metric = st.selectbox("Sort by", metrics, key=sort_key)
    frame = _comparison(selected, metric)
    st.dataframe(frame, hide_index=True, width="stretch")
    if metric in frame:
        chart = (
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X(f"{metric}:Q"),
                y=alt.Y("Run:N", sort=list(frame["Run"])),
                color="Algorithm:N",
                tooltip=["Run", "Algorithm", metric],
            )
        )
        st.altair_chart(chart, width="stretch")
        direction = "lower" if lower_is_better(metric) else "higher"
        st.caption(f"Sorted by {metric}, best first ({direction} is better).")
    st.subheader("Training curves")
    watch(selected, "eval", default=[r.id for r in selected])
    best = next(r for r in selected if r.id == frame["Run"].iloc[0])
    _register(runs, best)
    details = st.selectbox(
        "Run details",
        ids,
        index=None,
        format_func=labels.__getitem__,
        placeholder="Choose a run",
        key="eval.details",
    )
    if details:
        run_details(next(r for r in runs if r.id == details))
    _registry()
