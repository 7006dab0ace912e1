"""The model API on a real `crispml serve`: the article's client calls, made with `requests`
exactly as the article writes them, MLflow's /invocations, API keys and bad input."""
# The article's calls pass no timeout; they are kept exactly as a reader would copy them.
# ruff: noqa: S113

from __future__ import annotations

import base64
import io
import json
import os
import pwd
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import requests
from PIL import Image

from crispml.core.errors import InvalidInput
from crispml.services import Services
from tests.helpers import free_port
from tests.models import IRIS_ROW, Trained

pytestmark = [pytest.mark.server, pytest.mark.needs("torch")]


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
def home(trained: Trained) -> tuple[Path, Services]:
    """Two deployed models: an iris classifier and a small shapes U-Net; and an iris classifier
    trained in another environment (the same Python registered under another name), served by
    a worker process."""
    svc, admin = trained.svc, trained.admin
    for run, name in (
        ("iris", "iris-lr"),
        ("unet", "shapes-unet"),
        ("elsewhere", "iris-elsewhere"),
    ):
        svc.modeling.register(admin, trained.runs[run], name)
    svc.deployments.deploy(admin, "iris-lr")
    svc.deployments.deploy(admin, "shapes-unet")
    return trained.home, svc


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
    # Issue 21: 'shapes-unet' is the U-Net run of Shapes, and stays one; the iris run it was
    # once confused with is refused under that name.
    svc = home[1]
    admin = svc.auth.first_admin()
    unet = svc.modeling.model("shapes-unet", 1)
    trained = svc.modeling.get(admin.id, unet.run_id)
    assert (unet.task, unet.algorithm, unet.inputs) == (
        "segmentation",
        "unet_segmentation",
        {"kind": "images"},
    )
    assert trained.algorithm == "unet_segmentation"
    assert trained.dataset_name.startswith("Shapes · prepared")
    with pytest.raises(InvalidInput, match="'shapes-unet' holds segmentation models"):
        svc.modeling.register(admin, svc.modeling.model("iris-lr").run_id, "shapes-unet")
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
        (
            {"images": ["not base64!"], "Model_path": "shapes-unet"},
            400,
            "images[0] is not valid base64",
        ),
        (
            {"images": [good, base64.b64encode(b"hello").decode()], "Model_path": "shapes-unet"},
            400,
            "images[1] is not an image",
        ),
        (
            {"images": [base64.b64encode(huge.getvalue()).decode()], "Model_path": "shapes-unet"},
            400,
            "more than the 250,000",
        ),
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
    word = dict(IRIS_ROW, petal_width_cm="wide")
    res = requests.post(f"{url}/invocations?model=iris-lr", json={"dataframe_records": [word]})
    assert res.status_code == 400 and "number" in res.json()["detail"]
    res = requests.post(
        f"{url}/invocations?model=iris-lr", json={"inputs": {"a": [1, 2], "b": [1]}}
    )
    assert res.status_code == 400 and "as many values" in res.json()["detail"]
    nested = "[" * 100_000 + "]" * 100_000
    res = requests.post(
        f"{url}/invocations", data=nested, headers={"content-type": "application/json"}
    )
    assert res.status_code == 400
    huge = dict(IRIS_ROW, sepal_length_cm=10**400)
    res = requests.post(f"{url}/invocations?model=iris-lr", json={"dataframe_records": [huge]})
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
        # A colleague's key reaches only the colleague's models: not the admin's.
        if "carol" not in {u.username for u in svc.auth.list_users()}:
            svc.auth.create_user("carol", "quiet-meadow-41", actor="test")
        _, carols = svc.apikeys.create(svc.auth.get_user("carol"), "carol's")
        listed = requests.get(f"{api.url}/models", headers={"X-API-Key": carols})
        assert listed.status_code == 200 and listed.json() == [], listed.text
        theirs = requests.post(
            f"{api.url}/predict?model=iris-lr", json=[IRIS_ROW], headers={"X-API-Key": carols}
        )
        assert theirs.status_code == 403 and "iris-lr" in theirs.json()["detail"], theirs.text
        svc.apikeys.revoke(admin, iris_key.key_id)
        revoked = time.monotonic()

        def refused() -> bool:
            url = f"{api.url}/predict?model=iris-lr"
            headers = {"X-API-Key": iris_only}
            return requests.post(url, json=[IRIS_ROW], headers=headers).status_code == 401

        _poll(refused, timeout=5)
        assert time.monotonic() - revoked < 2.5  # verified keys are remembered for a second
        assert svc.apikeys.all(admin)[0].last_used_at is not None or any(
            k.last_used_at for k in svc.apikeys.all(admin)
        )
    finally:
        api.stop()


