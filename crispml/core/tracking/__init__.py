"""The metrics and log protocol jobs write, the incremental readers the pages use, and the
numbers behind the live charts.

Sources of metrics in a run's folder, all followed incrementally:

- ``metrics.jsonl`` (written with ``crispml_job``): one JSON object per line, either metrics
  (``{"time", "step", "epoch"?, "metrics": {name: value}}``), progress (``{"time", "progress",
  "message"}``) or the total number of steps (``{"time", "total"}``);
- ``metrics.csv`` files (Lightning's CSVLogger: ``epoch,step,<metric>...`` with empty cells);
- TensorBoard event files (``events.out.tfevents.*``, scalars), anywhere under the folder;
- the output log, read with configurable patterns (``key=value``, ``key: value``, Keras lines),
  used only when none of the others holds a metric.

Readers keep their place: each refresh reads only the bytes appended since the last one; a partial
last line waits for its end; a file that shrank, was rewritten or was replaced (another inode) is
read again from its start. Series live in growable numpy buffers, so a refresh costs what was
appended, not what was there. Long series are downsampled for display with tsdownsample's
MinMaxLTTB, keeping the first and last points and the global extremes, with a min/max band per
displayed bucket.

Modules: ``reading`` (incremental file reading, no numpy), ``series`` (a metric's buffers),
``sources`` (jsonl, CSV, log patterns, TensorBoard), ``tracker`` (the per-run tracker and its
cache), ``display`` (names paired into charts, EMA, y ranges, downsampling, bands). The names
below are imported from their module when first used, so that ``reading`` alone (the CLI's log
tailing) does not import numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crispml.core.tracking.display import (
        Curve,
        band,
        curve,
        downsample,
        ema,
        group_metrics,
        split_name,
        x_values,
        y_range,
    )
    from crispml.core.tracking.reading import FileTail, LineReader
    from crispml.core.tracking.series import Floats, Series
    from crispml.core.tracking.sources import (
        CsvMetricsReader,
        LogMetricsReader,
        MetricsReader,
        Reader,
        TensorBoardReader,
    )
    from crispml.core.tracking.tracker import TRACKERS, RunTracker, TrackerCache

__all__ = [
    "TRACKERS",
    "CsvMetricsReader",
    "Curve",
    "FileTail",
    "Floats",
    "LineReader",
    "LogMetricsReader",
    "MetricsReader",
    "Reader",
    "RunTracker",
    "Series",
    "TensorBoardReader",
    "TrackerCache",
    "band",
    "curve",
    "downsample",
    "ema",
    "group_metrics",
    "split_name",
    "x_values",
    "y_range",
]
_MODULES = {
    "reading": "FileTail LineReader",
    "series": "Floats Series",
    "sources": "CsvMetricsReader LogMetricsReader MetricsReader Reader TensorBoardReader",
    "tracker": "TRACKERS RunTracker TrackerCache",
    "display": "Curve band curve downsample ema group_metrics split_name x_values y_range",
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names.split()}


def __getattr__(name: str) -> object:
    """A public name, imported from its module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later look-ups find it without this function
    return value
