"""Modeling: pick an algorithm, set its hyperparameters (a form built from their declarations),
and train runs as background jobs in a suitable environment; sweeps start one job per point."""

from __future__ import annotations

import json
import re
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from crispml.core.algorithms import AlgorithmSpec, Param
from crispml.core.data.service import Dataset
from crispml.core.errors import CrispmlError
from crispml.core.modeling import Run
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.views import environments
from crispml.ui.views.data_understanding import dataset_choices, project_or_stop
from crispml.ui.widgets import feedback, live_plots, pager, process_table

RUNS_PAGE = "model.runs.page"
RUNS_SIZE = 50
RECENT = 200  # runs offered to plot and inspect (besides the active ones)


def key_metric(run: Run) -> tuple[str, float | None]:
    """The number that sums a run up: validation (else test) accuracy, RMSE or mean IoU."""
    name = {"classification": "accuracy", "regression": "rmse", "segmentation": "mean_iou"}.get(
        run.task, "accuracy"
    )
    for part in ("validation", "test", "train"):
        value = run.metrics.get(f"{part}_{name}")
        if isinstance(value, (int, float)):
            return f"{part}_{name}", float(value)
    return name, None


def _param_input(spec: AlgorithmSpec, p: Param) -> tuple[Any, str]:
    """The field of one hyperparameter and (value, problem). Numbers are typed as text and
    checked here, so what is used is exactly what the box shows: a number the browser would
    refuse (out of range, too large) is not silently replaced by the previous or smallest one,
    it gets a message naming the field and its range."""
    k = ws.key(f"model.{spec.name}.{p.name}")
    current = st.session_state.get(k)
    if p.kind in ("int", "float"):
        if isinstance(current, (int, float)) and not isinstance(current, bool):
            st.session_state[k] = p.show(current)  # a number kept by an older version
        elif not isinstance(current, str):
            st.session_state[k] = p.show(p.default)  # never the smallest allowed
        ws.resend(k)  # drawn fresh when the algorithm changes: the browser must get the value
        text = st.text_input(p.name, key=k, help=f"{p.help} ({p.kind}{p.range})".strip())
        try:
            return p.parse(text.strip()), ""
        except CrispmlError as exc:
            st.error(str(exc), icon=":material/error:")
            return None, str(exc)
    try:
        p.parse(current)
    except CrispmlError:
        ws.set_value(k, p.default)
    ws.resend(k)
    if p.kind == "bool":
        return st.checkbox(p.name, key=k, help=p.help), ""
    return st.selectbox(p.name, list(p.choices), key=k, help=p.help), ""


def _environment(spec: AlgorithmSpec) -> str | None:
    services = context.services()
    suitable = services.modeling.suitable_environments(spec)
    if not suitable:
        st.warning(
            f"No environment has what {spec.title} needs ({', '.join(spec.requirements)}).",
            icon=":material/warning:",
        )
        user = context.current_user()
        if user.is_admin and st.button("Build an environment for it"):
            name = re.sub(r"[^a-z0-9._-]+", "-", spec.name.lower())[:50] + "-env"
            try:
                env, job = services.environments.create_venv(user, name, "", spec.requirements)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"Building {env.name} as job {job.id}; see Environments.")
        elif not user.is_admin:
            st.caption("Ask an admin to build one on the Environments page.")
        return None
    k = ws.key(f"model.{spec.name}.env")
    if st.session_state.get(k) not in suitable:
        preferred = environments.default_environment()
        ws.set_value(k, preferred if preferred in suitable else suitable[0])
    ws.resend(k)
    return str(
        st.selectbox(
            "Environment",
            suitable,
            key=k,
            help="Environments that hold what this algorithm requires.",
        )
    )


def _sweep(spec: AlgorithmSpec, dataset: Dataset, env: str, base: dict[str, Any]) -> None:
    with st.expander("Sweep: one run per point", icon=":material/grid_on:"):
        chosen_key = ws.key(f"model.{spec.name}.sweep")
        names = [p.name for p in spec.params]
        if not isinstance(st.session_state.get(chosen_key), list):
            ws.set_value(chosen_key, [])
        chosen = st.multiselect("Hyperparameters to sweep", names, key=chosen_key)
        values: dict[str, list[str]] = {}
        for name in chosen:
            k = ws.key(f"model.{spec.name}.sweep.{name}")
            ws.default(k, "")
            text = st.text_input(
                f"{name}: values, comma-separated", key=k, placeholder="e.g. 0.1, 1, 10"
            )
            values[name] = [v.strip() for v in text.split(",") if v.strip()]
        mode_key = ws.key(f"model.{spec.name}.sweep.mode")
        ws.default(mode_key, "grid")
        mode = st.radio("Points", ["grid", "random"], horizontal=True, key=mode_key)
        points = 0
        if mode == "random":
            points_key = ws.key(f"model.{spec.name}.sweep.points")
            ws.default(points_key, 5)
            points = int(st.number_input("Random points", 1, 200, key=points_key))
        if st.button("Start sweep", disabled=not chosen):
            user = context.current_user()
            try:
                runs = context.services().modeling.sweep(
                    user, dataset.id, spec.name, base, values, env, random_points=points
                )
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"Started a sweep of {len(runs)} runs; they queue for free slots.")


