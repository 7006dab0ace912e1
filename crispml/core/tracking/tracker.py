"""All metrics of one run folder, from every source in it (``RunTracker``), and the trackers of
recently viewed runs kept between refreshes (``TrackerCache``, ``TRACKERS``)."""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

from crispml.core.tracking.series import Series
from crispml.core.tracking.sources import (
    CsvMetricsReader,
    LogMetricsReader,
    MetricsReader,
    Reader,
    TensorBoardReader,
)
from crispml.log_patterns import DEFAULT_LOG_PATTERNS, compile_patterns

RESCAN_S = 5.0  # how often a run folder is searched for new CSV and TensorBoard files
SCAN_DEPTH = 4
SCAN_ENTRIES = 5_000  # folders with more entries than this are not searched further


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
