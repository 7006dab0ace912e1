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
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crispml.core.records import open_job_file
from crispml.log_patterns import DEFAULT_LOG_PATTERNS, STEP_NAMES, compile_patterns

MAX_READ = 64 * 1024 * 1024  # one read's size: a huge backlog is read in steps
_FINGERPRINT = 64  # bytes before the offset checked on each read: a rewritten file starts over
RESCAN_S = 5.0  # how often a run folder is searched for new CSV and TensorBoard files
SCAN_DEPTH = 4
SCAN_ENTRIES = 5_000  # folders with more entries than this are not searched further
MAX_LINE = 8_192  # longer log lines are not searched for metrics
MAX_PARTIAL = 16 * 1024 * 1024  # an unfinished "line" longer than this is dropped
BULK_BYTES = 256 * 1024  # blocks at least this large are parsed column-wise with pyarrow

Floats = NDArray[np.float64]


class LineReader:
    """New complete lines of a growing text file, across truncation, rewriting and rotation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.size = 0  # the file's size at the last read
        self._partial = b""
        self._tail = b""  # the last bytes read: if they changed, the file was rewritten
        self.resets = 0  # how often the file was truncated or replaced (readers start over)

    def _reset(self) -> None:
        self.offset, self._partial, self._tail = 0, b"", b""
        self.resets += 1

    def read(self, max_bytes: int = MAX_READ) -> list[str]:
        block = self.read_block(max_bytes)
        return [p.decode("utf-8", "replace") for p in block.split(b"\n")[:-1]] if block else []

    def read_block(self, max_bytes: int = MAX_READ) -> bytes:
        """New complete lines as bytes, each ending with a newline (b"" if none)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            if self.offset or self._partial:
                self._reset()
            self.inode = None
            return b""
        if self.inode is not None and (stat.st_ino != self.inode or stat.st_size < self.offset):
            self._reset()
        self.inode, self.size = stat.st_ino, stat.st_size
        if stat.st_size == self.offset:
            return b""
        try:
            opened = open_job_file(self.path)  # a job may have put a link in its place
        except OSError:
            return b""
        with opened as f:
            f.seek(self.offset - len(self._tail))
            if self._tail and f.read(len(self._tail)) != self._tail:
                self._reset()  # same size or larger, other content: rewritten in place
                f.seek(0)
            data = f.read(max_bytes)
        self.offset += len(data)
        self._tail = (self._tail + data)[-_FINGERPRINT:]
        data = self._partial + data
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]  # a partial last line waits for its end
        if len(self._partial) > MAX_PARTIAL:  # no line is that long: not lines at all
            self._partial = b""
        return data[:end]

    @property
    def behind(self) -> bool:
        return self.offset < self.size