def _runs(project_id: int) -> None:
    """The project's runs, a page at a time, refreshed in place (often only while one is queued
    or running: the live plots below rerun the page when the last one ends)."""
    user = context.current_user()
    modeling = context.services().modeling
    page = modeling.recent(user.id, project_id, number=pager.number(RUNS_PAGE), size=RUNS_SIZE)
    if not page.items:
        st.caption("No runs yet: choose an algorithm above and press **Train**.")
        return
    rows = []
    for run in page.items:
        metric, value = key_metric(run)
        rows.append(
            {
                "Run": run.id,
                "Algorithm": run.algorithm,
                "Data": run.dataset_name,
                "Environment": run.env,
                "Status": run.status,
                "Metric": metric,
                "Value": None if value is None else round(value, 4),
                "Duration (s)": run.duration_s,
                "Parameters": json.dumps(run.params),
                "Started (UTC)": f"{run.created_at:%Y-%m-%d %H:%M:%S}",
            }
        )
    st.dataframe(rows, hide_index=True, width="stretch")
    pager.pager(RUNS_PAGE, page, "runs")
    active = len(modeling.active(user.id, project_id))
    st.caption(f"{page.total:,} run(s), {active} queued or running.")


def recent_runs(user_id: int, project_id: int, *, succeeded: bool = False) -> list[Run]:
    """The runs to choose from (to plot, to compare, to inspect): the active ones and the
    newest RECENT others; the table above pages through all of them."""
    modeling = context.services().modeling
    active = [] if succeeded else modeling.active(user_id, project_id)
    newest = modeling.recent(user_id, project_id, succeeded=succeeded, size=RECENT).items
    seen = {r.id for r in active}
    return active + [r for r in newest if r.id not in seen]


def run_details(run: Run) -> None:
    """Parameters, metrics, curves, the confusion matrix or residuals, and the log's end."""
    services = context.services()
    st.markdown(f"**{run.algorithm}** on {run.dataset_name} · `{run.id}` · {run.status}")
    if run.error:
        st.error(run.error, icon=":material/error:")
    left, right = st.columns(2)
    left.json(run.params, expanded=True)
    numbers = {k: v for k, v in run.metrics.items() if isinstance(v, (int, float))}
    if numbers:
        right.dataframe(
            pd.DataFrame({"metric": list(numbers), "value": list(numbers.values())}),
            hide_index=True,
            width="stretch",
        )
    for part in ("test", "validation"):
        matrix = run.details.get(f"{part}_confusion_matrix")
        residuals = run.details.get(f"{part}_residuals")
        if matrix:
            labels = matrix["labels"]
            cells = [
                {"actual": a, "predicted": p, "rows": matrix["matrix"][i][j]}
                for i, a in enumerate(labels)
                for j, p in enumerate(labels)
            ]
            base = alt.Chart(pd.DataFrame(cells)).encode(
                x=alt.X("predicted:N", sort=labels), y=alt.Y("actual:N", sort=labels)
            )
            chart = base.mark_rect().encode(color="rows:Q") + base.mark_text().encode(text="rows:Q")
            st.markdown(f"Confusion matrix ({part})")
            st.altair_chart(chart, width="stretch")
            break
        if residuals:
            frame = pd.DataFrame(residuals)
            st.markdown(f"Residuals ({part})")
            st.altair_chart(
                alt.Chart(frame).mark_circle(opacity=0.6).encode(x="predicted:Q", y="residual:Q"),
                width="stretch",
            )
            break
    per_class = run.details.get("validation_per_class") or run.details.get("test_per_class")
    if per_class:
        st.markdown("IoU and Dice per class")
        st.dataframe(
            [
                {"class": k, "IoU": v.get("iou"), "Dice": v.get("dice")}
                for k, v in per_class.items()
            ],
            hide_index=True,
        )
    examples = sorted((services.modeling.run_folder(run) / "artifacts").glob("example-*.png"))
    if examples:
        st.markdown("Validation images: input · ground truth · prediction")
        grid = st.columns(2)
        for index, path in enumerate(examples):
            grid[index % 2].image(str(path), width="stretch")
    try:
        job = services.jobs.get(0, run.id, admin=True)
    except CrispmlError:
        st.caption("Its job, with its log, has been deleted.")
        return
    live_plots.log_pane(job)
    st.link_button(":material/download: Full log", f"/jobs/{run.id}/log")


