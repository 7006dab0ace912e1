"""Data understanding: the project's datasets (samples or the user's files), a profile with
interactive charts for tables, a gallery with mask overlays for image sets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import altair as alt
import pandas as pd
import streamlit as st

from crispml.core.data.images import class_counts, overlay
from crispml.core.data.loaders import TABLE_FORMATS
from crispml.core.data.samples import SAMPLES
from crispml.core.data.service import Dataset
from crispml.core.errors import CrispmlError
from crispml.core.projects import Project
from crispml.core.text import human_size
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.views.business import current_project
from crispml.ui.widgets import feedback, pager
from crispml.ui.widgets.confirm import confirm_button
from crispml.ui.widgets.file_picker import file_picker, picked_path

GALLERY_PAGE = 12
DATA_PAGE = "data.datasets.page"
DATA_PAGE_SIZE = 50
RECENT = 200  # datasets offered to choose from (and the one chosen before, if older)


def dataset_choices(user_id: int, project_id: int, role: str, *wanted: object) -> list[Dataset]:
    """The datasets of a role offered in a select box, newest first: the newest RECENT, and
    those of ``wanted`` (ids chosen before) that are older than those."""
    datasets = context.services().datasets
    choices = datasets.recent(user_id, project_id, role=role, size=RECENT).items
    for dataset_id in wanted:
        if not isinstance(dataset_id, str) or any(d.id == dataset_id for d in choices):
            continue
        try:
            older = datasets.get(user_id, dataset_id)
        except CrispmlError:  # deleted meanwhile
            continue
        if older.project_id == project_id and older.role == role:
            choices.append(older)
    return choices


def project_or_stop() -> Project:
    """The current project; pages about data need one."""
    user = context.current_user()
    project = current_project(context.services().projects.list(user.id))
    if project is None:
        st.info(
            "Create a project on **Business understanding** first: datasets belong to a project.",
            icon=":material/info:",
        )
        st.stop()
    assert project is not None
    return project


def _add_sample(project: Project) -> None:
    user = context.current_user()
    sample = str(st.session_state.get(ws.key("data.sample")) or "iris")
    try:
        dataset = context.services().datasets.add_sample(
            user,
            project.id,
            sample,
            seed=int(st.session_state.get(ws.key("data.shapes.seed"), 0)),
            count=int(st.session_state.get(ws.key("data.shapes.count"), 200)),
            size=int(st.session_state.get(ws.key("data.shapes.size"), 64)),
        )
    except CrispmlError as exc:
        feedback.queue_error(exc)
        return
    st.session_state[ws.key("data.dataset")] = dataset.id
    feedback.queue(f"Added the sample '{dataset.name}' ({dataset.rows:,} rows).")


def _sample_form(project: Project, expanded: bool) -> None:
    # Keyed and stateful: it stays as the user left it when a rerun changes ``expanded``.
    with st.expander(
        "Add a sample",
        icon=":material/science:",
        expanded=expanded,
        key="data.sample.open",
        on_change="rerun",
    ):
        ws.ensure(ws.key("data.sample"), str, "iris")
        if st.session_state.get(ws.key("data.sample")) not in SAMPLES:
            ws.set_value(ws.key("data.sample"), "iris")
        sample = st.selectbox(
            "Sample",
            list(SAMPLES),
            format_func=lambda n: f"{SAMPLES[n].title} ({SAMPLES[n].task})",
            key=ws.key("data.sample"),
        )
        st.caption(SAMPLES[sample].description + " Nothing is downloaded.")
        if SAMPLES[sample].kind == "images":
            a, b, c = st.columns(3)
            ws.default(ws.key("data.shapes.seed"), 0)
            ws.default(ws.key("data.shapes.count"), 200)
            ws.default(ws.key("data.shapes.size"), 64)
            a.number_input("Seed", 0, 2**31 - 1, key=ws.key("data.shapes.seed"))
            b.number_input("Images", 1, 10_000, key=ws.key("data.shapes.count"))
            c.number_input("Size (pixels)", 32, 1024, step=16, key=ws.key("data.shapes.size"))
        if st.button("Add sample", type="primary"):
            with st.spinner("Adding the sample…"):
                _add_sample(project)
            st.rerun()  # shows the new dataset and the message


def _register_form(project: Project) -> None:
    with st.expander("Register from your files", icon=":material/upload_file:"):
        kinds = ["A table file", "A folder of images"]
        kind = st.radio("What", kinds, horizontal=True, key=ws.key("data.reg.kind"))
        folders = kind == "A folder of images"
        st.caption(
            "Tables: " + ", ".join(sorted(TABLE_FORMATS)) + ". Images: a folder of images, "
            "optionally with a `masks/` folder of masks of the same names. Upload on **Files**."
        )
        choice = file_picker(
            "Image folder" if folders else "Table file",
            key=ws.key("data.reg.images" if folders else "data.reg.table"),
            extensions=() if folders else tuple(TABLE_FORMATS),
            folders=folders,
        )
        name = st.text_input(
            "Dataset name", key=ws.key("data.reg.name"), placeholder="e.g. churn 2026"
        )
        if st.button("Register", disabled=not choice):
            user = context.current_user()
            assert choice is not None
            try:
                with st.spinner("Reading and copying…"):
                    dataset = context.services().datasets.register(
                        user, project.id, name, picked_path(choice), choice
                    )
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                st.session_state[ws.key("data.dataset")] = dataset.id
                feedback.done(f"Registered '{dataset.name}' ({dataset.rows:,} rows).")


def _datasets_table(datasets: list[Dataset]) -> None:
    st.dataframe(
        [
            {
                "Name": d.name,
                "Kind": d.kind,
                "Source": d.source,
                "Rows": d.rows,
                "Columns": len(d.schema) if d.kind == "table" else None,
                "Size": human_size(d.size_bytes),
                "Created (UTC)": f"{d.created_at:%Y-%m-%d %H:%M}",
                "Version": d.version[:8],
            }
            for d in datasets
        ],
        hide_index=True,
        width="stretch",
    )


# --- tables ----------------------------------------------------------------------------------


@st.fragment(run_every=timedelta(seconds=2))
def _wait_for_profile(dataset: Dataset, job_id: str) -> None:
    services = context.services()
    job = services.jobs.get(0, job_id, admin=True)
    if services.datasets.collect_profile(dataset, job) is not None:
        st.rerun(scope="app")
    if job.finished:
        feedback.error(f"The profile job {job.id} {job.status}: {job.error or 'see its log'}.")
        return
    st.info(
        f"Profiling {dataset.rows:,} rows as job {job.id} ({job.status}); this page shows the "
        "profile when it is ready. You may leave and come back.",
        icon=":material/hourglass_top:",
    )


def _profile(dataset: Dataset) -> dict[str, Any] | None:
    services = context.services()
    cached = services.datasets.cached_profile(dataset)
    if cached is not None:
        return cached
    if services.datasets.needs_job(dataset):
        job = services.datasets.start_profile_job(context.current_user(), dataset)
        _wait_for_profile(dataset, job.id)
        return None
    with st.spinner("Profiling…"):
        return services.datasets.profile(dataset)


def _distribution(column: dict[str, Any]) -> alt.Chart:
    if "histogram" in column and "top" not in column:
        edges, counts = column["histogram"]["edges"], column["histogram"]["counts"]
        frame = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "rows": counts})
        return cast(
            alt.Chart,
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("from:Q", bin="binned", title=column["name"]),
                x2="to:Q",
                y=alt.Y("rows:Q", title="rows"),
                tooltip=["from", "to", "rows"],
            ),
        )
    frame = pd.DataFrame(column.get("top", []), columns=["value", "rows"])
    return cast(
        alt.Chart,
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("rows:Q", title="rows"),
            y=alt.Y("value:N", sort="-x", title=column["name"]),
            tooltip=["value", "rows"],
        ),
    )


def _correlations(profile: dict[str, Any]) -> alt.Chart | None:
    names, matrix = profile["correlations"]["columns"], profile["correlations"]["matrix"]
    if len(names) < 2:
        return None
    cells = [
        {"a": a, "b": b, "r": matrix[i][j]}
        for i, a in enumerate(names)
        for j, b in enumerate(names)
        if matrix[i][j] is not None
    ]
    base = alt.Chart(pd.DataFrame(cells)).encode(
        x=alt.X("a:N", title=None, sort=names), y=alt.Y("b:N", title=None, sort=names)
    )
    heat = base.mark_rect().encode(
        color=alt.Color("r:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1]), title="r"),
        tooltip=["a", "b", alt.Tooltip("r:Q", format=".2f")],
    )
    if len(names) > 12:
        return cast(alt.Chart, heat)
    labels = base.mark_text(fontSize=10).encode(text=alt.Text("r:Q", format=".2f"))
    return cast(alt.Chart, heat + labels)


def _table_view(dataset: Dataset) -> None:
    profile = _profile(dataset)
    if profile is None:
        return
    columns = profile["column_profiles"]
    a, b, c, d = st.columns(4)
    a.metric("Rows", f"{profile['rows']:,}")
    b.metric("Columns", profile["columns"])
    c.metric("Missing cells", f"{profile['missing_cells']:,}")
    d.metric("On disk", human_size(dataset.size_bytes))
    tab_columns, tab_dist, tab_corr, tab_target, tab_rows = st.tabs(
        ["Columns", "Distributions", "Correlations", "Target", "Rows"]
    )
    with tab_columns:
        st.dataframe(
            [
                {
                    "Column": col["name"],
                    "Kind": col["kind"],
                    "Type": col["dtype"],
                    "Missing": col["missing"],
                    "Missing %": round(100 * col["missing"] / max(1, profile["rows"]), 2),
                    "Distinct": col["distinct"],
                    "Mean": col.get("mean"),
                    "Std": col.get("std"),
                    "Min": col.get("min"),
                    "Median": col.get("median"),
                    "Max": col.get("max"),
                }
                for col in columns
            ],
            hide_index=True,
            width="stretch",
        )
    names = [col["name"] for col in columns]
    with tab_dist:
        key = ws.key(f"data.{dataset.id}.column")
        if st.session_state.get(key) not in names:
            ws.set_value(key, names[0])
        chosen = st.selectbox("Column", names, key=key)
        st.altair_chart(_distribution(columns[names.index(chosen)]), width="stretch")
    with tab_corr:
        chart = _correlations(profile)
        if chart is None:
            st.caption("Fewer than two numeric columns: no correlations to show.")
        else:
            st.altair_chart(chart, width="stretch")
            st.caption("Pearson correlation between numeric columns.")
    with tab_target:
        key = ws.key(f"data.{dataset.id}.target")
        target_default = dataset.details.get("target") or names[-1]
        if st.session_state.get(key) not in names:
            ws.set_value(key, target_default if target_default in names else names[-1])
        target = st.selectbox("Target", names, key=key)
        column = columns[names.index(target)]
        st.altair_chart(_distribution(column), width="stretch")
        if column.get("top"):
            counts = [n for _, n in column["top"]]
            st.caption(
                f"{len(counts)} classes; the smallest has {min(counts) / max(counts):.0%} of the "
                "rows of the largest."
            )
    with tab_rows:
        rows = context.services().datasets.sample_rows(dataset, 100)
        st.dataframe(rows, width="stretch")
        st.caption(
            f"{len(rows)} rows drawn at random out of {dataset.rows:,} (the same ones each time)."
        )


# --- images ------------------------------------------------------------------------------------


def _images_view(dataset: Dataset) -> None:
    services = context.services()
    items = services.datasets.images(dataset)
    annotations = services.datasets.annotations(dataset)
    names = list(dataset.details.get("classes") or []) or ["background"]
    counts = class_counts(items, annotations, names)
    a, b, c = st.columns(3)
    a.metric("Images", f"{len(items):,}")
    b.metric("With masks", f"{sum(i.mask is not None for i in items):,}")
    c.metric("Objects", f"{len(annotations.get('annotations', [])):,}")
    if counts:
        frame = pd.DataFrame(
            [{"class": k, **v} for k, v in counts.items() if k != "background"]
        ).fillna(0)
        if not frame.empty:
            measure = "objects" if "objects" in frame else "pixels"
            chart = (
                alt.Chart(frame)
                .mark_bar()
                .encode(
                    x=alt.X(f"{measure}:Q"),
                    y=alt.Y("class:N", sort="-x"),
                    tooltip=list(frame.columns),
                )
            )
            st.altair_chart(chart, width="stretch")
    ws.default(ws.key(f"data.{dataset.id}.masks"), True)
    show_masks = st.toggle("Show masks", key=ws.key(f"data.{dataset.id}.masks"))
    pages = max(1, -(-len(items) // GALLERY_PAGE))
    page = 1
    if pages > 1:
        page_key = ws.key(f"data.{dataset.id}.page")
        ws.default(page_key, 1)
        page = st.number_input("Page", 1, pages, key=page_key)
    shown = items[(int(page) - 1) * GALLERY_PAGE : int(page) * GALLERY_PAGE]
    grid = st.columns(4)
    for index, item in enumerate(shown):
        try:
            picture = overlay(item.image, item.mask if show_masks else None)
        except (OSError, ValueError) as exc:
            grid[index % 4].warning(f"{item.image.name}: {exc}", icon=":material/broken_image:")
            continue
        grid[index % 4].image(picture, caption=item.image.name, width="stretch")


def render() -> None:
    user = context.current_user()
    services = context.services()
    st.title("Data understanding")
    st.caption("Bring data or start from a sample, then look at it: types, gaps, distributions.")
    project = project_or_stop()
    feedback.show_pending()
    page = services.datasets.recent(
        user.id, project.id, role="raw", number=pager.number(DATA_PAGE), size=DATA_PAGE_SIZE
    )
    _sample_form(project, expanded=not page.items)
    _register_form(project)
    if not page.items:
        st.info(
            f"Project '{project.name}' has no datasets yet: add a sample, or register a table "
            "or a folder of images from your files, above.",
            icon=":material/info:",
        )
        return
    st.subheader(f"Datasets of '{project.name}'")
    _datasets_table(page.items)
    pager.pager(DATA_PAGE, page, "datasets")
    key = ws.key("data.dataset")
    datasets = dataset_choices(user.id, project.id, "raw", st.session_state.get(key))
    ids = [d.id for d in datasets]
    if st.session_state.get(key) not in ids:
        ws.set_value(key, ids[0])
    labels = {d.id: f"{d.name} ({d.kind}, {d.rows:,} rows)" for d in datasets}
    chosen = st.selectbox("Dataset", ids, format_func=labels.__getitem__, key=key)
    dataset = next(d for d in datasets if d.id == chosen)
    if dataset.kind == "table":
        _table_view(dataset)
    else:
        _images_view(dataset)
    if confirm_button(
        "Delete dataset",
        key=f"data.delete.{dataset.id}",
        message=f"Delete '{dataset.name}', its copy and the versions prepared from it?",
    ):
        names = services.datasets.delete(user, dataset.id)
        feedback.done(f"Deleted {', '.join(names)}.")
