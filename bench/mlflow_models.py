"""Saves bench/model_api.py's two models as MLflow models, run with the MLflow environment's
Python: the random forest with ``mlflow.sklearn``, the U-Net as a pyfunc that decodes base64
images (a column ``image``) and calls the same predict function crispml serves.

    build/bench-mlflow/bin/python bench/mlflow_models.py RF_FOLDER UNET_FOLDER OUT_FOLDER
"""

from __future__ import annotations

import base64
import io
import shutil
import sys
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import mlflow.sklearn

JOBSIDE = Path(__file__).resolve().parents[1] / "crispml" / "jobside"
sys.path.insert(0, str(JOBSIDE))
from crispml_algos import sklearn_models  # noqa: E402


class Segmenter(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from crispml_algos import torch_models

        self.model = torch_models.load(context.artifacts["unet"])

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        from crispml_algos import torch_models
        from PIL import Image

        images = [Image.open(io.BytesIO(base64.b64decode(i))) for i in model_input["image"]]
        return [
            {"class_name": f["classes"], "scores": f["scores"], "rois": f["boxes"]}
            for f in torch_models.predict(self.model, images)
        ]


def main(rf_folder: Path, unet_folder: Path, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    mlflow.sklearn.save_model(
        sklearn_models.load(rf_folder),
        str(out / "rf"),
        skops_trusted_types=["sklearn.tree._tree.Tree"],  # our own file
    )
    mlflow.pyfunc.save_model(
        str(out / "unet"),
        python_model=Segmenter(),
        artifacts={"unet": str(unet_folder)},  # crispml_algos comes from PYTHONPATH
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
