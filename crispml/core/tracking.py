"""The metrics and log protocol jobs write, and the incremental readers the pages use.

Jobs write ``metrics.jsonl`` (with ``crispml_job``): one JSON object per line, either metrics
(``{"time", "step", "metrics": {name: value}}``), progress (``{"time", "progress", "message"}``)
or the total number of steps (``{"time", "total"}``). Readers keep their place: each refresh
reads only the bytes appended since the last one; a partial last line waits for its end; a file
that shrank (truncated) or was replaced (rotated: another inode) is read again from its start.
Long series are downsampled for display with tsdownsample's MinMaxLTTB, keeping the first and
last points and the global extremes, with a min/max band per displayed bucket.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MAX_READ = 64 * 1024 * 1024  # at most this much per refresh: a huge backlog is read in steps


class LineReader:
    """New complete lines of a growing text file, across truncation and rotation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self._partial = b""
        self.resets = 0  # how often the file was truncated or replaced (readers start over)

    def _reset(self) -> None:
        self.offset, self._partial = 0, b""
        self.resets += 1

    def read(self, max_bytes: int = MAX_READ) -> list[str]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            if self.offset or self._partial:
                self._reset()
            self.inode = None
            return []
        if self.inode is not None and (stat.st_ino != self.inode or stat.st_size < self.offset):
            self._reset()
        self.inode = stat.st_ino
        if stat.st_size == self.offset:
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read(max_bytes)
        self.offset += len(data)
        pieces = (self._partial + data).split(b"\n")
        self._partial = pieces.pop()  # b"" when the data ended with a newline
        return [p.decode("utf-8", "replace") for p in pieces]


@dataclass
class Series:
    steps: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def arrays(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        return (
            np.asarray(self.steps, dtype=float),
            np.asarray(self.times, dtype=float),
            np.asarray(self.values, dtype=float),
        )


class MetricsReader:
    """Every metric of a run, kept up to date from its ``metrics.jsonl``."""

    def __init__(self, path: Path) -> None:
        self._lines = LineReader(path)
        self._resets = 0
        self._clear()

    def _clear(self) -> None:
        self.series: dict[str, Series] = {}
        self.total: int | None = None
        self.progress: float | None = None
        self.message = ""
        self.started: float | None = None
        self.last_time: float | None = None
        self._implicit_step = 0

    def refresh(self) -> bool:
        """Read what was appended; True if anything changed."""
        lines = self._lines.read()
        changed = False
        if self._lines.resets != self._resets:  # truncated or rotated: these lines start over
            self._resets = self._lines.resets
            self._clear()
            changed = True
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line that is not JSON is skipped, not fatal
            if isinstance(record, dict):
                changed = self._take(record) or changed
        return changed

    def _take(self, record: dict[str, Any]) -> bool:
        when = record.get("time")
        if isinstance(when, (int, float)):
            self.started = when if self.started is None else min(self.started, when)
            self.last_time = when if self.last_time is None else max(self.last_time, when)
        if isinstance(record.get("total"), (int, float)):
            self.total = int(record["total"])
        if isinstance(record.get("progress"), (int, float)):
            self.progress = float(record["progress"])
            self.message = str(record.get("message", ""))
        metrics = record.get("metrics")
        if not isinstance(metrics, dict) or not metrics:
            return True
        step = record.get("step")
        if not isinstance(step, (int, float)):
            self._implicit_step += 1
            step = self._implicit_step
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                series = self.series.setdefault(str(name), Series())
                series.steps.append(float(step))
                series.times.append(float(when) if isinstance(when, (int, float)) else math.nan)
                series.values.append(float(value))
        return True


def downsample(x: NDArray[np.float64], y: NDArray[np.float64], points: int) -> NDArray[np.int64]:
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


def band(
    x: NDArray[np.float64], y: NDArray[np.float64], buckets: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per bucket of x: its centre, and the minimum and maximum of y (the shaded band drawn where
    points were merged)."""
    if len(x) == 0:
        empty = np.asarray([], dtype=float)
        return empty, empty, empty
    edges = np.linspace(float(x.min()), float(x.max()), buckets + 1)
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, buckets - 1)
    low = np.full(buckets, np.inf)
    high = np.full(buckets, -np.inf)
    np.minimum.at(low, which, y)
    np.maximum.at(high, which, y)
    filled = np.isfinite(low)
    centres = (edges[:-1] + edges[1:]) / 2
    return centres[filled], low[filled], high[filled]