def test_the_api_is_also_under_api_in_the_main_app(home: tuple[Path, Services]) -> None:
    """The same API, mounted at /api/ of the web app: API keys, not login sessions."""
    from tests.helpers import Server

    svc = home[1]
    _, key = svc.apikeys.create(svc.auth.first_admin(), "through the app")
    server = Server(home[0]).start()
    try:
        anonymous = requests.get(f"{server.url}/api/models")
        assert anonymous.status_code == 401 and "API key" in anonymous.json()["detail"]
        bearer = {"Authorization": f"Bearer {key}"}
        listed = requests.get(f"{server.url}/api/models", headers=bearer)
        assert listed.json() == ["logistic_regression", "unet_segmentation"]
        url = f"{server.url}/api/predict?model=iris-lr"
        row = requests.post(url, json=[IRIS_ROW], headers=bearer)
        assert row.json()["predictions"] == ["virginica"]
        assert requests.get(f"{server.url}/api/openapi.json").status_code == 200
        page = requests.get(f"{server.url}/jobs", allow_redirects=False)
        assert page.status_code in (303, 401)  # the rest of the app still needs a login
    finally:
        server.stop()


def _poll(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_deploys_undeploys_and_public_deployments_are_followed_and_counted(
    home: tuple[Path, Services],
) -> None:
    svc = home[1]
    admin = svc.auth.first_admin()
    _, key = svc.apikeys.create(admin, "counts")
    bearer = {"Authorization": f"Bearer {key}"}
    api = Api(home[0])
    models = lambda: requests.get(f"{api.url}/readyz").json()["models"]  # noqa: E731
    try:
        assert models() == ["iris-lr:1", "shapes-unet:1"]
        before = svc.deployments.get("iris-lr", 1)
        for _ in range(3):
            res = requests.post(f"{api.url}/predict?model=iris-lr", json=[IRIS_ROW], headers=bearer)
            assert res.status_code == 200
        bad = requests.post(f"{api.url}/predict?model=iris-lr", json=[{"x": 1}], headers=bearer)
        assert bad.status_code == 400
        _poll(lambda: svc.deployments.get("iris-lr", 1).requests >= before.requests + 4)
        after = svc.deployments.get("iris-lr", 1)
        assert after.errors == before.errors + 1 and after.last_request_at is not None
        # Deploy a third model, public: no restart, no key needed for it (only for it).
        svc.deployments.deploy(admin, "iris-elsewhere", public=True)
        # Followed within a second; loading starts a worker (a new Python importing
        # scikit-learn), which on a loaded two-core machine has taken more than 15 s.
        _poll(lambda: "iris-elsewhere:1" in models(), timeout=60)
        anonymous = requests.post(f"{api.url}/predict?model=iris-elsewhere", json=[IRIS_ROW])
        assert anonymous.json()["predictions"] == ["virginica"]
        assert requests.get(f"{api.url}/models").json() == ["logistic_regression"]
        private = requests.post(f"{api.url}/predict?model=iris-lr", json=[IRIS_ROW])
        assert private.status_code == 401
        svc.deployments.undeploy(admin, "iris-elsewhere", 1)
        _poll(lambda: "iris-elsewhere:1" not in models())
        gone = requests.post(f"{api.url}/predict?model=iris-elsewhere", json=[IRIS_ROW])
        assert gone.status_code == 401, gone.text  # nothing public any more: a key is needed
        assert (
            requests.post(
                f"{api.url}/predict?model=iris-elsewhere", json=[IRIS_ROW], headers=bearer
            ).status_code
            == 404
        )
    finally:
        api.stop()


def test_a_model_in_another_environment_runs_in_a_worker_that_survives_a_crash(
    home: tuple[Path, Services],
) -> None:
    """The model trained in environment 'elsewhere' is served by a worker process running that
    environment's Python; killed mid-request, its request gets a 500 with a request id, the
    worker starts again and the server goes on serving both models."""
    import concurrent.futures
    import signal

    import psutil

    api = Api(home[0], "--public", "--model", "iris-elsewhere", "--model", "iris-lr")
    url = f"{api.url}/predict?model=iris-elsewhere"
    try:
        assert requests.post(url, json=[IRIS_ROW]).json()["predictions"] == ["virginica"]

        def worker() -> psutil.Process:
            found = [
                p for p in psutil.Process(api.proc.pid).children(recursive=True)
                if p.cmdline()[:3] == [sys.executable, "-m", "crispml_serve_worker"]
            ]  # fmt: skip
            assert len(found) == 1, found  # the environment's interpreter, in its sandbox
            return found[0]

        first = worker()
        # As the model's owner's own OS account, seeing the model but not the server's home.
        assert pwd.getpwuid(first.uids().real).pw_name == "cm-admin"
        inside = Path(f"/proc/{first.pid}/root")
        version = home[1].modeling.model("iris-elsewhere", 1)
        assert (inside / version.path.lstrip("/") / "model.skops").exists()
        assert (home[0] / "secret_key").exists()
        assert not (inside / str(home[0]).lstrip("/") / "secret_key").exists()
        assert "CRISPML_DATABASE_URL" not in first.environ()
        first.send_signal(signal.SIGSTOP)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(requests.post, url, json=[IRIS_ROW], timeout=30)
            time.sleep(0.5)  # the request now waits on the stopped worker
            other = requests.post(f"{api.url}/predict?model=iris-lr", json=[IRIS_ROW])
            assert other.status_code == 200  # the in-process model is not held up
            first.kill()
            crashed = pending.result()
        assert crashed.status_code == 500, crashed.text
        assert crashed.json()["request_id"] in crashed.json()["detail"]
        assert requests.post(url, json=[IRIS_ROW]).json()["predictions"] == ["virginica"]
        assert worker().pid != first.pid
        assert f"model API error {crashed.json()['request_id']}" in api.log.read_text()
    finally:
        api.stop()


def test_only_owners_and_admins_deploy_and_the_cli_deploys(home: tuple[Path, Services]) -> None:
    from crispml.core.errors import PermissionDenied

    path, svc = home
    bob = svc.auth.create_user("bob", "bob-password-long-enough", actor="admin")
    with pytest.raises(PermissionDenied, match="owner of 'iris-lr'"):
        svc.deployments.deploy(bob, "iris-lr", 1)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}
        return subprocess.run(
            [sys.executable, "-m", "crispml", "--home", str(path), "models", *args],
            capture_output=True, text=True, env=environment, timeout=60, check=False,
        )  # fmt: skip

    deployed = cli("deploy", "iris-elsewhere:1", "--public")
    assert deployed.returncode == 0 and "deployed iris-elsewhere:1 (public)" in deployed.stdout
    assert "anyone who reaches the API" in deployed.stderr
    listing = cli("list").stdout.splitlines()
    assert any(line.startswith("iris-elsewhere") and " public " in line for line in listing)
    assert svc.deployments.get("iris-elsewhere", 1).public
    assert cli("undeploy", "iris-elsewhere:1").returncode == 0
    assert svc.deployments.get("iris-elsewhere", 1) is None
    missing = cli("deploy", "nope:3")
    assert missing.returncode == 1 and "No model 'nope' version 3" in missing.stderr


