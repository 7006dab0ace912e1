"""Registered model versions, loaded once per server process and called for predictions.

The loaders are the job-side ones (``crispml_algos``): scikit-learn models through skops
(classes of scikit-learn, NumPy and SciPy only, never pickle), PyTorch models as state dicts
(``weights_only``). One copy of each model per process.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crispml.core.data.prepare import apply_fitted
from crispml.core.errors import InvalidInput
from crispml.core.modeling import PREPROCESSING, ModelVersion

JOBSIDE = Path(__file__).resolve().parent.parent / "jobside"


def _jobside(module: str) -> Any:
    if str(JOBSIDE) not in sys.path:
        sys.path.insert(0, str(JOBSIDE))
    return importlib.import_module(module)


@dataclass
class Served:
    """One model version, ready to predict."""

    version: ModelVersion
    model: Any
    kind: str  # "sklearn" or "torch"
    fitted: dict[str, Any] = field(default_factory=dict)  # the data's steps, if it had any
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def weight(self) -> str:
        """The article's "weight": one trained version of a model."""
        return f"{self.version.name}:{self.version.version}"

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.version.info.get("classes") or []]

    @property
    def features(self) -> list[str]:
        return [str(c) for c in self.version.info.get("features") or []]

    @property
    def images(self) -> bool:
        return self.version.task == "segmentation"

    def predict_rows(self, rows: list[dict[str, Any]]) -> list[Any]:
        """One prediction per row (a mapping of feature to value): a class label or a number."""
        import pandas as pd

        if not rows:
            raise InvalidInput("No rows to predict.")
        needed = list(self.fitted) if self.fitted else self.features
        missing = sorted({f for f in needed if any(f not in r for r in rows)})
        if missing:
            raise InvalidInput(
                f"Rows lack the feature(s) {', '.join(missing)} that {self.weight} needs "
                f"({', '.join(needed)})."
            )
        frame = pd.DataFrame(rows)
        if self.fitted:  # raw values, as in the data before preparation
            frame = apply_fitted(frame, self.fitted)
        frame = frame[self.features] if self.features else frame
        try:
            frame = frame.astype("float64")
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"Every feature must be a number: {exc}.") from None
        with self.lock:
            if self.kind == "sklearn":
                predicted = self.model.predict(frame)
                return [v.item() if hasattr(v, "item") else v for v in predicted]
            torch_models = _jobside("crispml_algos.torch_models")
            found = torch_models.predict(self.model, frame.to_numpy().tolist())
            return [r["prediction"] for r in found]

    def predict_images(self, images: list[Any], overlay: bool) -> list[dict[str, Any]]:
        """Per image: classes, scores, boxes [y_min, x_min, y_max, x_max], optional overlay."""
        torch_models = _jobside("crispml_algos.torch_models")
        with self.lock:
            return list(torch_models.predict(self.model, images, overlay=overlay))


def load(version: ModelVersion) -> Served:
    folder = Path(version.path)
    fitted: dict[str, Any] = {}
    if (folder / PREPROCESSING).exists():
        fitted = json.loads((folder / PREPROCESSING).read_text()).get("fitted") or {}
    if (folder / "model.skops").exists():
        sklearn_models = _jobside("crispml_algos.sklearn_models")
        return Served(version, sklearn_models.load(folder), "sklearn", fitted)
    if (folder / "model.pt").exists():
        torch_models = _jobside("crispml_algos.torch_models")
        return Served(version, torch_models.load(folder), "torch", fitted)
    raise InvalidInput(f"{version.name}:{version.version} has no model file crispml can serve.")


def png_base64(pixels: Any) -> str:
    """An RGB array as a base64 PNG."""
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype="uint8")).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
