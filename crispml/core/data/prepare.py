"""Data preparation as a recipe: target and features, a seeded train/validation/test split
(stratified for classification), and per-column preprocessing fitted on the training rows only.

A recipe is plain data; ``prepare_table`` applies it and returns the three parts with what it
fitted (means, scales, categories), which the prepared version records beside the recipe, so it
can be rebuilt (the same split and values) and explained.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from crispml.core.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

IMPUTE = ("none", "mean", "median", "most_frequent", "constant")
SCALE = ("none", "standard", "minmax")
ENCODE = ("none", "onehot", "ordinal")
TASKS = ("classification", "regression")
AUGMENT = ("horizontal flip", "vertical flip", "rotate 90", "brightness")
ROW_COLUMN = "_row"  # each prepared row's position in the source table


@dataclass(frozen=True)
class ColumnStep:
    impute: str = "none"
    scale: str = "none"
    encode: str = "none"


@dataclass(frozen=True)
class Recipe:
    target: str
    features: list[str]
    task: str
    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    seed: int = 42
    stratify: bool = True
    numeric: ColumnStep = ColumnStep("median", "standard", "none")
    categorical: ColumnStep = ColumnStep("most_frequent", "none", "onehot")
    overrides: dict[str, ColumnStep] = field(default_factory=dict)

    def step(self, column: str, kind: str) -> ColumnStep:
        return self.overrides.get(column) or (
            self.numeric if kind == "numeric" else self.categorical
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        values = dict(data)
        for key in ("numeric", "categorical"):
            if isinstance(values.get(key), dict):
                values[key] = ColumnStep(**values[key])
        values["overrides"] = {
            k: ColumnStep(**v) for k, v in dict(values.get("overrides") or {}).items()
        }
        return cls(**values)


def check_recipe(recipe: Recipe, columns: list[str]) -> None:
    if ROW_COLUMN in columns:
        raise InvalidInput(f"A column is named '{ROW_COLUMN}', which crispml keeps for row ids.")
    if recipe.target not in columns:
        raise InvalidInput(f"The target '{recipe.target}' is not a column of this dataset.")
    if not recipe.features:
        raise InvalidInput("Choose at least one feature.")
    missing = [f for f in recipe.features if f not in columns]
    if missing:
        raise InvalidInput(f"Not columns of this dataset: {', '.join(missing)}.")
    if recipe.target in recipe.features:
        raise InvalidInput("The target cannot also be a feature.")
    if recipe.task not in TASKS:
        raise InvalidInput(f"The task is one of: {', '.join(TASKS)}.")
    parts = (recipe.train, recipe.validation, recipe.test)
    if recipe.train <= 0 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise InvalidInput("The split shares must be at least 0, train above 0, adding up to 1.")
    for step in [recipe.numeric, recipe.categorical, *recipe.overrides.values()]:
        if step.impute not in IMPUTE or step.scale not in SCALE or step.encode not in ENCODE:
            raise InvalidInput(f"Unknown preprocessing step in {step}.")


def split(frame: pd.DataFrame, recipe: Recipe) -> dict[str, pd.DataFrame]:
    """Rows with a target, split by the recipe's seed (stratified for classification)."""
    from sklearn.model_selection import train_test_split

    rows = frame[frame[recipe.target].notna()]
    if len(rows) < 3:
        raise InvalidInput("Fewer than 3 rows have a target value: nothing to split.")
    if recipe.task == "classification" and rows[recipe.target].nunique() < 2:
        raise InvalidInput(f"The target '{recipe.target}' has one class only: nothing to learn.")
    if recipe.task == "regression" and rows[recipe.target].dtype.kind not in "biuf":
        raise InvalidInput(
            f"The target '{recipe.target}' is not numeric: choose classification or another target."
        )
    labels = rows[recipe.target].astype(str) if recipe.task == "classification" else None
    stratify = recipe.stratify and labels is not None
    if stratify:
        assert labels is not None
        counts = labels.value_counts()
        if counts.min() < 2:
            raise InvalidInput(
                f"Cannot stratify: the class '{counts.idxmin()}' has only {counts.min()} row. "
                "Turn stratification off or drop that class."
            )
    rest_share = recipe.validation + recipe.test
    if rest_share == 0:
        return {"train": rows, "validation": rows.iloc[0:0], "test": rows.iloc[0:0]}
    try:
        train, rest = train_test_split(
            rows,
            test_size=rest_share,
            random_state=recipe.seed,
            stratify=labels if stratify else None,
        )
        if recipe.validation == 0 or recipe.test == 0:
            empty = rest.iloc[0:0]
            return {
                "train": train,
                "validation": rest if recipe.validation else empty,
                "test": rest if recipe.test else empty,
            }
        rest_labels = labels.loc[rest.index] if stratify and labels is not None else None
        validation, test = train_test_split(
            rest,
            test_size=recipe.test / rest_share,
            random_state=recipe.seed,
            stratify=rest_labels,
        )
    except ValueError as exc:  # too few rows of a class for the shares asked
        raise InvalidInput(f"The split cannot be made: {exc}") from exc
    return {"train": train, "validation": validation, "test": test}


