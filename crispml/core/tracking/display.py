"""The numbers behind the live charts: metric names paired into charts, TensorBoard's smoothing,
y ranges that leave outliers out, and curves downsampled (MinMaxLTTB) with a min/max band."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from crispml.core.tracking.series import Floats, Series

SPLITS = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "eval": "validation",
    "test": "test",
}
_PREFIX = re.compile(r"^(train|training|val|valid|validation|eval|test)[_/.-](.+)$", re.I)
_SUFFIX = re.compile(r"^(.+?)[_/.-](train|training|val|valid|validation|eval|test)$", re.I)


def split_name(metric: str) -> tuple[str, str]:
    """A metric's chart and part: ``val_loss`` -> (loss, validation), ``loss/train`` -> (loss,
    train), ``loss`` -> (loss, "") (Keras' training loss, when a ``val_loss`` exists)."""
    for pattern, base_group, split_group in ((_PREFIX, 2, 1), (_SUFFIX, 1, 2)):
        match = pattern.match(metric)
        if match:
            return match.group(base_group), SPLITS[match.group(split_group).lower()]
    return metric, ""


def group_metrics(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Charts (one per base metric) holding their parts: {base: {part: metric name}}."""
    charts: dict[str, dict[str, str]] = {}
    for name in names:
        base, part = split_name(name)
        charts.setdefault(base, {})[part] = name
    for parts in charts.values():
        if "" in parts and len(parts) > 1 and "train" not in parts:
            parts["train"] = parts.pop("")  # Keras: loss next to val_loss is the training loss
    return dict(sorted(charts.items()))


def ema(values: Floats, weight: float) -> Floats:
    """TensorBoard's smoothing: an exponential moving average, debiased (the first values are
    not pulled towards zero). ``weight`` 0 is no smoothing, 0.99 very smooth."""
    if weight <= 0 or len(values) == 0:
        return values
    from scipy.signal import lfilter

    weight = min(weight, 0.999)
    running = lfilter([1 - weight], [1, -weight], values)
    debias = 1 - weight ** np.arange(1, len(values) + 1, dtype=np.float64)
    return np.asarray(running / debias, dtype=np.float64)


def y_range(samples: Sequence[Floats], log: bool) -> tuple[float, float] | None:
    """The y-axis range that leaves outliers out: the 1st to 99th percentile of the curves'
    samples, widened by a tenth (TensorBoard's "ignore outliers in chart scaling"); None when
    there are too few values to tell."""
    shown = np.concatenate(list(samples)) if samples else np.asarray([], dtype=np.float64)
    if log:
        shown = shown[shown > 0]
    if len(shown) < 20:
        return None
    low, high = (float(v) for v in np.quantile(shown, [0.01, 0.99]))
    if log:
        return low / 1.25, high * 1.25
    margin = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    return low - margin, high + margin


SAMPLE = 20_000  # values a y-range's percentiles are estimated from


@dataclass
class Curve:
    """What one line of a chart needs: displayed points and, where points were merged, a band."""

    x: Floats
    y: Floats
    smooth: Floats  # the smoothed value at each displayed point (y itself without smoothing)
    band_x: Floats
    band_low: Floats
    band_high: Floats
    sample: Floats  # an evenly strided sample of the values, for percentiles
    points: int  # points in the series (before downsampling)


def x_values(series: Series, axis: str, origin: float | None, index: NDArray[np.int64]) -> Floats:
    """The x of the points at ``index``: their step, their epoch (the step where none was
    logged) or the seconds since ``origin`` (the run's start; else the first time logged)."""
    if axis == "epoch":
        epochs = series.epochs[index]
        return np.where(np.isnan(epochs), series.steps[index], epochs)
    if axis == "time":
        times = series.times[index]
        start = origin
        if start is None:
            finite = times[np.isfinite(times)]
            start = float(finite.min()) if len(finite) else 0.0
        return times - start
    return series.steps[index]


def curve(
    series: Series,
    axis: str = "step",
    *,
    smoothing: float = 0.0,
    points: int = 1_000,
    log: bool = False,
    origin: float | None = None,
) -> Curve:
    """One series made ready to draw about ``points`` wide. The work is bounded whatever the
    series' length: LTTB runs on the series' bucket minima and maxima (MinMaxLTTB), which always
    include the first and last points and the global extremes; those are kept explicitly."""
    index = series.candidates()
    x, y = x_values(series, axis, origin, index), series.values[index]
    keep = np.isfinite(x) & (y > 0) if log else np.isfinite(x)
    if not keep.all():
        index, x, y = index[keep], x[keep], y[keep]
    if len(x) > 1 and np.any(x[1:] < x[:-1]):
        order = np.argsort(x, kind="stable")
        index, x, y = index[order], x[order], y[order]
    empty: Floats = np.asarray([], dtype=np.float64)
    band_x, low, high = empty, empty, empty
    if len(x) > points >= 4:
        from tsdownsample import LTTBDownsampler

        lttb = LTTBDownsampler()  # type: ignore[no-untyped-call]
        chosen = np.asarray(lttb.downsample(x, y, n_out=points), dtype=np.int64)
        extremes = [0, len(y) - 1, int(np.argmin(y)), int(np.argmax(y))]
        chosen = np.unique(np.concatenate([chosen, np.asarray(extremes, dtype=np.int64)]))
        band_x, low, high = band(x, y, max(points // 2, 1))
        index, x, y = index[chosen], x[chosen], y[chosen]
    elif len(series) > len(index):  # merged into buckets already: show what they span
        band_x, low, high = band(x, y, max(points // 2, 1))
    smooth = y
    if smoothing > 0:
        weight = min(float(smoothing), 0.999)
        running = series.running_average(weight)[index]
        smooth = running / (1 - weight ** (index.astype(np.float64) + 1))
    stride = max(1, len(series) // SAMPLE)
    sample = series.values[::stride]
    if log:
        sample = sample[sample > 0]
    return Curve(x, y, smooth, band_x, low, high, sample, len(series))


def downsample(x: Floats, y: Floats, points: int) -> NDArray[np.int64]:
    """Indices of at most about ``points`` points that draw the same line: MinMaxLTTB
    (tsdownsample), plus the first and last points and the global minimum and maximum."""
    n = len(y)
    if n <= points or points < 4:
        return np.arange(n, dtype=np.int64)
    from tsdownsample import MinMaxLTTBDownsampler

    order = np.argsort(x, kind="stable") if np.any(np.diff(x) < 0) else None
    xs, ys = (x[order], y[order]) if order is not None else (x, y)
    downsampler = MinMaxLTTBDownsampler()  # type: ignore[no-untyped-call]
    chosen = np.asarray(downsampler.downsample(xs, ys, n_out=points), dtype=np.int64)
    if order is not None:
        chosen = order[chosen]
    keep = np.concatenate([chosen, [0, n - 1, int(np.argmin(y)), int(np.argmax(y))]])
    return np.unique(keep).astype(np.int64)


def band(x: Floats, y: Floats, buckets: int) -> tuple[Floats, Floats, Floats]:
    """Per bucket of x: its centre, and the minimum and maximum of y (the shaded band drawn where
    points were merged)."""
    if len(x) == 0:
        empty = np.asarray([], dtype=float)
        return empty, empty, empty
    edges = np.linspace(float(x.min()), float(x.max()), buckets + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    if np.all(x[1:] >= x[:-1]):  # the usual case: sorted x, one pass per bucket boundary
        starts = np.searchsorted(x, edges[:-1], side="left")
        starts[0] = 0
        filled = np.diff(np.append(starts, len(x))) > 0
        starts = starts[filled]
        return centres[filled], np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, buckets - 1)
    low = np.full(buckets, np.inf)
    high = np.full(buckets, -np.inf)
    np.minimum.at(low, which, y)
    np.maximum.at(high, which, y)
    filled = np.isfinite(low)
    return centres[filled], low[filled], high[filled]