def watch(runs: list[Run], key: str, *, default: list[str] | None = None) -> None:
    """Training curves of the runs the user picks (else the running ones, else the latest),
    refreshed live while they train."""
    ids = [r.id for r in runs]
    labels = {r.id: f"{r.algorithm} · {r.id} · {r.status}" for r in runs}
    watch_key = ws.key(f"{key}.watch")
    stored = st.session_state.get(watch_key)
    if not isinstance(stored, list) or not set(stored) <= set(ids):
        kept = [i for i in stored if i in ids] if isinstance(stored, list) else []
        ws.set_value(watch_key, kept)
    picked = st.multiselect(
        "Runs to plot",
        ids,
        format_func=labels.__getitem__,
        key=watch_key,
        placeholder="The running runs (or the latest)",
    )
    fallback = default if default is not None else [r.id for r in runs if not r.finished]
    chosen = picked or fallback or ids[:1]
    by_id = {r.id: r for r in runs}
    live_plots.show(
        [live_plots.Watched(f"{by_id[i].algorithm} · {i}", i) for i in chosen[:10]], key=key
    )


def render() -> None:
    user = context.current_user()
    services = context.services()
    st.title("Modeling")
    st.caption("Choose an algorithm and its settings; each run trains as a background job.")
    project = project_or_stop()
    feedback.show_pending()
    data_key = ws.key("model.dataset")
    prepared = dataset_choices(user.id, project.id, "prepared", st.session_state.get(data_key))
    if not prepared:
        st.info("Prepare a dataset on **Data preparation** first.", icon=":material/info:")
        return
    ids = [d.id for d in prepared]
    if st.session_state.get(data_key) not in ids:
        ws.set_value(data_key, ids[0])
    labels = {d.id: f"{d.name} ({d.details.get('task')})" for d in prepared}
    chosen = st.selectbox("Prepared data", ids, format_func=labels.__getitem__, key=data_key)
    dataset = next(d for d in prepared if d.id == chosen)
    task = str(dataset.details.get("task"))
    algorithms = services.modeling.algorithms.all(task)
    if not algorithms:
        st.info(f"No installed algorithm does {task}.", icon=":material/info:")
        return
    names = [a.name for a in algorithms]
    algo_key = ws.key(f"model.algorithm.{task}")
    if st.session_state.get(algo_key) not in names:
        ws.set_value(algo_key, names[0])
    titles = {a.name: a.title for a in algorithms}
    ws.resend(algo_key)
    name = st.selectbox("Algorithm", names, format_func=titles.__getitem__, key=algo_key)
    spec = next(a for a in algorithms if a.name == name)
    st.caption(f"{spec.description} Requires: {', '.join(spec.requirements)}.")
    env = _environment(spec)
    columns = st.columns(3)
    params = {}
    problems = []
    for index, p in enumerate(spec.params):
        with columns[index % 3]:
            params[p.name], problem = _param_input(spec, p)
            if problem:
                problems.append(problem)
    seed_key = ws.key("model.seed")
    ws.default(seed_key, 0)
    seed = int(st.number_input("Seed", 0, 2**31 - 1, key=seed_key))
    if problems:
        st.caption("Fix the settings marked above to train.")
    if st.button("Train", type="primary", disabled=env is None or bool(problems)):
        assert env is not None
        try:
            run = services.modeling.start(user, dataset.id, spec.name, params, env, seed=seed)
        except CrispmlError as exc:
            feedback.error(exc)
        else:
            feedback.done(f"Started run {run.id} ({run.status}).")
    if env is not None and not problems:
        _sweep(spec, dataset, env, params)
    st.subheader("Runs")
    runs = recent_runs(user.id, project.id)
    active = any(not r.finished for r in runs)
    every = process_table.REFRESH if active else process_table.IDLE_REFRESH
    st.fragment(_runs, run_every=every)(project.id)
    if runs:
        st.subheader("Training curves")
        watch(runs, "model")
        labels_run = {r.id: f"{r.algorithm} · {r.id} · {r.status}" for r in runs}
        picked = st.selectbox(
            "Run details",
            list(labels_run),
            index=None,
            format_func=labels_run.__getitem__,
            placeholder="Choose a run",
            key="model.run_details",
        )
        if picked:
            run_details(next(r for r in runs if r.id == picked))
