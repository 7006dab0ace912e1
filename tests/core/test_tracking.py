"""Incremental readers of job output and metrics, and display downsampling, on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crispml.core.tracking import (
    FileTail,
    LineReader,
    MetricsReader,
    RunTracker,
    Series,
    band,
    curve,
    downsample,
    ema,
    group_metrics,
    split_name,
    y_range,
)
from crispml.log_patterns import compile_patterns


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


def test_the_tail_gives_raw_bytes_partial_lines_included(tmp_path: Path) -> None:
    """FileTail (the CLI's ``jobs logs``) prints what was appended as it is, and starts over
    like LineReader when the file is replaced."""
    path = tmp_path / "output.log"
    tail = FileTail(path)
    assert tail.appended() == b""  # no file yet
    path.write_bytes(b"one\n50%\r")
    assert tail.appended() == b"one\n50%\r"
    with path.open("ab") as f:
        f.write(b"100%\n")
    assert tail.appended(max_bytes=2) == b"10" and tail.behind
    assert tail.appended() == b"0%\n" and not tail.behind
    path.unlink()
    path.write_bytes(b"again\n")
    assert tail.appended() == b"again\n" and tail.resets == 1
    # Deleted mid-way through a backlog, or a link to nowhere in its place: nothing to read,
    # and not "behind" (the CLI reads while behind; it spun here once).
    with path.open("ab") as f:
        f.write(b"x" * 100)
    assert tail.appended(max_bytes=10) == b"x" * 10 and tail.behind
    path.unlink()
    assert tail.appended() == b"" and not tail.behind
    path.symlink_to(tmp_path / "nowhere")
    assert tail.appended() == b"" and not tail.behind
    path.unlink()
    path.symlink_to(path)  # a loop
    assert tail.appended() == b"" and not tail.behind


def test_the_package_names_resolve_and_reading_needs_no_numpy() -> None:
    """Public names load their module on first use: the CLI's log tailing stays cheap."""
    import crispml.core.tracking as tracking

    assert sorted(tracking.__all__) == sorted(tracking._HOMES)
    for name in tracking.__all__:
        assert getattr(tracking, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = tracking.no_such_name
    code = (
        "import sys\n"
        "from crispml.core.tracking.reading import FileTail, LineReader\n"
        "print(sorted({'numpy', 'scipy', 'pyarrow'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_link_in_place_of_a_file_is_not_read_and_does_not_hang(tmp_path: Path) -> None:
    """A job may put a link where its metrics were: nothing is read through it, and a refresh
    returns (it used to loop forever, the file's size never reached)."""
    (tmp_path / "secret").write_text('{"time": 1, "step": 1, "metrics": {"loss": 0.5}}\n')
    (tmp_path / "metrics.jsonl").symlink_to(tmp_path / "secret")
    reader = LineReader(tmp_path / "metrics.jsonl")
    assert reader.read() == [] and not reader.behind
    tracker = RunTracker(tmp_path)
    assert not tracker.refresh() and tracker.series == {}


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
    assert reader.series["loss"].values.tolist() == [0.9, 0.5]
    assert reader.series["accuracy"].steps.tolist() == [1.0]  # a null value is no point
    assert (reader.total, reader.progress, reader.message) == (3, 0.33, "step 1 of 3")
    assert (reader.started, reader.last_time) == (100.0, 103.0)
    assert not reader.refresh()
    path.write_text(json.dumps({"time": 200.0, "step": 1, "metrics": {"loss": 2.0}}) + "\n")
    assert reader.refresh()  # truncated: the series start over
    assert reader.series["loss"].values.tolist() == [2.0] and reader.total is None


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
    appended = line.replace('"step": 0', '"step": 1000000') + "\n"
    with path.open("a") as f:
        f.write(appended)
    before = reader._lines.offset
    assert reader.refresh()
    # One line read, not the file: the reader went on from where it was. (A timing here failed
    # under the suite's load; how fast it is, is bench/live_plots.py's question.)
    assert reader._lines.offset - before == len(appended)
    assert reader.series["loss"].steps[-1] == 1_000_000
    assert len(reader.series["loss"].values) == 1_000_001
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


def test_a_file_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n1,0.5\n")
    reader = LineReader(path)
    assert reader.read() == ["step,loss", "1,0.5"]
    path.write_text("step,loss,acc\n1,0.5,0.7\n")  # longer, same inode, other content
    assert reader.read() == ["step,loss,acc", "1,0.5,0.7"] and reader.resets == 1


def _records(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    records: list[dict] = [{"time": 10.0, "total": count}]
    for i in range(count):
        metrics = {"loss": float(rng.normal()), "acc": None if i % 7 == 0 else i / count}
        record = {"time": 10.0 + i, "metrics": metrics}
        if i % 5:  # some records have no step: they count on from the last implicit one
            record["step"] = i
        if i % 11 == 0:
            record["epoch"] = i // 11
        records.append(record)
        if i % 50 == 0:
            records.append({"time": 10.0 + i, "progress": i / count, "message": f"at {i}"})
    return records


def test_bulk_and_line_by_line_parsing_agree(tmp_path: Path) -> None:
    """Large blocks are parsed column-wise (pyarrow), small ones line by line: same result."""
    records = _records(20_000)
    text = "".join(json.dumps(r) + "\n" for r in records)
    bulk_path, lines_path = tmp_path / "bulk.jsonl", tmp_path / "lines.jsonl"
    bulk_path.write_text(text)
    bulk = MetricsReader(bulk_path)
    bulk.refresh()
    lines = MetricsReader(lines_path)
    with lines_path.open("w") as f:
        for index in range(0, len(records), 1000):  # appended in small pieces
            f.write("".join(json.dumps(r) + "\n" for r in records[index : index + 1000]))
            f.flush()
            lines.refresh()
    assert len(text) > 256 * 1024  # the bulk reader really had a large block
    assert set(bulk.series) == set(lines.series) == {"loss", "acc"}
    for name in bulk.series:
        for column in ("steps", "times", "epochs", "values"):
            np.testing.assert_array_equal(
                getattr(bulk.series[name], column), getattr(lines.series[name], column)
            )
    assert (bulk.total, bulk.progress, bulk.message) == (lines.total, lines.progress, lines.message)
    assert len(bulk.series["acc"]) == 20_000 - len(range(0, 20_000, 7))
    # a non-JSON line in a large block: the block is read line by line, nothing lost
    broken = tmp_path / "broken.jsonl"
    broken.write_text(text + "not json\n" + text)
    mixed = MetricsReader(broken)
    mixed.refresh()
    assert len(mixed.series["loss"]) == 40_000


KERAS_LOG = """\
Epoch 1/3
 1/32 [..............................] - ETA: 4s - loss: 0.9000 - accuracy: 0.1000\r\
32/32 [==============================] - 1s 10ms/step - loss: 0.6931 - accuracy: 0.5000 \
- val_loss: 0.6900 - val_accuracy: 0.5100
Epoch 2/3
32/32 [==============================] - 0s 4ms/step - loss: 0.5000 - accuracy: 0.7000 \
- val_loss: 0.5500 - val_accuracy: 0.6800
Epoch 3/3
16/32 [==============>...............] - ETA: 0s - loss: 0.4500 - accuracy: 0.7500
"""


def test_metrics_are_read_from_the_log_by_patterns(tmp_path: Path) -> None:
    """Keras-style lines (the format Keras prints; Keras itself is not installed here), and
    key=value / key: value lines; timestamps and ETAs are not metrics."""
    (tmp_path / "output.log").write_text(KERAS_LOG)
    tracker = RunTracker(tmp_path)
    tracker.refresh()
    assert set(tracker.series) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    loss = tracker.series["val_loss"]
    assert loss.values.tolist() == [0.69, 0.55]  # intermediate batch lines are skipped
    assert loss.steps.tolist() == [1.0, 2.0] == loss.epochs.tolist()
    assert tracker.total == 3 and tracker.fraction() == pytest.approx(2 / 3)
    assert group_metrics(list(tracker.series)) == {
        "accuracy": {"train": "accuracy", "validation": "val_accuracy"},
        "loss": {"train": "loss", "validation": "val_loss"},
    }
    other = tmp_path / "plain"
    other.mkdir()
    (other / "output.log").write_text(
        "2026-11-24 10:00:01 INFO starting, eta: 00:01, lr=1e-3\n"
        "step=10 loss=0.5 acc: 80%\n"
        "iter: 20, loss: .25, note: fine\n"
        "loss=nan loss2=0.1.2\n"
    )
    plain = RunTracker(other)
    plain.refresh()
    assert set(plain.series) == {"lr", "loss", "acc"}
    assert plain.series["loss"].steps.tolist() == [10.0, 20.0]
    assert plain.series["loss"].values.tolist() == [0.5, 0.25]
    assert plain.series["lr"].values.tolist() == [0.001]
    # patterns of one's own (a setting): one group per metric
    custom = RunTracker(other, compile_patterns([r"^iter: (?P<step>\d+), loss: (?P<my_loss>\S+),"]))
    custom.refresh()
    assert list(custom.series) == ["my_loss"]
    assert custom.series["my_loss"].steps.tolist() == [20.0]


def test_the_log_is_read_only_when_nothing_better_is_there(tmp_path: Path) -> None:
    (tmp_path / "output.log").write_text("loss=0.5\n")
    tracker = RunTracker(tmp_path)
    tracker.refresh()
    assert tracker.sources == {"loss": "log"}
    (tmp_path / "metrics.jsonl").write_text('{"time": 1, "step": 1, "metrics": {"loss": 0.4}}\n')
    tracker.refresh()
    assert tracker.sources == {"loss": "metrics.jsonl"}
    assert tracker.series["loss"].values.tolist() == [0.4]


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        (["(x"], "not a regular expression"),
        ([r"\d+"], "no named group"),
        ([r"(?P<name>\w+)"], "both"),
    ],
)
def test_bad_log_patterns_are_named(patterns: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_patterns(patterns)


LIGHTNING_JOB = """
import sys, torch, lightning as L
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
torch.set_num_threads(1)

class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=False)
        return loss
    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

x = torch.randn(64, 4)
data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
trainer = L.Trainer(
    max_epochs=3, logger=CSVLogger(sys.argv[1]), log_every_n_steps=2, enable_progress_bar=False,
    enable_checkpointing=False, enable_model_summary=False, accelerator="cpu",
)
trainer.fit(Model(), data, data)
"""


@pytest.mark.needs("torch", "lightning")
def test_lightning_csv_logs_are_read(tmp_path: Path) -> None:
    """A real Lightning Trainer with its CSVLogger, as a job would run it."""
    script = tmp_path / "train.py"
    script.write_text(LIGHTNING_JOB)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    tracker = RunTracker(tmp_path)
    tracker.refresh()
    assert tracker.sources["train_loss"] == tracker.sources["val_loss"] == "csv"
    train, val = tracker.series["train_loss"], tracker.series["val_loss"]
    assert train.steps.tolist() == [float(step) for step in range(1, 24, 2)]  # every 2nd
    assert val.epochs.tolist() == [0.0, 1.0, 2.0]
    assert np.all(np.isfinite(val.values)) and np.isnan(val.times).all()
    assert group_metrics(list(tracker.series))["loss"] == {
        "train": "train_loss",
        "validation": "val_loss",
    }


@pytest.mark.needs("torch", "tensorboard")
def test_tensorboard_event_files_are_followed(tmp_path: Path) -> None:
    """Event files written by PyTorch's SummaryWriter, in a subfolder, read as they grow."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb" / "run1"))
    for step in range(5):
        writer.add_scalar("loss/train", 1 / (step + 1), step)
        writer.add_scalar("loss/val", 2 / (step + 1), step)
    writer.add_text("note", "not a scalar")
    writer.flush()
    tracker = RunTracker(tmp_path)
    tracker.refresh()
    assert tracker.sources == {"loss/train": "tensorboard", "loss/val": "tensorboard"}
    assert tracker.series["loss/val"].values.tolist() == pytest.approx([2, 1, 2 / 3, 0.5, 0.4])
    for step in range(5, 8):
        writer.add_scalar("loss/train", 1 / (step + 1), step)
    writer.flush()
    assert tracker.refresh()
    assert tracker.series["loss/train"].steps.tolist() == list(range(8))
    assert len(tracker.series["loss/val"]) == 5
    writer.close()
    assert group_metrics(list(tracker.series)) == {
        "loss": {"train": "loss/train", "validation": "loss/val"}
    }


def test_the_displayed_curve_keeps_extremes_and_smooths_like_tensorboard(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    series = Series()
    values = np.cumsum(rng.normal(size=300_000))
    values[123_457] = values.max() + 40  # lone spikes survive downsampling
    values[7_777] = values.min() - 40
    for start in range(0, len(values), 70_001):  # appended in uneven pieces
        chunk = values[start : start + 70_001]
        steps = np.arange(start, start + len(chunk), dtype=float)
        series.extend_columns(np.vstack([steps, steps + 1e9, np.full(len(chunk), np.nan), chunk]))
    shown = curve(series, "step", smoothing=0.9, points=800)
    assert len(shown.x) <= 810 and shown.points == 300_000
    assert {0.0, 299_999.0, 123_457.0, 7_777.0} <= set(shown.x.tolist())
    assert shown.y.max() == values.max() and shown.y.min() == values.min()
    assert len(shown.band_x) > 0 and shown.band_high.max() == values.max()
    # the smoothed values are TensorBoard's debiased EMA of the whole series, at those points
    np.testing.assert_allclose(shown.smooth, ema(values, 0.9)[shown.x.astype(int)])
    assert ema(np.asarray([1.0, 2.0, 3.0]), 0.5).tolist() == pytest.approx(
        [1.0, (0.25 + 1.0) / 0.75, (0.125 + 0.5 + 1.5) / 0.875]
    )
    # by time, from the run's start; log scale drops what is not positive
    timed = curve(series, "time", points=800, origin=1e9 + 100)
    assert timed.x[0] == -100.0
    logged = curve(series, "step", points=800, log=True)
    assert np.all(logged.y > 0)
    # outliers: the y range of noisy values leaves rare spikes out
    noisy = Series()
    spiky = rng.normal(size=50_000)
    spiky[::1000] = 1_000.0
    noisy.extend_columns(np.vstack([np.arange(50_000.0), np.zeros(50_000), spiky, spiky]))
    low, high = y_range([curve(noisy, points=800).sample], log=False) or (0.0, 0.0)
    assert -5 < low < -2 and 2 < high < 5


def test_the_display_index_stays_small_whatever_the_length() -> None:
    series = Series()
    for _ in range(30):
        block = np.random.default_rng(2).normal(size=(4, 100_000))
        series.extend_columns(block)
    assert len(series) == 3_000_000
    assert len(series.candidates()) <= 2 * Series.BUCKETS + 4
    assert series.values.argmax() in series.candidates()
    assert series.values.argmin() in series.candidates()


def test_metric_names_pair_train_and_validation() -> None:
    assert split_name("val_loss") == ("loss", "validation")
    assert split_name("loss/train") == ("loss", "train")
    assert split_name("test_accuracy") == ("accuracy", "test")
    assert split_name("lr") == ("lr", "")
    assert group_metrics(["lr", "train_loss", "validation_loss"]) == {
        "loss": {"train": "train_loss", "validation": "validation_loss"},
        "lr": {"": "lr"},
    }


@pytest.mark.needs("torch", "tensorboard")
def test_the_same_name_in_several_files_is_told_apart_by_folder(tmp_path: Path) -> None:
    """Keras' TensorBoard callback writes epoch_loss under train/ and validation/."""
    from torch.utils.tensorboard import SummaryWriter

    for part, scale in (("train", 1.0), ("validation", 2.0)):
        writer = SummaryWriter(str(tmp_path / "logs" / part))
        for step in range(3):
            writer.add_scalar("epoch_loss", scale / (step + 1), step)
        writer.close()
    tracker = RunTracker(tmp_path)
    tracker.refresh()
    assert set(tracker.series) == {"epoch_loss/train", "epoch_loss/validation"}
    values = tracker.series["epoch_loss/validation"].values.tolist()
    assert values == pytest.approx([2.0, 1.0, 2 / 3])
    assert group_metrics(list(tracker.series)) == {
        "epoch_loss": {"train": "epoch_loss/train", "validation": "epoch_loss/validation"}
    }
