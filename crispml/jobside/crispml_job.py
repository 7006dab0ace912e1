"""crispml's job-side helpers: ``import crispml_job`` inside any job.

This module is put on ``PYTHONPATH`` of every job crispml starts, in whatever environment the job
runs (a venv, a conda env, another interpreter), so it needs nothing but the standard library and
works on Python 3.8 and newer. It never imports crispml itself.

    import crispml_job
    crispml_job.log_metrics({"loss": 0.41, "accuracy": 0.88}, step=3)
    crispml_job.total_steps(10)  # for the progress bar and its time-left estimate
    crispml_job.progress(0.3, "epoch 3 of 10")
    model_file = crispml_job.artifact_path("model.skops")
    model = crispml_job.load_model("iris-best")  # in a notebook: a registered model

Metrics go to ``metrics.jsonl`` in the job's folder, one JSON object per line, written whole and
flushed, so the pages can follow them while the job runs.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

__all__ = [
    "artifact_path",
    "load_model",
    "log_metric",
    "log_metrics",
    "params",
    "progress",
    "run_dir",
    "total_steps",
]


def run_dir() -> Path:
    """The job's own folder (``runs/<job id>``); the current folder outside crispml."""
    return Path(os.environ.get("CRISPML_RUN_DIR") or ".")


def params() -> Dict[str, Any]:
    """The job's parameters (``params.json`` in its folder), or an empty dict."""
    path = run_dir() / "params.json"
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as f:
        value = json.load(f)
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> Optional[float]:
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else number


def _append(record: Mapping[str, Any]) -> None:
    line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
    with (run_dir() / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write(line)  # one write of a whole line: a reader never sees half a record
        f.flush()


def log_metrics(
    values: Mapping[str, Any], step: Optional[int] = None, epoch: Optional[float] = None
) -> None:
    """Record named numbers (loss, accuracy, ...) at ``step`` (and ``epoch``, for charts by
    epoch); NaN and infinity become null. Name them ``train_loss``, ``val_loss`` (or
    ``loss/train``, ``loss/val``) and the live charts draw both parts in one chart."""
    record: Dict[str, Any] = {"time": time.time()}
    if step is not None:
        record["step"] = int(step)
    if epoch is not None:
        record["epoch"] = float(epoch)
    record["metrics"] = {str(k): _number(v) for k, v in values.items()}
    _append(record)


def log_metric(
    name: str, value: Any, step: Optional[int] = None, epoch: Optional[float] = None
) -> None:
    log_metrics({name: value}, step, epoch)


def progress(fraction: float, message: str = "") -> None:
    """How far the job is (0 to 1), with a short message for the process table."""
    share = max(0.0, min(1.0, float(fraction)))
    _append({"time": time.time(), "progress": share, "message": message})


def total_steps(total: int) -> None:
    """How many steps the job will log in all: the page shows progress and the time left."""
    _append({"time": time.time(), "total": int(total)})


def artifact_path(name: str) -> Path:
    """Where to write an artifact called ``name``: ``artifacts/<name>`` in the job's folder."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"An artifact name is a plain file name, not {name!r}.")
    folder = run_dir() / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def load_model(name: str, version: Optional[int] = None) -> Any:
    """A registered model, loaded as the model API loads it (scikit-learn models through skops,
    PyTorch ones from their state dict): version ``version``, else the newest. Works in notebooks
    and jobs crispml starts (they know where the models are: ``CRISPML_MODELS``)."""
    root = os.environ.get("CRISPML_MODELS")
    if not root:
        raise RuntimeError("CRISPML_MODELS is not set: load models in crispml's notebooks or jobs.")
    folder = Path(root) / name
    versions = sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit())
    if not versions:
        raise LookupError(f"No registered model {name!r}.")
    chosen = folder / str(versions[-1] if version is None else version)
    if not chosen.is_dir():
        raise LookupError(f"No version {version} of {name!r}; there are {versions}.")
    if (chosen / "model.skops").exists():
        from crispml_algos import sklearn_models

        return sklearn_models.load(chosen)
    from crispml_algos import torch_models

    return torch_models.load(chosen)
