"""scikit-learn classifiers and regressors. Models are saved with skops (no pickle: loading
runs no arbitrary code) beside ``model.json`` (features, classes, algorithm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

# Iterative ensembles grow in this many rounds, each logged, so the live chart moves.
ROUNDS = 10


def _estimator(name: str, p: Dict[str, Any], seed: int) -> Any:
    from sklearn import ensemble, linear_model, neighbors

    depth = int(p.get("max_depth", 0)) or None
    if name == "logistic_regression":
        return linear_model.LogisticRegression(C=float(p["C"]), max_iter=int(p["max_iter"]))
    if name == "random_forest_classifier":
        return ensemble.RandomForestClassifier(
            n_estimators=int(p["n_estimators"]), max_depth=depth,
            min_samples_leaf=int(p["min_samples_leaf"]), random_state=seed, warm_start=True,
        )  # fmt: skip
    if name == "gradient_boosting_classifier":
        return ensemble.GradientBoostingClassifier(
            n_estimators=int(p["n_estimators"]), learning_rate=float(p["learning_rate"]),
            max_depth=int(p["max_depth"]), random_state=seed,
        )  # fmt: skip
    if name == "knn_classifier":
        neighbours = int(p["n_neighbors"])
        return neighbors.KNeighborsClassifier(n_neighbors=neighbours, weights=p["weights"])
    if name == "ridge_regression":
        return linear_model.Ridge(alpha=float(p["alpha"]))
    if name == "random_forest_regressor":
        return ensemble.RandomForestRegressor(
            n_estimators=int(p["n_estimators"]), max_depth=depth,
            min_samples_leaf=int(p["min_samples_leaf"]), random_state=seed, warm_start=True,
        )  # fmt: skip
    if name == "gradient_boosting_regressor":
        return ensemble.GradientBoostingRegressor(
            n_estimators=int(p["n_estimators"]), learning_rate=float(p["learning_rate"]),
            max_depth=int(p["max_depth"]), random_state=seed,
        )  # fmt: skip
    raise ValueError(f"unknown scikit-learn algorithm {name!r}")


def _check_numeric(features: Any) -> None:
    text = [str(c) for c, t in features.dtypes.items() if t.kind not in "biuf"]
    if text:
        raise ValueError(
            "these columns are not numbers: " + ", ".join(text) + ". Encode them (one-hot or "
            "ordinal) in Data preparation."
        )


def _scores(ctx: Any, model: Any, features: Any) -> Any:
    if ctx.task != "classification" or not hasattr(model, "predict_proba"):
        return None
    import numpy as np

    proba = model.predict_proba(features)
    known = [str(c) for c in model.classes_]
    columns = [
        proba[:, known.index(c)] if c in known else np.zeros(len(features)) for c in ctx.classes
    ]
    return np.column_stack(columns) if len(ctx.classes) > 2 else columns[1]


def train(ctx: Any) -> None:
    name = ctx.spec["algorithm"]
    features, truth = ctx.table("train")
    _check_numeric(features)
    if ctx.task == "classification":
        truth = truth.astype(str)
    has_validation = ctx.has_part("validation")
    if has_validation:
        val_features, val_truth = ctx.table("validation")
        if ctx.task == "classification":
            val_truth = val_truth.astype(str)
    model = _estimator(name, ctx.params, ctx.seed)
    metric = "accuracy" if ctx.task == "classification" else "rmse"
    if "forest" in name:  # grow the forest in rounds (warm start), logging each
        total = model.n_estimators
        ctx.total_steps(ROUNDS)
        for step in range(1, ROUNDS + 1):
            model.n_estimators = max(1, round(total * step / ROUNDS))
            model.fit(features, truth)
            values = {f"train_{metric}": _compare(ctx, model.predict(features), truth)}
            if has_validation:
                val_predicted = model.predict(val_features)
                values[f"validation_{metric}"] = _compare(ctx, val_predicted, val_truth)
            ctx.log(step=step, **values)
    else:
        model.fit(features, truth)
        if "gradient_boosting" in name:  # its learning curve, stage by stage
            stages = model.n_estimators
            every = max(1, stages // 50)
            train_stages = model.staged_predict(features)
            val_stages = model.staged_predict(val_features) if has_validation else None
            for stage, predicted in enumerate(train_stages, 1):
                val_predicted = next(val_stages) if val_stages is not None else None
                if stage % every and stage != stages:
                    continue
                values = {f"train_{metric}": _compare(ctx, predicted, truth)}
                if val_predicted is not None:
                    values[f"validation_{metric}"] = _compare(ctx, val_predicted, val_truth)
                ctx.log(step=stage, **values)
    for part in ("validation", "test"):
        if ctx.has_part(part):
            part_features, part_truth = ctx.table(part)
            scores = _scores(ctx, model, part_features)
            ctx.evaluate(part, model.predict(part_features), scores, part_truth)
    ctx.evaluate("train", model.predict(features), _scores(ctx, model, features), truth)
    save(model, ctx.artifact("model.skops"), list(map(str, features.columns)), ctx)


def _compare(ctx: Any, predicted: Any, truth: Any) -> float:
    if ctx.task == "classification":
        return float((predicted.astype(str) == truth.to_numpy()).mean())
    return float((((predicted - truth.to_numpy()) ** 2).mean()) ** 0.5)


def save(model: Any, path: Path, features: List[str], ctx: Any) -> None:
    import skops.io as sio

    sio.dump(model, path)
    (path.parent / "model.json").write_text(
        json.dumps(
            {"format": "skops", "algorithm": ctx.spec["algorithm"], "features": features,
             "classes": ctx.classes, "task": ctx.task, "target": ctx.target}
        )
    )  # fmt: skip


def _is_safe_type(name: str) -> bool:
    """A class (never a function) of scikit-learn, NumPy or SciPy: building one runs no code
    of the file's choosing. Functions (e.g. in a FunctionTransformer) are refused."""
    import importlib
    import inspect

    if not name.startswith(("sklearn.", "numpy.", "scipy.")):
        return False
    module_name, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        return False
    return inspect.isclass(found)


def load(folder: Path) -> Any:
    """The model, after skops lists the types the file would create: only classes of
    scikit-learn, NumPy and SciPy are accepted, never a function."""
    import skops.io as sio

    path = Path(folder) / "model.skops"
    unknown = sio.get_untrusted_types(file=path)
    unsafe = [t for t in unknown if not _is_safe_type(t)]
    if unsafe:
        raise ValueError(f"the model file holds types crispml does not load: {', '.join(unsafe)}")
    return sio.load(path, trusted=unknown)
