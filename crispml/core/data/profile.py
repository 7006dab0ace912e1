"""A table's profile: per-column types, missing values, distinct counts, summary statistics and
distributions (histograms or top values), and correlations. Plain JSON-able data, computed once
per dataset version and kept beside it, so the page draws charts without touching the rows."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

BINS = 30
TOP_VALUES = 20
MAX_CORRELATED = 40  # numeric columns in the correlation matrix, at most


def column_kind(series: pd.Series) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "categorical"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _numeric(series: pd.Series) -> dict[str, Any]:
    import numpy as np

    values = series.dropna().to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {}
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    bins = min(BINS, max(1, int(np.unique(values[:100_000]).size)))
    counts, edges = np.histogram(values, bins=bins)
    return {
        "min": _number(values.min()),
        "max": _number(values.max()),
        "mean": _number(values.mean()),
        "std": _number(values.std(ddof=1)) if values.size > 1 else None,
        "q25": _number(q25),
        "median": _number(q50),
        "q75": _number(q75),
        "histogram": {"edges": [float(e) for e in edges], "counts": counts.tolist()},
    }


def _categorical(series: pd.Series) -> dict[str, Any]:
    counts = series.dropna().astype(str).value_counts()
    top = counts.head(TOP_VALUES)
    return {
        "top": [[str(k), int(v)] for k, v in top.items()],
        "other": int(counts.iloc[TOP_VALUES:].sum()) if len(counts) > TOP_VALUES else 0,
    }


def profile_table(frame: pd.DataFrame) -> dict[str, Any]:
    columns = []
    for name in frame.columns:
        series = frame[name]
        kind = column_kind(series)
        entry: dict[str, Any] = {
            "name": str(name),
            "dtype": str(series.dtype),
            "kind": kind,
            "missing": int(series.isna().sum()),
            "distinct": int(series.nunique(dropna=True)),
        }
        if kind == "numeric":
            entry.update(_numeric(series))
            if entry["distinct"] <= TOP_VALUES:  # few values: their counts say more
                entry.update(_categorical(series))
        else:
            entry.update(_categorical(series))
        columns.append(entry)
    numeric = [c["name"] for c in columns if c["kind"] == "numeric"][:MAX_CORRELATED]
    matrix: list[list[float | None]] = []
    if len(numeric) >= 2:
        corr = frame[numeric].corr(method="pearson", numeric_only=True)
        matrix = [[_number(v) for v in row] for row in corr.to_numpy()]
    return {
        "rows": int(frame.shape[0]),
        "columns": int(frame.shape[1]),
        "missing_cells": int(sum(c["missing"] for c in columns)),
        "memory_bytes": int(frame.memory_usage(deep=False).sum()),
        "column_profiles": columns,
        "correlations": {"columns": numeric, "matrix": matrix},
    }
