"""Data preparation: target and features, a seeded split, preprocessing per column (tables) or
resize and augmentations (images); the result is an immutable prepared version with its recipe.
Every choice is kept in the workspace, per dataset."""

from __future__ import annotations

import hashlib
from typing import Any

import streamlit as st

from crispml.core.data import prepare as recipes
from crispml.core.data.service import Dataset
from crispml.core.errors import CrispmlError
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.views.data_understanding import dataset_choices, project_or_stop
from crispml.ui.widgets import feedback

STEP_LABELS = {
    "none": "none",
    "mean": "mean",
    "median": "median",
    "most_frequent": "most frequent",
    "constant": "constant (0 or 'missing')",
    "standard": "standardise (z-score)",
    "minmax": "min-max to [0, 1]",
    "onehot": "one-hot",
    "ordinal": "ordinal codes",
}


def _key(dataset: Dataset, name: str) -> str:
    return ws.key(f"prep.{dataset.id}.{name}")


def _choice(
    label: str, options: tuple[str, ...], key: str, default: str, container: Any = st
) -> str:
    if st.session_state.get(key) not in options:
        ws.set_value(key, default)
    value: str = container.selectbox(label, options, format_func=STEP_LABELS.__getitem__, key=key)
    return value


def _split_inputs(dataset: Dataset) -> tuple[float, float, float, int]:
    a, b, c = st.columns(3)
    ws.default(_key(dataset, "train"), 0.7)
    ws.default(_key(dataset, "validation"), 0.15)
    ws.default(_key(dataset, "seed"), 42)
    train = a.slider("Train share", 0.05, 1.0, step=0.05, key=_key(dataset, "train"))
    validation = b.slider("Validation share", 0.0, 0.5, step=0.05, key=_key(dataset, "validation"))
    seed = c.number_input("Seed", 0, 2**31 - 1, key=_key(dataset, "seed"))
    test = round(1 - train - validation, 4)
    st.caption(
        f"Split: {train:.0%} train, {validation:.0%} validation, "
        + (f"{test:.0%} test." if test >= 0 else "**more than 100%: lower a share.**")
    )
    return float(train), float(validation), max(test, -1.0), int(seed)


def _table_recipe(dataset: Dataset) -> recipes.Recipe:
    columns = dataset.columns
    target_key = _key(dataset, "target")
    default_target = dataset.details.get("target")
    if st.session_state.get(target_key) not in columns:
        ws.set_value(target_key, default_target if default_target in columns else columns[-1])
    target = st.selectbox("Target", columns, key=target_key)
    task_key = _key(dataset, f"task.{_short(target)}")
    if st.session_state.get(task_key) not in recipes.TASKS:
        ws.set_value(task_key, context.services().datasets.guess_task(dataset, target))
    task = st.selectbox("Task", recipes.TASKS, key=task_key)
    features_key = _key(dataset, f"features.{_short(target)}")
    candidates = [c for c in columns if c != target]
    chosen = st.session_state.get(features_key)
    if not isinstance(chosen, list) or any(c not in candidates for c in chosen):
        ws.set_value(features_key, candidates)
    features = st.multiselect("Features", candidates, key=features_key)
    train, validation, test, seed = _split_inputs(dataset)
    ws.default(_key(dataset, "stratify"), True)
    stratify = st.checkbox(
        "Stratify by the target (keeps class shares equal across the parts)",
        key=_key(dataset, "stratify"),
        disabled=task != "classification",
    )
    st.markdown("**Preprocessing** (fitted on the training part only)")
    n1, n2, c1, c2 = st.columns(4)
    numeric = recipes.ColumnStep(
        impute=_choice(
            "Numeric: fill gaps", recipes.IMPUTE, _key(dataset, "num.impute"), "median", n1
        ),
        scale=_choice("Numeric: scale", recipes.SCALE, _key(dataset, "num.scale"), "standard", n2),
    )
    categorical = recipes.ColumnStep(
        impute=_choice(
            "Categorical: fill gaps",
            recipes.IMPUTE,
            _key(dataset, "cat.impute"),
            "most_frequent",
            c1,
        ),
        encode=_choice(
            "Categorical: encode", recipes.ENCODE, _key(dataset, "cat.encode"), "onehot", c2
        ),
    )
    overrides_key = _key(dataset, "overrides")
    picked = st.session_state.get(overrides_key)
    if not isinstance(picked, list) or any(c not in features for c in picked):
        ws.set_value(
            overrides_key,
            [c for c in picked or [] if c in features] if isinstance(picked, list) else [],
        )
    special = st.multiselect("Columns with their own steps", features, key=overrides_key)
    overrides = {}
    kinds = dataset.kinds()
    for column in special:
        numeric_column = kinds.get(column) in ("numeric", "boolean")
        base = numeric if numeric_column else categorical
        x, y, z = st.columns(3)
        prefix = f"col.{_short(column)}"
        overrides[column] = recipes.ColumnStep(
            impute=_choice(
                f"{column}: fill gaps",
                recipes.IMPUTE,
                _key(dataset, f"{prefix}.impute"),
                base.impute,
                x,
            ),
            scale=_choice(
                f"{column}: scale", recipes.SCALE, _key(dataset, f"{prefix}.scale"), base.scale, y
            )
            if numeric_column
            else "none",
            encode="none"
            if numeric_column
            else _choice(
                f"{column}: encode",
                recipes.ENCODE,
                _key(dataset, f"{prefix}.encode"),
                base.encode,
                z,
            ),
        )
    return recipes.Recipe(
        target=target,
        features=list(features),
        task=task,
        train=train,
        validation=validation,
        test=test,
        seed=seed,
        stratify=bool(stratify) and task == "classification",
        numeric=numeric,
        categorical=categorical,
        overrides=overrides,
    )


