"""The model API on a real `crispml serve`: the article's client calls, made with `requests`
exactly as the article writes them, MLflow's /invocations, API keys and bad input."""
# The article's calls pass no timeout; they are kept exactly as a reader would copy them.
# ruff: noqa: S113

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import requests
from PIL import Image

from crispml.core.data.prepare import ImageRecipe
from crispml.services import Services, bootstrap, build_services
from crispml.settings import Settings
from tests.helpers import ADMIN_PASSWORD, free_port

pytestmark = pytest.mark.server

IRIS_ROW = {"sepal_length_cm": 6.7, "sepal_width_cm": 3.0, "petal_length_cm": 5.2,
            "petal_width_cm": 2.3}  # fmt: skip


def wait_finished(svc: Services, run_id: str, timeout: float = 300) -> None:
    admin = svc.auth.first_admin()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = svc.modeling.get(admin.id, run_id)
        if run.finished:
            assert run.status == "succeeded", svc.jobs.log_tail(svc.jobs.get(admin.id, run_id))
            return
        time.sleep(0.3)
    raise AssertionError("the run did not finish")


class Api:
    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}
        environment.update(env or {})
        self.log = home.parent / f"api-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crispml", "--home", str(home), "serve",
             "--port", str(self.port), *args],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=environment,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.2)
        raise AssertionError(self.log.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Services]]:
    """Two registered models in production: an iris classifier and a small shapes U-Net."""
    home = tmp_path_factory.mktemp("api") / "home"
    svc = build_services(Settings(home=home, admin_password=ADMIN_PASSWORD))
    bootstrap(svc)
    admin = svc.auth.first_admin()
    project = svc.projects.list(admin.id)[0]
    iris = svc.modeling.resolve_data(admin, project.id, "sample:iris")
    raw = svc.datasets.add_sample(admin, project.id, "shapes", seed=5, count=24, size=32)
    shapes = svc.datasets.prepare_images(
        admin, raw.id, ImageRecipe(size=32, train=0.75, validation=0.25, test=0)
    )
    runs = [
        svc.modeling.start(admin, iris.id, "logistic_regression", {}),
        svc.modeling.start(admin, shapes.id, "unet_segmentation", {"epochs": 3}),
    ]
    for run, name in zip(runs, ("iris-lr", "shapes-unet"), strict=True):
        wait_finished(svc, run.id)
        svc.modeling.register(admin, run.id, name, stage="production")
    yield home, svc
    svc.db.dispose()


@pytest.fixture(scope="module")
def public(home: tuple[Path, Services]) -> Iterator[Api]:
    api = Api(home[0], "--public", env={"CRISPML_API_MAX_PIXELS": "250000"})
    yield api
    api.stop()


def shapes_zip(home: Path, svc: Services, count: int = 2) -> tuple[bytes, list[bytes]]:
    images = sorted((home / "datasets").glob("*/images/*.png"))[:count]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in images:
            archive.write(path, f"pictures/{path.name}")
    return buffer.getvalue(), [p.read_bytes() for p in images]


def test_the_articles_client_calls(public: Api, home: tuple[Path, Services], tmp_path) -> None:
    IP, port = "127.0.0.1", public.port
    # Query the trained models
    res = requests.get(f"http://{IP}:{port}/models")
    assert res.json() == ["logistic_regression", "unet_segmentation"]
    params = {"algorithm": "unet_segmentation", "Model_path": "shapes-unet",
              "return_weights": "True"}  # fmt: skip
    res = requests.post(f"http://{IP}:{port}/models", data=params)
    assert res.json() == ["shapes-unet:1"]
    params = {"algorithm": "unet_segmentation", "Model_path": "shapes-unet",
              "return_classes": "True"}  # fmt: skip
    res = requests.post(f"http://{IP}:{port}/models", data=params)
    classes = res.json()
    assert {"circle", "square", "triangle"} <= set(classes)
    # Set the prediction configuration
    configs = {"algorithm": "unet_segmentation", "Model_path": "shapes-unet",
               "weight": "shapes-unet:1", "IMAGE_MIN_DIM": "1024", "IMAGE_MAX_DIM": "2048",
               "DETECTION_MIN_CONFIDENCE": "0.0", "mode": "2", "class_show": "None"}  # fmt: skip
    (tmp_path / "configs.json").write_text(json.dumps(configs))
    files = {"file": open(tmp_path / "configs.json", "rb")}  # noqa: SIM115 (the article's code)
    res = requests.post(f"http://{IP}:{port}/configs", files=files)
    assert res.status_code == 200, res.text
    res = requests.get(f"http://{IP}:{port}/configs")
    assert res.json() == configs
    # Convert images to base64
    data, originals = shapes_zip(*home)
    (tmp_path / "image_to_predict.zip").write_bytes(data)
    files = {"file": open(tmp_path / "image_to_predict.zip", "rb")}  # noqa: SIM115
    res = requests.post(f"http://{IP}:{port}/base64", files=files)
    list_of_base64 = res.json()
    assert [base64.b64decode(s) for s in list_of_base64] == originals
    params = {"images": list_of_base64}
    # Make predictions
    params["create_images"] = True
    res = requests.post(f"http://{IP}:{port}/predict", data=params)
    res = res.json()["Responses"]
    assert len(res) == 2
    predicted_image0 = res[0][1]
    json_result0 = res[0][0]
    found = json_result0["results"]
    rois = found["rois [y_min, x_min, y_max, x_max]"]
    assert len(found["class_name"]) == len(found["scores"]) == len(rois)
    assert set(found["class_name"]) <= set(classes)
    for y0, x0, y1, x1 in found["rois [y_min, x_min, y_max, x_max]"]:
        assert 0 <= y0 <= y1 < 32 and 0 <= x0 <= x1 < 32
    overlay = Image.open(io.BytesIO(base64.b64decode(predicted_image0)))
    assert overlay.size == (32, 32)
    # A per-request field overrides the stored configuration: nothing is that confident.
    strict = requests.post(
        f"http://{IP}:{port}/predict",
        data={"images": list_of_base64, "DETECTION_MIN_CONFIDENCE": "1.01"},
    ).json()["Responses"]
    assert strict[0][0]["results"]["class_name"] == [] and strict[0][1] is None


