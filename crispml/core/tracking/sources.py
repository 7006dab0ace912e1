"""The files that hold a run's metrics, each read incrementally into series: ``metrics.jsonl``
(``MetricsReader``), CSV logs (``CsvMetricsReader``), the output log read with patterns
(``LogMetricsReader``) and TensorBoard event files (``TensorBoardReader``)."""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crispml.core.tracking.reading import LineReader
from crispml.core.tracking.series import Floats, Series
from crispml.log_patterns import DEFAULT_LOG_PATTERNS, STEP_NAMES

MAX_LINE = 8_192  # longer log lines are not searched for metrics
BULK_BYTES = 256 * 1024  # blocks at least this large are parsed column-wise with pyarrow

Rows = dict[str, list[tuple[float, float, float, float]]]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class _Readout:
    """What every reader shows: its series, the progress and message, the first and last time."""

    kind = ""

    def _clear(self) -> None:
        self.series: dict[str, Series] = {}
        self.total: int | None = None
        self.progress: float | None = None
        self.message = ""
        self.started: float | None = None
        self.last_time: float | None = None


class _Source(_Readout):
    """A file that yields metric points; ``refresh`` reads what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines = LineReader(path)
        self._resets = 0
        self._clear()

    def _clear(self) -> None:
        super()._clear()
        self._restart()

    def refresh(self) -> bool:
        """Read everything appended since the last refresh; True if anything changed."""
        changed = False
        while True:
            block = self._lines.read_block()
            if self._lines.resets != self._resets:  # truncated or rotated: start over
                self._resets = self._lines.resets
                self._clear()
                changed = True
            if block:
                if not (len(block) >= BULK_BYTES and self._parse_bulk(block)):
                    rows: Rows = {}
                    lines = block.decode("utf-8", "replace").split("\n")[:-1]
                    self._parse(lines, rows)
                    for name, points in rows.items():
                        self.series.setdefault(name, Series()).extend(points)
                changed = True
            if not self._lines.behind:
                return changed

    def _parse_bulk(self, block: bytes) -> bool:
        """Parse many lines at once, column by column; False: use ``_parse`` instead."""
        return False

    def _restart(self) -> None:
        """Forget per-file parsing state after the file started over."""

    def _parse(self, lines: list[str], rows: Rows) -> None:
        raise NotImplementedError

    def _saw(self, when: float) -> None:
        self.started = when if self.started is None else min(self.started, when)
        self.last_time = when if self.last_time is None else max(self.last_time, when)

    @property
    def read_bytes(self) -> int:
        return self._lines.offset


class MetricsReader(_Source):
    """Every metric of a run, kept up to date from its ``metrics.jsonl``."""

    kind = "metrics.jsonl"

    def _restart(self) -> None:
        self._implicit_step = 0

    def _parse(self, lines: list[str], rows: Rows) -> None:
        loads = json.loads
        for line in lines:
            try:
                record = loads(line)
            except ValueError:
                continue  # a line that is not JSON is skipped, not fatal
            if not isinstance(record, dict):
                continue
            when = _number(record.get("time"))
            if when is not None:
                self._saw(when)
            total = _number(record.get("total"))
            if total is not None:
                self.total = int(total)
            share = _number(record.get("progress"))
            if share is not None:
                self.progress = share
                self.message = str(record.get("message", ""))
            metrics = record.get("metrics")
            if not isinstance(metrics, dict) or not metrics:
                continue
            values = {str(k): v for k, v in metrics.items() if _number(v) is not None}
            if not values:
                continue
            step = _number(record.get("step"))
            if step is None:
                self._implicit_step += 1
                step = float(self._implicit_step)
            epoch = _number(record.get("epoch"))
            point_time = math.nan if when is None else when
            point_epoch = math.nan if epoch is None else epoch
            for name, value in values.items():
                rows.setdefault(name, []).append((step, point_time, point_epoch, float(value)))

    def _parse_bulk(self, block: bytes) -> bool:
        import pyarrow as pa
        import pyarrow.json as pa_json

        try:
            table = pa_json.read_json(pa.BufferReader(block))
        except pa.ArrowException:
            return False  # a line that is not JSON, or types that change: line by line
        rows = table.num_rows

        def column(name: str) -> Floats:
            if name not in table.column_names:
                return np.full(rows, np.nan)
            data = table.column(name)
            if not (pa.types.is_integer(data.type) or pa.types.is_floating(data.type)):
                return np.full(rows, np.nan)
            floats = data.cast(pa.float64(), safe=False)  # large integers (ns times) round
            return np.asarray(floats.to_numpy(zero_copy_only=False), np.float64)

        times, steps, epochs = column("time"), column("step"), column("epoch")
        for name, target in (("total", "total"), ("progress", "progress")):
            values = column(name)
            present = np.flatnonzero(np.isfinite(values))
            if len(present):
                last = int(present[-1])
                if target == "total":
                    self.total = int(values[last])
                else:
                    self.progress = float(values[last])
                    if "message" in table.column_names:
                        self.message = str(table.column("message")[last].as_py() or "")
        finite_times = times[np.isfinite(times)]
        if len(finite_times):
            self._saw(float(finite_times.min()))
            self._saw(float(finite_times.max()))
        if "metrics" not in table.column_names:
            return True
        struct = table.column("metrics").combine_chunks()
        if not pa.types.is_struct(struct.type):
            return False
        metric_values: dict[str, Floats] = {}
        for index in range(struct.type.num_fields):
            field = struct.type.field(index)
            if pa.types.is_integer(field.type) or pa.types.is_floating(field.type):
                child = struct.field(index).cast(pa.float64(), safe=False)
                values = np.asarray(child.to_numpy(zero_copy_only=False), np.float64)
                valid = np.asarray(struct.is_valid().to_numpy(zero_copy_only=False), bool)
                metric_values[field.name] = np.where(valid, values, np.nan)
            elif not pa.types.is_null(field.type):
                return False  # text, booleans or nested values: the line parser skips them
        if not metric_values:
            return True
        finite = {name: np.isfinite(v) for name, v in metric_values.items()}
        any_value = np.logical_or.reduce(list(finite.values()))
        implicit = np.isnan(steps) & any_value
        counted = np.cumsum(implicit) + self._implicit_step
        steps = np.where(implicit, counted, steps)
        self._implicit_step = int(counted[-1]) if len(counted) else self._implicit_step
        for name, values in metric_values.items():
            keep = finite[name]
            if keep.any():
                columns = np.vstack([steps[keep], times[keep], epochs[keep], values[keep]])
                self.series.setdefault(name, Series()).extend_columns(columns)
        return True


class CsvMetricsReader(_Source):
    """A CSV metrics log such as Lightning's CSVLogger writes: a header naming the columns
    (``step``, ``epoch``, an optional time, and metrics), then one row per logging call with
    empty cells for metrics not logged in it. Lightning rewrites the whole file when a new
    metric appears; the reader notices and starts over."""

    kind = "csv"
    _TIME = frozenset({"time", "wall_time", "timestamp", "created_at"})

    def _restart(self) -> None:
        self._header: list[str] | None = None
        self._row = 0

    def _parse(self, lines: list[str], rows: Rows) -> None:
        for cells in csv.reader(lines):
            if not cells:
                continue
            if self._header is None:
                self._header = [c.strip() for c in cells]
                continue
            record = dict(zip(self._header, cells, strict=False))
            self._row += 1
            step = _float(record.get("step"))
            epoch = _float(record.get("epoch"))
            when = next((_float(record[k]) for k in self._TIME if k in record), math.nan)
            if math.isfinite(when):
                self._saw(when)
            x = step if math.isfinite(step) else float(self._row)
            for name, text in record.items():
                if name in ("step", "epoch") or name in self._TIME:
                    continue
                value = _float(text)
                if math.isfinite(value):
                    rows.setdefault(name, []).append((x, when, epoch, value))


def _float(text: str | None) -> float:
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


class LogMetricsReader(_Source):
    """Metrics printed in the output log, found with regular expressions (see
    ``crispml.log_patterns``); carriage returns count as line ends (progress bars)."""

    kind = "log"

    def __init__(self, path: Path, patterns: Sequence[re.Pattern[str]]) -> None:
        self.patterns = list(patterns)
        # The default patterns only match lines with "=", ":" or an "Epoch" header: other lines
        # (most of a chatty log) are skipped before any regular expression runs.
        self._quick = [p.pattern for p in patterns] == list(DEFAULT_LOG_PATTERNS)
        super().__init__(path)

    def _restart(self) -> None:
        self._epoch = math.nan
        self._counts: dict[str, int] = {}
        self._live = False

    def refresh(self) -> bool:
        changed = super().refresh()
        self._live = True  # from now on a new line was printed about when it is read
        return changed

    def _parse(self, lines: list[str], rows: Rows) -> None:
        for whole in lines:
            for line in whole.split("\r"):
                if self._quick and "=" not in line and ":" not in line and "Epoch" not in line:
                    continue
                if len(line) <= MAX_LINE and line.strip():
                    self._parse_line(line, rows)

    def _parse_line(self, line: str, rows: Rows) -> None:
        found: dict[str, float] = {}
        for pattern in self.patterns:
            for match in pattern.finditer(line):
                groups = match.groupdict()
                if "name" in groups:
                    value = _float(groups["value"])
                    if groups["name"] and math.isfinite(value):
                        found[groups["name"]] = value
                for name, text in groups.items():
                    if name not in ("name", "value") and text is not None:
                        found[name] = _float(text)
        if not found:
            return
        batch, batches = found.pop("batch", math.nan), found.pop("batches", math.nan)
        if math.isfinite(batch) and math.isfinite(batches) and batch < batches:
            return  # an intermediate progress line of an epoch
        total = found.pop("total", math.nan)
        epoch = found.pop("epoch", math.nan)
        step = math.nan
        for name in STEP_NAMES:
            value = found.pop(name, math.nan)
            step = value if math.isnan(step) else step
        if math.isfinite(total) and total > 0:
            self.total = int(total)
        if math.isfinite(epoch):
            self._epoch = epoch
            if self.total and not math.isfinite(step):
                self.progress = min(1.0, max(0.0, (epoch - 1) / self.total))
                self.message = f"epoch {epoch:g} of {self.total}"
        if not found:
            return
        now = time.time() if self._live else math.nan  # a backlog's lines have no known time
        if self._live:
            self._saw(now)
        for name, value in found.items():
            if not math.isfinite(value):
                continue
            count = self._counts[name] = self._counts.get(name, 0) + 1
            x = step if math.isfinite(step) else self._epoch
            rows.setdefault(name, []).append(
                (x if math.isfinite(x) else float(count), now, self._epoch, value)
            )
        if self.total and math.isfinite(self._epoch) and not math.isfinite(step):
            self.progress = min(1.0, self._epoch / self.total)


class TensorBoardReader(_Readout):
    """Scalars of one TensorBoard event file (TensorBoard's own loader: it resumes where it
    stopped and waits for a record written halfway)."""

    kind = "tensorboard"

    def __init__(self, path: Path) -> None:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

        self.path = path
        self._loader = EventFileLoader(str(path))
        self._scalars: set[str] = set()  # some writers mark a tag as scalar on its first event only
        self._clear()

    def refresh(self) -> bool:
        from tensorboard.util import tensor_util

        rows: Rows = {}
        for event in self._loader.Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    self._scalars.add(value.tag)
                elif value.tag not in self._scalars:
                    continue
                number = float(tensor_util.make_ndarray(value.tensor).item())
                if math.isfinite(number):
                    when = float(event.wall_time)
                    rows.setdefault(value.tag, []).append(
                        (float(event.step), when, math.nan, number)
                    )
                    self.started = when if self.started is None else min(self.started, when)
                    self.last_time = max(self.last_time or when, when)
        for name, points in rows.items():
            self.series.setdefault(name, Series()).extend(points)
        return bool(rows)

    @property
    def read_bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0


Reader = MetricsReader | CsvMetricsReader | LogMetricsReader | TensorBoardReader
