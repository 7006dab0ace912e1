"""The live chart's spec: a metric logged once per part (final f1, precision ...) is drawn as dots,
not as lines of one point that show nothing."""

from __future__ import annotations

import numpy as np

from crispml.core.tracking import Curve
from crispml.ui.widgets.live_plots import Options, chart


def curve(xs: list[float], ys: list[float]) -> Curve:
    x, y = np.array(xs, dtype=float), np.array(ys, dtype=float)
    empty = np.array([], dtype=float)
    return Curve(x, y, y, empty, empty, empty, y, len(xs))


def marks(spec: dict) -> list[str]:
    return [
        layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
        for layer in spec["layer"]
    ]


def test_one_point_series_are_dots_and_longer_ones_lines() -> None:
    chosen = Options(interval=2, axis="step", smoothing=0.0, log=False, outliers=False)
    final = chart("f1", [("train", curve([1], [0.9])), ("test", curve([1], [0.8]))], chosen)
    spec = final.to_dict()
    assert marks(spec) == ["line", "point"]
    assert spec["title"]["subtitle"] == "2 points"
    curves = chart("loss", [("train", curve([1, 2, 3], [0.9, 0.5, 0.4]))], chosen).to_dict()
    assert marks(curves) == ["line"]
