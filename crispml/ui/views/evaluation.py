"""Evaluation: compare runs side by side, sorted by any metric; register the best model and
manage the registry's versions and stages."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.core.modeling import STAGES, Run
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.views.data_understanding import project_or_stop
from crispml.ui.views.modeling import key_metric, run_details, watch
from crispml.ui.widgets import feedback

LOWER_IS_BETTER = ("rmse", "mae", "loss")


def lower_is_better(metric: str) -> bool:
    return any(word in metric for word in LOWER_IS_BETTER)


def _comparison(runs: list[Run], metric: str) -> pd.DataFrame:
    rows = []
    for run in runs:
        row = {"Run": run.id, "Algorithm": run.algorithm, "Data": run.dataset_name}
        row.update({f"{k}": v for k, v in run.params.items()})
        row.update({k: v for k, v in run.metrics.items() if isinstance(v, (int, float))})
        row["Duration (s)"] = run.duration_s
        rows.append(row)
    frame = pd.DataFrame(rows)
    if metric in frame:
        frame = frame.sort_values(metric, ascending=lower_is_better(metric), na_position="last")
    return frame


def _register(runs: list[Run], best: Run) -> None:
    user = context.current_user()
    with st.expander("Register a model", icon=":material/inventory_2:", expanded=True):
        labels = {r.id: f"{r.algorithm} · {r.id}" for r in runs}
        run_id = st.selectbox(
            "Run", list(labels), index=list(labels).index(best.id), format_func=labels.__getitem__
        )
        name_key = ws.key("eval.model_name")
        ws.default(name_key, "")
        name = st.text_input("Model name", key=name_key, placeholder="e.g. iris-classifier")
        stage = st.selectbox("Stage", list(STAGES), format_func=lambda s: s or "none")
        if st.button("Register", type="primary"):
            try:
                with st.spinner("Registering: copying the run's model files…"):
                    model = context.services().modeling.register(user, run_id, name, stage=stage)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"Registered {model.name} version {model.version}.")


def _registry() -> None:
    services = context.services()
    models = services.modeling.models()
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
                "Algorithm": m.algorithm,
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
    labels = {
        f"{m.name}:{m.version}": f"{m.name} v{m.version} ({m.stage or 'no stage'})" for m in models
    }
    left, right, button = st.columns([3, 2, 1], vertical_alignment="bottom")
    chosen = left.selectbox(
        "Version", list(labels), format_func=labels.__getitem__, key="eval.version"
    )
    stage = right.selectbox(
        "New stage", list(STAGES), format_func=lambda s: s or "none", key="eval.stage"
    )
    if button.button("Set stage"):
        name, version = chosen.rsplit(":", 1)
        try:
            services.modeling.set_stage(context.current_user(), name, int(version), stage)
        except CrispmlError as exc:
            feedback.error(exc)
        else:
            feedback.done(f"{name} v{version} is now {stage or 'without a stage'}.")


def render() -> None:
    user = context.current_user()
    services = context.services()
    st.title("Evaluation")
    st.caption("Compare runs side by side and register the best model.")
    project = project_or_stop()
    feedback.show_pending()
    runs = [r for r in services.modeling.all(user.id, project.id) if r.status == "succeeded"]
    if not runs:
        st.info("No finished run yet: train on **Modeling** first.", icon=":material/info:")
        _registry()
        return
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
    _register(selected, best)
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