class Series:
    """One metric's points in growable buffers: step, wall time, epoch (NaN when unknown), value.

    For display at any size it keeps, as points arrive, the index of the minimum and maximum of
    each bucket of ``width`` consecutive points (at most ``BUCKETS`` buckets: when there would be
    more, neighbours merge and the width doubles), and the running exponential average for the
    last smoothing weight asked for. A refresh therefore costs what was appended, not the series'
    length."""

    BUCKETS = 4096

    __slots__ = ("_buckets", "_buffer", "_ema", "_hi", "_lo", "_n", "_width")

    def __init__(self) -> None:
        self._buffer = np.empty((4, 256), dtype=np.float64)
        self._n = 0
        self._width = 1
        self._buckets = 0
        self._lo = np.empty(0, dtype=np.int64)
        self._hi = np.empty(0, dtype=np.int64)
        self._ema: tuple[float, Floats, int] | None = None  # weight, running average, length

    def extend(self, rows: Sequence[tuple[float, float, float, float]]) -> None:
        if rows:
            self.extend_columns(np.asarray(rows, dtype=np.float64).T)

    def extend_columns(self, columns: NDArray[np.float64]) -> None:
        """Append points given as four rows: steps, times, epochs, values."""
        count = columns.shape[1]
        if not count:
            return
        need = self._n + count
        if need > self._buffer.shape[1]:
            grown = np.empty((4, max(need, 2 * self._buffer.shape[1])), dtype=np.float64)
            grown[:, : self._n] = self._buffer[:, : self._n]
            self._buffer = grown
        self._buffer[:, self._n : need] = columns
        self._n = need
        self._index()

    def _index(self) -> None:
        values = self._buffer[3]
        while True:
            width = self._width
            done = self._buckets * width
            complete = (self._n - done) // width
            if complete:
                block = values[done : done + complete * width].reshape(complete, width)
                base = done + np.arange(complete, dtype=np.int64) * width
                self._lo = np.concatenate([self._lo, base + block.argmin(axis=1)])
                self._hi = np.concatenate([self._hi, base + block.argmax(axis=1)])
                self._buckets += complete
            if self._buckets <= self.BUCKETS:
                return
            pairs = self._buckets // 2  # an odd last bucket is read again at the new width
            lo = self._lo[: 2 * pairs].reshape(pairs, 2)
            hi = self._hi[: 2 * pairs].reshape(pairs, 2)
            self._lo = np.where(values[lo[:, 0]] <= values[lo[:, 1]], lo[:, 0], lo[:, 1])
            self._hi = np.where(values[hi[:, 0]] >= values[hi[:, 1]], hi[:, 0], hi[:, 1])
            self._buckets, self._width = pairs, width * 2

    def candidates(self) -> NDArray[np.int64]:
        """Indices that hold every bucket's minimum and maximum, and the first and last point:
        at most about 2 * BUCKETS, whatever the length."""
        n = self._n
        if n <= 2 * self.BUCKETS:
            return np.arange(n, dtype=np.int64)
        done = self._buckets * self._width
        tail = self._buffer[3, done:n]
        extra = [0, n - 1]
        if len(tail):
            extra += [done + int(tail.argmin()), done + int(tail.argmax())]
        chosen = np.concatenate([self._lo, self._hi, np.asarray(extra, dtype=np.int64)])
        return np.unique(chosen)

    def running_average(self, weight: float) -> Floats:
        """TensorBoard's exponential moving average before debiasing, kept up to date."""
        from scipy.signal import lfilter

        if self._ema is None or self._ema[0] != weight:
            self._ema = (weight, np.empty(self._buffer.shape[1], dtype=np.float64), 0)
        _, done, length = self._ema
        if length < self._n:
            if self._n > len(done):
                grown = np.empty(self._buffer.shape[1], dtype=np.float64)
                grown[:length] = done[:length]
                done = grown
            previous = float(done[length - 1]) if length else 0.0
            new, _ = lfilter(
                [1 - weight],
                [1, -weight],
                self._buffer[3, length : self._n],
                zi=[weight * previous],
            )
            done[length : self._n] = new
            self._ema = (weight, done, self._n)
        return done[: self._n]

    def __len__(self) -> int:
        return self._n

    def snapshot(self) -> NDArray[np.float64]:
        """The four columns as they are now (steps, times, epochs, values). Later appends do
        not change them: the length is read before the buffer, and a grown buffer starts with
        the same points."""
        count = self._n
        return self._buffer[:, :count]

    @property
    def steps(self) -> Floats:
        return self._buffer[0, : self._n]

    @property
    def times(self) -> Floats:
        return self._buffer[1, : self._n]

    @property
    def epochs(self) -> Floats:
        return self._buffer[2, : self._n]

    @property
    def values(self) -> Floats:
        return self._buffer[3, : self._n]


Rows = dict[str, list[tuple[float, float, float, float]]]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class _Source:
    """A file that yields metric points; ``refresh`` reads what was appended."""

    kind = ""

    def __init__(self, path: Path) -> None:
        self.path = path
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


class TensorBoardReader:
    """Scalars of one TensorBoard event file (TensorBoard's own loader: it resumes where it
    stopped and waits for a record written halfway)."""

    kind = "tensorboard"

    def __init__(self, path: Path) -> None:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

        self.path = path
        self._loader = EventFileLoader(str(path))
        self._scalars: set[str] = set()  # some writers mark a tag as scalar on its first event only
        self.series: dict[str, Series] = {}
        self.total: int | None = None
        self.progress: float | None = None
        self.message = ""
        self.started: float | None = None
        self.last_time: float | None = None

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