def test_tables_and_mlflows_invocations(public: Api) -> None:
    one = requests.post(f"{public.url}/predict?model=iris-lr", json=[IRIS_ROW])
    assert one.status_code == 200, one.text
    assert one.json() == {"predictions": ["virginica"], "weight": "iris-lr:1"}
    columns = list(IRIS_ROW)
    shapes = [
        {"dataframe_split": {"columns": columns, "data": [list(IRIS_ROW.values())] * 2}},
        {"dataframe_records": [IRIS_ROW]},
        {"instances": [IRIS_ROW]},
        {"inputs": {c: [v] for c, v in IRIS_ROW.items()}},
    ]
    for body in shapes:
        res = requests.post(f"{public.url}/invocations?model=iris-lr", json=body)
        assert res.status_code == 200, (body, res.text)
        assert set(res.json()["predictions"]) == {"virginica"}
    assert requests.get(f"{public.url}/openapi.json").json()["info"]["title"] == "crispml model API"


def test_bad_input_gets_a_4xx_naming_it_and_the_server_keeps_serving(public: Api, home) -> None:
    url = public.url
    tiny = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), dtype="uint8")).save(tiny, format="PNG")
    good = base64.b64encode(tiny.getvalue()).decode()
    huge = io.BytesIO()
    Image.new("RGB", (600, 600)).save(huge, format="PNG")  # 360,000 pixels > 250,000 allowed
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("../evil.png", tiny.getvalue())
    cases = [
        ({"images": ["not base64!"]}, 400, "images[0] is not valid base64"),
        ({"images": [good, base64.b64encode(b"hello").decode()]}, 400, "images[1] is not an image"),
        ({"images": [base64.b64encode(huge.getvalue()).decode()]}, 400, "more than the 250,000"),
        ({"images": [good], "weight": "shapes-unet:9"}, 404, "Unknown weight 'shapes-unet:9'"),
        ({"images": [good], "Model_path": "nope"}, 404, "Unknown Model_path 'nope'"),
        ({"images": [good], "algorithm": "yolo", "Model_path": "shapes-unet"}, 404, "'yolo'"),
        ({"images": [good], "Model_path": "iris-lr"}, 400, "table rows, not images"),
    ]
    for data, status, message in cases:
        res = requests.post(f"{url}/predict", data=data)
        assert res.status_code == status and message in res.json()["detail"], (data, res.text)
    res = requests.post(f"{url}/base64", files={"file": ("z.zip", bomb.getvalue())})
    assert res.status_code == 400 and "'../evil.png' points outside" in res.json()["detail"]
    res = requests.post(f"{url}/base64", files={"file": ("z.zip", b"not a zip")})
    assert res.status_code == 400 and "not a zip" in res.json()["detail"]
    res = requests.post(f"{url}/configs", files={"file": ("c.json", b"{nope")})
    assert res.status_code == 400 and "not JSON" in res.json()["detail"]
    res = requests.post(f"{url}/configs", files={"file": ("c.json", b'{"colour": 1}')})
    assert res.status_code == 400 and "colour" in res.json()["detail"]
    res = requests.post(f"{url}/predict?model=iris-lr", json=[{"sepal_length_cm": 1}])
    assert res.status_code == 400 and "petal_width_cm" in res.json()["detail"]
    res = requests.post(f"{url}/invocations", json={"dataframe_split": 3})
    assert res.status_code == 400
    assert requests.get(f"{url}/healthz").json() == {"status": "ok"}  # still serving
    assert public.proc.poll() is None


def test_keys_are_required_scoped_and_revocable(home: tuple[Path, Services]) -> None:
    svc = home[1]
    admin = svc.auth.first_admin()
    _, everything = svc.apikeys.create(admin, "all")
    iris_key, iris_only = svc.apikeys.create(admin, "iris", ["iris-lr"])
    api = Api(home[0], "--model", "iris-lr", "--model", "shapes-unet:1")
    try:
        assert requests.get(f"{api.url}/models").status_code == 401
        wrong = requests.get(f"{api.url}/models", headers={"X-API-Key": "cml_nope"})
        assert wrong.status_code == 401
        bearer = {"Authorization": f"Bearer {everything}"}
        assert requests.get(f"{api.url}/models", headers=bearer).status_code == 200
        row = requests.post(
            f"{api.url}/predict?model=iris-lr", json=[IRIS_ROW], headers={"X-API-Key": iris_only}
        )
        assert row.status_code == 200
        other = requests.post(
            f"{api.url}/models",
            data={"Model_path": "shapes-unet", "return_classes": "True"},
            headers={"X-API-Key": iris_only},
        )
        assert other.status_code == 403 and "shapes-unet" in other.json()["detail"]
        svc.apikeys.revoke(admin, iris_key.key_id)
        gone = requests.post(
            f"{api.url}/predict?model=iris-lr", json=[IRIS_ROW], headers={"X-API-Key": iris_only}
        )
        assert gone.status_code == 401
        assert svc.apikeys.all(admin)[0].last_used_at is not None or any(
            k.last_used_at for k in svc.apikeys.all(admin)
        )
    finally:
        api.stop()