def _short(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:10]


def _image_recipe(dataset: Dataset) -> recipes.ImageRecipe:
    ws.default(_key(dataset, "size"), int(dataset.details.get("image_size") or 64))
    size = st.number_input(
        "Resize to (pixels, square)", 16, 1024, step=16, key=_key(dataset, "size")
    )
    augment_key = _key(dataset, "augment")
    if not isinstance(st.session_state.get(augment_key), list):
        ws.set_value(augment_key, ["horizontal flip", "vertical flip"])
    augment = st.multiselect("Augmentations (training part only)", recipes.AUGMENT, key=augment_key)
    train, validation, test, seed = _split_inputs(dataset)
    return recipes.ImageRecipe(int(size), list(augment), train, validation, test, seed)


def _versions(source: Dataset) -> None:
    mine = context.services().datasets.prepared_from(source.owner_id, source.id)
    if not mine:
        st.caption(
            "No prepared version of this dataset yet: set the recipe above and press **Prepare**."
        )
        return
    st.subheader("Prepared versions")
    st.dataframe(
        [
            {
                "Name": d.name,
                "Target": d.details.get("target"),
                "Task": d.details.get("task"),
                **{p.capitalize(): n for p, n in d.details.get("parts", {}).items()},
                "Created (UTC)": f"{d.created_at:%Y-%m-%d %H:%M}",
                "Version": d.version[:8],
            }
            for d in mine
        ],
        hide_index=True,
        width="stretch",
    )
    labels = {d.id: d.name for d in mine}
    chosen = st.selectbox(
        "Recipe of",
        list(labels),
        format_func=labels.__getitem__,
        index=len(labels) - 1,
        key="prep.recipe_of",
    )
    version = next(d for d in mine if d.id == chosen)
    with st.expander("Recipe and fitted values", icon=":material/receipt_long:"):
        st.json(version.recipe, expanded=1)
    if version.kind == "table":
        train = context.services().datasets.frame(version, "train")
        st.dataframe(train.head(20), width="stretch")
        st.caption(
            f"The first rows of the training part ({len(train):,} rows, {train.shape[1]} columns)."
        )


def render() -> None:
    user = context.current_user()
    services = context.services()
    st.title("Data preparation")
    st.caption("Choose what to predict from what, split the rows, and preprocess the columns.")
    project = project_or_stop()
    feedback.show_pending()
    key = ws.key("prep.dataset")
    looked_at = st.session_state.get(ws.key("data.dataset"))  # from Data understanding
    raw = dataset_choices(user.id, project.id, "raw", st.session_state.get(key), looked_at)
    if not raw:
        st.info("Add a dataset on **Data understanding** first.", icon=":material/info:")
        return
    ids = [d.id for d in raw]
    if st.session_state.get(key) not in ids:
        ws.set_value(key, looked_at if looked_at in ids else ids[0])
    labels = {d.id: f"{d.name} ({d.kind})" for d in raw}
    chosen = st.selectbox("Dataset", ids, format_func=labels.__getitem__, key=key)
    dataset = next(d for d in raw if d.id == chosen)
    recipe: recipes.Recipe | recipes.ImageRecipe = (
        _table_recipe(dataset) if dataset.kind == "table" else _image_recipe(dataset)
    )
    name = st.text_input("Name of the prepared version (optional)", key=_key(dataset, "name"))
    if st.button("Prepare", type="primary"):
        try:
            with st.spinner("Preparing…"):
                if isinstance(recipe, recipes.Recipe):
                    made = services.datasets.prepare(user, dataset.id, recipe, name)
                else:
                    made = services.datasets.prepare_images(user, dataset.id, recipe, name)
        except CrispmlError as exc:
            feedback.error(exc)
        else:
            parts = ", ".join(f"{n:,} {p}" for p, n in made.details["parts"].items())
            feedback.done(f"Prepared '{made.name}': {parts}.")
    _versions(dataset)