class RunTracker:
    """All metrics of one run folder, from every source in it, kept up to date by ``refresh``."""

    def __init__(self, folder: Path, patterns: Sequence[re.Pattern[str]] = ()) -> None:
        self.folder = folder
        self.lock = threading.Lock()  # one tracker may serve several sessions
        self._jsonl = MetricsReader(folder / "metrics.jsonl")
        self._log = LogMetricsReader(folder / "output.log", patterns or _default_patterns())
        self._files: dict[Path, CsvMetricsReader | TensorBoardReader] = {}
        self._scanned = -math.inf
        self.series: dict[str, Series] = {}
        self.sources: dict[str, str] = {}  # metric -> the kind of file it came from
        self.refreshed_at = 0.0

    def refresh(self) -> bool:
        """Read what every source appended; True if any series changed."""
        now = time.monotonic()
        if now - self._scanned >= RESCAN_S:
            self._scanned = now
            self._scan()
        try:
            changed = self._jsonl.refresh()
        except OSError:  # removed or unreadable between two looks: next refresh tries again
            changed = False
        for path, reader in list(self._files.items()):
            try:
                changed = reader.refresh() or changed
            except Exception:  # a damaged file of the job's own: the others still show
                self._files.pop(path, None)
        structured: list[Reader] = [self._jsonl, *self._files.values()]
        if not any(r.series for r in structured):
            with contextlib.suppress(OSError):
                changed = self._log.refresh() or changed
            structured.append(self._log)
        if changed or not self.series:
            self._merge(structured)
        self.refreshed_at = time.time()
        return changed

    def _scan(self) -> None:
        for path in _find(self.folder):
            if path in self._files:
                continue
            if path.name == "metrics.csv":
                self._files[path] = CsvMetricsReader(path)
            else:
                try:
                    self._files[path] = TensorBoardReader(path)
                except ImportError:  # tensorboard is not installed: event files are skipped
                    return

    def _merge(self, readers: list[Reader]) -> None:
        """One name per series. A name found in several files gets the file's folder after a
        slash (Keras writes ``epoch_loss`` under ``train/`` and ``validation/``: the names
        ``epoch_loss/train`` and ``epoch_loss/validation`` then pair up in one chart)."""
        series: dict[str, Series] = {}
        sources: dict[str, str] = {}
        counts: dict[str, int] = {}
        for reader in readers:
            for name in reader.series:
                counts[name] = counts.get(name, 0) + 1
        for reader in readers:
            for name, values in reader.series.items():
                key = name
                if counts[name] > 1:
                    parent = reader.path.parent
                    inside = parent != self.folder
                    key = f"{name}/{parent.name}" if inside else f"{name} ({reader.kind})"
                base, number = key, 2
                while key in series:
                    key, number = f"{base} ({number})", number + 1
                series[key], sources[key] = values, reader.kind
        self.series, self.sources = series, sources

    @property
    def _readers(self) -> list[Reader]:
        return [self._jsonl, *self._files.values(), self._log]

    @property
    def total(self) -> int | None:
        return next((r.total for r in self._readers if r.total), None)

    @property
    def message(self) -> str:
        return next((r.message for r in self._readers if r.message), "")

    @property
    def started(self) -> float | None:
        times = [r.started for r in self._readers if r.started is not None]
        return min(times) if times else None

    @property
    def last_step(self) -> float | None:
        steps = [float(s.steps[-1]) for s in self.series.values() if len(s)]
        return max(steps) if steps else None

    def fraction(self) -> float | None:
        """How far the run is, 0 to 1: its own progress report, else last step / total."""
        reported = next((r.progress for r in self._readers if r.progress is not None), None)
        if reported is not None:
            return reported
        total, last = self.total, self.last_step
        if total and last is not None:
            return max(0.0, min(1.0, last / total))
        return None

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.series.values())

    def csv_lines(self, chunk: int = 100_000) -> Iterator[str]:
        """Every point as CSV (metric, step, epoch, time, value), in chunks of text."""
        yield "metric,step,epoch,time,value\n"
        with self.lock:
            frozen = [(name, series.snapshot()) for name, series in self.series.items()]
        for name, (steps, times, epochs, values) in frozen:
            label = _csv_cell(name)
            columns = (steps, epochs, times, values)
            for start in range(0, len(values), chunk):
                parts = [c[start : start + chunk] for c in columns]
                yield "".join(
                    f"{label},{_cell(s)},{_cell(e)},{_cell(t)},{v!r}\n"
                    for s, e, t, v in zip(*(p.tolist() for p in parts), strict=True)
                )


def _cell(value: float) -> str:
    if math.isnan(value):
        return ""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _find(folder: Path) -> list[Path]:
    """CSV logs and TensorBoard event files under a run folder (bounded search)."""
    found: list[Path] = []
    pending = [(folder, 0)]
    while pending:
        current, depth = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        if len(entries) > SCAN_ENTRIES:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if depth < SCAN_DEPTH and not entry.name.startswith("."):
                    pending.append((Path(entry.path), depth + 1))
            elif entry.is_file(follow_symlinks=False) and (
                entry.name == "metrics.csv" or entry.name.startswith("events.out.tfevents.")
            ):
                found.append(Path(entry.path))
    return sorted(found)


_COMPILED_DEFAULTS: list[re.Pattern[str]] = []


def _default_patterns() -> list[re.Pattern[str]]:
    if not _COMPILED_DEFAULTS:
        _COMPILED_DEFAULTS.extend(compile_patterns(DEFAULT_LOG_PATTERNS))
    return _COMPILED_DEFAULTS


class TrackerCache:
    """Trackers of recently viewed runs, kept between refreshes and shared by sessions, so a
    refresh reads only what was appended. Least recently used ones are dropped."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._trackers: OrderedDict[tuple[Path, tuple[str, ...]], RunTracker] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: Path, patterns: Sequence[str] = DEFAULT_LOG_PATTERNS) -> RunTracker:
        key = (folder, tuple(patterns))
        with self._lock:
            tracker = self._trackers.get(key)
            if tracker is None:
                compiled = (
                    _default_patterns()
                    if tuple(patterns) == DEFAULT_LOG_PATTERNS
                    else compile_patterns(patterns)
                )
                tracker = self._trackers[key] = RunTracker(folder, compiled)
            self._trackers.move_to_end(key)
            while len(self._trackers) > self._size:
                self._trackers.popitem(last=False)
            return tracker

    def refreshed(self, folder: Path, patterns: Sequence[str] = DEFAULT_LOG_PATTERNS) -> RunTracker:
        tracker = self.get(folder, patterns)
        with tracker.lock:
            tracker.refresh()
        return tracker


TRACKERS = TrackerCache(64)


# --- Display ----------------------------------------------------------------------------------

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
