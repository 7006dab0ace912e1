"""The baseline server of bench/model_api.py: Flask, written the way the article wrote its API
(a module-level model, one route per call, Flask's own threaded server on port 8503).

    python bench/flask_server.py PORT RF_MODEL_FOLDER UNET_MODEL_FOLDER
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import pandas as pd
from flask import Flask, jsonify, request
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "crispml" / "jobside"))
from crispml_algos import sklearn_models, torch_models

port, rf_folder, unet_folder = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
rf = sklearn_models.load(rf_folder)
unet = torch_models.load(unet_folder)
app = Flask(__name__)


@app.route("/invocations", methods=["POST"])
def invocations():
    params = request.get_json()
    frame = pd.DataFrame(params["dataframe_records"])
    return jsonify({"predictions": [str(p) for p in rf.predict(frame)]})


@app.route("/predict", methods=["POST"])
def predict():
    params = request.get_json()
    images = [Image.open(io.BytesIO(base64.b64decode(i))) for i in params["images"]]
    responses = []
    for found in torch_models.predict(unet, images):
        result = {
            "class_name": found["classes"],
            "scores": found["scores"],
            "rois [y_min, x_min, y_max, x_max]": found["boxes"],
        }
        responses.append([{"results": result}, None])
    return jsonify({"Responses": responses})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=port)
