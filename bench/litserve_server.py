"""A server a user would pick today, for bench/model_api.py: LitServe (Lightning AI's serving
engine on FastAPI and uvicorn) with its dynamic batching, serving the same model crispml serves,
loaded the same way. Run with the benchmark environment's Python.

    build/bench-servers/bin/python bench/litserve_server.py PORT rf|unet MODEL_FOLDER

The forest answers ``POST /invocations`` (MLflow's ``dataframe_records``), the U-Net
``POST /predict`` (the article's ``images``, base64 PNGs), as crispml's API does.
"""

import base64
import io
import sys
from pathlib import Path
from typing import Any

import litserve as ls

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "crispml" / "jobside"))

MAX_BATCH = 32
BATCH_TIMEOUT_S = 0.002  # crispml's own longest wait for a batch to fill


class Forest(ls.LitAPI):
    def setup(self, device: str) -> None:
        from crispml_algos import sklearn_models

        self.model = sklearn_models.load(Path(sys.argv[3]))

    def decode_request(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        return list(request["dataframe_records"])

    def batch(self, inputs: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        return inputs

    def predict(self, batch: list[list[dict[str, Any]]]) -> list[list[str]]:
        import pandas as pd

        rows = [row for rows in batch for row in rows]
        predicted = [str(p) for p in self.model.predict(pd.DataFrame(rows))]
        out, at = [], 0
        for rows in batch:
            out.append(predicted[at : at + len(rows)])
            at += len(rows)
        return out

    def unbatch(self, output: list[list[str]]) -> list[list[str]]:
        return output

    def encode_response(self, output: list[str]) -> dict[str, Any]:
        return {"predictions": output}


class Segmenter(ls.LitAPI):
    def setup(self, device: str) -> None:
        from crispml_algos import torch_models

        self.torch_models = torch_models
        self.model = torch_models.load(Path(sys.argv[3]))

    def decode_request(self, request: dict[str, Any]) -> list[Any]:
        from PIL import Image

        return [Image.open(io.BytesIO(base64.b64decode(i))) for i in request["images"]]

    def batch(self, inputs: list[list[Any]]) -> list[list[Any]]:
        return inputs

    def predict(self, batch: list[list[Any]]) -> list[list[dict[str, Any]]]:
        images = [image for images in batch for image in images]
        found = self.torch_models.predict(self.model, images)
        out, at = [], 0
        for images in batch:
            out.append(found[at : at + len(images)])
            at += len(images)
        return out

    def unbatch(self, output: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        return output

    def encode_response(self, output: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Responses": [[{"results": f}, None] for f in output]}


if __name__ == "__main__":
    port, which = int(sys.argv[1]), sys.argv[2]
    api = (
        Forest(max_batch_size=MAX_BATCH, batch_timeout=BATCH_TIMEOUT_S, api_path="/invocations")
        if which == "rf"
        else Segmenter(max_batch_size=MAX_BATCH, batch_timeout=BATCH_TIMEOUT_S, api_path="/predict")
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=port, generate_client_file=False)
