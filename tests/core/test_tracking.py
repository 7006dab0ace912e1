"""Incremental readers of job output and metrics, and display downsampling, on real files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from crispml.core.tracking import LineReader, MetricsReader, band, downsample


def test_appends_and_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    reader = LineReader(path)
    assert reader.read() == []  # no file yet
    path.write_text("one\ntw")
    assert reader.read() == ["one"]  # the partial line waits
    with path.open("a") as f:
        f.write("o\nthree\n")
    assert reader.read() == ["two", "three"]
    assert reader.read() == []
    assert reader.offset == path.stat().st_size


def test_truncation_and_rotation_start_over(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text("a\nb\nc\n")
    reader = LineReader(path)
    assert reader.read() == ["a", "b", "c"]
    path.write_text("d\n")  # truncated (shorter than what was read)
    assert reader.read() == ["d"] and reader.resets == 1
    rotated = tmp_path / "metrics.jsonl.1"
    path.rename(rotated)
    path.write_text("e\nf\n")  # a new file under the old name: another inode
    assert reader.read() == ["e", "f"] and reader.resets == 2
    path.unlink()
    assert reader.read() == []


def test_metrics_reader_follows_a_run(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    records = [
        {"time": 100.0, "total": 3},
        {"time": 101.0, "step": 1, "metrics": {"loss": 0.9, "accuracy": 0.5}},
        {"time": 102.0, "progress": 0.33, "message": "step 1 of 3"},
        {"time": 103.0, "step": 2, "metrics": {"loss": 0.5, "accuracy": None}},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    assert reader.refresh()
    assert reader.series["loss"].values == [0.9, 0.5]
    assert reader.series["accuracy"].steps == [1.0]  # a null value is no point
    assert (reader.total, reader.progress, reader.message) == (3, 0.33, "step 1 of 3")
    assert (reader.started, reader.last_time) == (100.0, 103.0)
    assert not reader.refresh()
    path.write_text(json.dumps({"time": 200.0, "step": 1, "metrics": {"loss": 2.0}}) + "\n")
    assert reader.refresh()  # truncated: the series start over
    assert reader.series["loss"].values == [2.0] and reader.total is None


def test_a_million_lines_are_read_once_then_only_what_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    line = json.dumps({"time": 1.0, "step": 0, "metrics": {"loss": 0.5}})
    with path.open("w") as f:
        for step in range(1_000_000):
            f.write(line.replace('"step": 0', f'"step": {step}') + "\n")
    reader = MetricsReader(path)
    while reader._lines.offset < path.stat().st_size:  # a backlog is read in 64 MB steps
        reader.refresh()
    assert len(reader.series["loss"].values) == 1_000_000
    with path.open("a") as f:
        f.write(line.replace('"step": 0', '"step": 1000000') + "\n")
    started = time.perf_counter()
    assert reader.refresh()
    assert time.perf_counter() - started < 0.05  # one line read, not the file
    assert reader.series["loss"].steps[-1] == 1_000_000
    assert os.path.getsize(path) == reader._lines.offset


def test_downsampling_keeps_first_last_and_extremes() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(200_000, dtype=float)
    y = np.cumsum(rng.normal(size=x.size))
    y[123_456] = y.max() + 50  # a lone spike must survive
    y[7] = y.min() - 50
    kept = downsample(x, y, 1000)
    assert len(kept) <= 1010
    assert {0, len(x) - 1, int(np.argmax(y)), int(np.argmin(y))} <= set(kept.tolist())
    assert np.all(np.diff(kept) > 0)
    small = downsample(x[:50], y[:50], 1000)
    assert small.tolist() == list(range(50))
    centres, low, high = band(x, y, 100)
    assert len(centres) == 100 and np.all(low <= high)
    assert high.max() == y.max() and low.min() == y.min()
