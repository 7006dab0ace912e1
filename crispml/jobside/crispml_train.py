"""crispml's training runner, run inside the algorithm's environment: ``python -m crispml_train``.

It reads ``run.json`` from the job's folder (written by crispml before the job starts), imports
the algorithm's job-side ``train`` function (``"module:function"``), hands it a ``RunContext``,
and writes ``result.json`` (final metrics, artifacts, duration, or the error). Standard library at
import time; the data helpers import numpy and pandas when called, which the algorithm's
environment has because the algorithm requires them.

A plugin's train function::

    def train(ctx):
        X, y = ctx.table("train")
        model = make_model(**ctx.params).fit(X, y)
        ctx.evaluate("validation", model.predict(ctx.table("validation")[0]))
        save(model, ctx.artifact("model.skops"))
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import crispml_job
import crispml_metrics


class RunContext:
    """What a train function gets: parameters, the prepared data, and where to put results."""

    def __init__(self, spec: Dict[str, Any], folder: Path) -> None:
        self.spec = spec
        self.folder = folder
        self.params: Dict[str, Any] = dict(spec.get("params", {}))
        data = spec.get("data", {})
        self.task: str = data.get("task", "")
        self.target: str = data.get("target", "")
        self.classes: List[str] = list(data.get("classes", []))
        self.image_size: int = int(data.get("image_size") or 0)
        self.augment: List[str] = list(data.get("augment", []))
        self.seed: int = int(spec.get("seed", 0))
        self.final: Dict[str, Any] = {}
        self.details: Dict[str, Any] = {}
        self._data = data
        self._started = time.time()
        self._total: Optional[int] = None

    # --- data ----------------------------------------------------------------------------------

    def table(self, part: str) -> Tuple[Any, Any]:
        """Features and target of a prepared part (``train``, ``validation``, ``test``)."""
        import pandas as pd

        frame = pd.read_parquet(self._data["parts"][part])
        features = frame.drop(columns=[c for c in (self.target, "_row") if c in frame.columns])
        return features, frame[self.target]

    def has_part(self, part: str) -> bool:
        if self._data.get("kind") == "images":
            return bool(self._data.get("images", {}).get(part))
        path = self._data.get("parts", {}).get(part)
        if not path:
            return False
        import pandas as pd

        return len(pd.read_parquet(path, columns=[self.target])) > 0

    def images(self, part: str) -> List[Tuple[str, str]]:
        """(image path, mask path) of each image of a prepared part."""
        root = Path(self._data["root"])
        return [
            (str(root / "images" / name), str(root / "masks" / name))
            for name in self._data["images"][part]
        ]

    # --- results -------------------------------------------------------------------------------

    def artifact(self, name: str) -> Path:
        return crispml_job.artifact_path(name)

    def log(self, step: Optional[int] = None, **metrics: Any) -> None:
        crispml_job.log_metrics(metrics, step=step)
        if self._total and step is not None:
            crispml_job.progress(min(1.0, step / self._total), f"step {step} of {self._total}")

    def total_steps(self, total: int) -> None:
        self._total = int(total)
        crispml_job.total_steps(total)

    def evaluate(
        self, part: str, predicted: Any, scores: Any = None, truth: Any = None
    ) -> Dict[str, Any]:
        """Compare predictions on a part with its truth; the metrics become the run's final
        ones, prefixed by the part (``validation_accuracy``). Tables only; ``scores``: class
        probabilities (columns in ``self.classes`` order) for ROC AUC."""
        if truth is None:
            truth = self.table(part)[1]
        if self.task == "classification":
            result = crispml_metrics.classification(truth, predicted, scores, self.classes)
        else:
            result = crispml_metrics.regression(truth, predicted)
        self.record(part, result)
        return result

    def record(self, part: str, result: Dict[str, Any]) -> None:
        """Keep evaluation results: numbers become final metrics, the rest details."""
        for key, value in result.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.final[f"{part}_{key}"] = value
            else:
                self.details[f"{part}_{key}"] = value
        numbers = {f"{part}_{k}": v for k, v in result.items() if isinstance(v, (int, float))}
        if numbers:
            crispml_job.log_metrics(numbers)


def main() -> int:
    folder = crispml_job.run_dir()
    spec = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    started = time.time()
    result: Dict[str, Any] = {
        "algorithm": spec.get("algorithm"),
        "python": sys.version.split()[0],
        "executable": sys.executable,
    }
    module_name, _, function = spec["entry"].partition(":")
    print(f"crispml: training {spec.get('algorithm')} with {spec.get('params')}", flush=True)
    try:
        train = getattr(importlib.import_module(module_name), function or "train")
        ctx = RunContext(spec, folder)
        train(ctx)
        result.update(metrics=ctx.final, details=ctx.details, status="succeeded")
        code = 0
    except Exception as exc:  # the run's error, for the page and the log
        traceback.print_exc()
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        code = 1
    result["duration_s"] = round(time.time() - started, 3)
    artifacts = folder / "artifacts"
    result["artifacts"] = sorted(p.name for p in artifacts.iterdir()) if artifacts.exists() else []
    tmp = folder / "result.json.tmp"
    tmp.write_text(json.dumps(result, default=str), encoding="utf-8")
    os.replace(tmp, folder / "result.json")
    if code == 0:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in ctx.final.items() if isinstance(v, float))
        print(f"crispml: done in {result['duration_s']:.1f} s: {shown}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