@pytest.mark.long
def test_schemathesis_finds_no_server_error(home: tuple[Path, Services], tmp_path: Path) -> None:
    """Property-based requests generated from the OpenAPI document (every operation, valid and
    invalid bodies, forms, files and queries): never a 5xx, and the server keeps serving."""
    api = Api(home[0], "--public")  # its own server: /configs calls change the stored config
    try:
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")), "run",
                f"{api.url}/openapi.json", "--url", api.url,
                "--checks", "not_a_server_error", "--phases", "examples,coverage,fuzzing",
                "--max-examples", "40", "--seed", "11", "--workers", "2",
                "--request-timeout", "30", "--suppress-health-check", "all",
                "--report-dir", str(tmp_path),
            ],
            capture_output=True, text=True, timeout=400, check=False,
            cwd=tmp_path,  # its cache (.schemathesis/) goes there, not into the checkout
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
        assert generated is not None and int(generated[1]) >= 300, run.stdout[-3000:]
        assert requests.get(f"{api.url}/healthz").json() == {"status": "ok"}
    finally:
        api.stop()


def test_a_stall_longer_than_uvicorns_keep_alive_drops_no_request(public: Api) -> None:
    """The load test's dropped connections: clients keep connections open between requests;
    when the server stalled for longer than uvicorn's default keep-alive (5 s), the timers of
    the connections idle since before the stall fired before their next request was read, and
    those requests were reset. The server's keep-alive now outlasts such a stall."""
    import concurrent.futures
    import signal

    url = f"{public.url}/predict?model=iris-lr"
    sessions = [requests.Session() for _ in range(16)]
    try:
        for session in sessions:  # one idle keep-alive connection each
            assert session.post(url, json=[IRIS_ROW], timeout=30).status_code == 200
        os.kill(public.proc.pid, signal.SIGSTOP)
        try:
            with concurrent.futures.ThreadPoolExecutor(len(sessions)) as pool:
                sent = [pool.submit(s.post, url, json=[IRIS_ROW], timeout=60) for s in sessions]
                stalled = time.monotonic()
                # The stall is the experiment: longer than uvicorn's default keep-alive.
                while time.monotonic() - stalled < 6.5:
                    time.sleep(0.1)
                os.kill(public.proc.pid, signal.SIGCONT)
                answers = [future.result() for future in sent]  # a reset would raise here
        finally:
            os.kill(public.proc.pid, signal.SIGCONT)
        assert [a.status_code for a in answers] == [200] * len(sessions)
    finally:
        for session in sessions:
            session.close()