def _fill_value(series: pd.Series, how: str) -> Any:
    present = series.dropna()
    if how == "mean":
        return float(present.mean()) if len(present) else 0.0
    if how == "median":
        return float(present.median()) if len(present) else 0.0
    if how == "most_frequent":
        mode = present.mode()
        if not len(mode):
            return ""
        value = mode.iloc[0]
        value = value.item() if hasattr(value, "item") else value
        return value if isinstance(value, (str, int, float, bool)) else str(value)
    return 0 if series.dtype.kind in "fiub" else "missing"


def prepare_table(
    frame: pd.DataFrame, recipe: Recipe, kinds: dict[str, str]
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Split, then fit each column's steps on the training part and apply them to all three."""
    import numpy as np
    import pandas as pd

    check_recipe(recipe, [str(c) for c in frame.columns])
    parts = split(frame, recipe)
    fitted: dict[str, Any] = {}
    outputs: dict[str, list[pd.DataFrame]] = {name: [] for name in parts}
    for column in recipe.features:
        kind = kinds.get(column, "categorical")
        step = recipe.step(column, "numeric" if kind in ("numeric", "boolean") else "categorical")
        train = parts["train"][column]
        record: dict[str, Any] = {"kind": kind}
        fill = None
        if step.impute != "none":
            fill = _fill_value(train, step.impute)
            record["fill"] = fill
        columns_of: dict[str, pd.Series] = {}
        for name, part in parts.items():
            series = part[column]
            if fill is not None:
                series = series.fillna(fill)
            columns_of[name] = series
        if kind in ("numeric", "boolean"):
            train_values = columns_of["train"].astype(float)
            if step.scale == "standard":
                centre, scale = float(train_values.mean()), float(train_values.std(ddof=0)) or 1.0
            elif step.scale == "minmax":
                centre = float(train_values.min())
                scale = float(train_values.max() - train_values.min()) or 1.0
            else:
                centre, scale = 0.0, 1.0
            if step.scale != "none":
                record.update(scale=step.scale, centre=centre, divisor=scale)
            for name, series in columns_of.items():
                values = (series.astype(float) - centre) / scale
                outputs[name].append(values.rename(column).to_frame())
        else:
            categories = sorted(columns_of["train"].dropna().astype(str).unique().tolist())
            record["categories"] = categories
            for name, series in columns_of.items():
                text = series.astype("string")
                if step.encode == "onehot":
                    flags = {f"{column}={c}": (text == c).fillna(False) for c in categories}
                    block = pd.DataFrame(flags, index=series.index).astype(np.float32)
                elif step.encode == "ordinal":
                    codes = {c: i for i, c in enumerate(categories)}
                    block = text.map(codes).fillna(-1).astype(np.int64).rename(column).to_frame()
                else:
                    block = text.rename(column).to_frame()
                outputs[name].append(block)
            record["encode"] = step.encode
        fitted[column] = record
    result = {}
    for name, part in parts.items():
        blocks = outputs[name]
        features = pd.concat(blocks, axis=1) if blocks else pd.DataFrame(index=part.index)
        features[recipe.target] = part[recipe.target]
        features.insert(0, ROW_COLUMN, part.index.to_numpy())
        result[name] = features.reset_index(drop=True)
    return result, fitted


def apply_fitted(frame: pd.DataFrame, fitted: dict[str, Any]) -> pd.DataFrame:
    """New rows transformed as the training part was (fills, scaling, encodings fitted there):
    what a served model needs from raw input. Unknown categories encode as unseen (all zeros
    one-hot, -1 ordinal); a missing value takes the fitted fill."""
    import numpy as np
    import pandas as pd

    missing = [c for c in fitted if c not in frame.columns]
    if missing:
        raise InvalidInput(f"Rows lack the column(s) {', '.join(missing)}.")
    blocks = []
    for column, record in fitted.items():
        series = frame[column]
        if "fill" in record:
            series = series.fillna(record["fill"])
        if record.get("kind") in ("numeric", "boolean"):
            try:
                values = pd.to_numeric(series, errors="raise").astype(float)
            except (TypeError, ValueError):
                raise InvalidInput(f"'{column}' must be a number in every row.") from None
            if "centre" in record:
                values = (values - float(record["centre"])) / float(record["divisor"])
            blocks.append(values.rename(column).to_frame())
            continue
        text = series.astype("string")
        categories = list(record.get("categories", []))
        if record.get("encode") == "onehot":
            flags = {f"{column}={c}": (text == c).fillna(False) for c in categories}
            blocks.append(pd.DataFrame(flags, index=series.index).astype(np.float32))
        elif record.get("encode") == "ordinal":
            codes = {c: i for i, c in enumerate(categories)}
            blocks.append(text.map(codes).fillna(-1).astype(np.int64).rename(column).to_frame())
        else:
            blocks.append(text.rename(column).to_frame())
    return pd.concat(blocks, axis=1) if blocks else pd.DataFrame(index=frame.index)


def digest(frames: dict[str, pd.DataFrame]) -> str:
    """A short content hash of the prepared parts: equal values give an equal digest."""
    import pandas as pd

    h = hashlib.sha256()
    for name in sorted(frames):
        h.update(name.encode())
        h.update(pd.util.hash_pandas_object(frames[name], index=False).to_numpy().tobytes())
        h.update(json.dumps(list(map(str, frames[name].columns))).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ImageRecipe:
    """Images: a seeded split, the size every image is resized to, and the augmentations that
    training applies to the training part (flips, rotations, brightness), recorded by name."""

    size: int = 64
    augment: list[str] = field(default_factory=list)
    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_images(names: list[str], recipe: ImageRecipe) -> dict[str, list[str]]:
    import numpy as np

    if not 16 <= recipe.size <= 1024:
        raise InvalidInput("Resize images to 16 to 1,024 pixels.")
    unknown = [a for a in recipe.augment if a not in AUGMENT]
    if unknown:
        raise InvalidInput(f"Unknown augmentation: {', '.join(unknown)}.")
    parts = (recipe.train, recipe.validation, recipe.test)
    if recipe.train <= 0 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise InvalidInput("The split shares must be at least 0, train above 0, adding up to 1.")
    if len(names) < 3:
        raise InvalidInput("An image set needs at least 3 images to be split.")
    order = np.random.default_rng(recipe.seed).permutation(len(names))
    n_train = max(1, round(recipe.train * len(names)))
    n_validation = round(recipe.validation * len(names))
    shuffled = [names[i] for i in order]
    return {
        "train": sorted(shuffled[:n_train]),
        "validation": sorted(shuffled[n_train : n_train + n_validation]),
        "test": sorted(shuffled[n_train + n_validation :]),
    }
