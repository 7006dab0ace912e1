"""Benchmark: the model API against MLflow's scoring server, a Flask server written the
article's way, and a bare in-process predict loop (the limit), side by side in one run.

Issue 11's targets: at 8 concurrent clients, at least 3 times MLflow's throughput; at 1 client,
a median latency within 1.5 times the bare predict time plus 1 ms.

The same two models everywhere, trained and registered through crispml: a scikit-learn random
forest (100 trees, iris; one row per request) and the shapes U-Net (one 32x32 PNG per request).
- crispml: ``crispml serve`` (one process), with an API key, ``/invocations`` and ``/predict``;
- MLflow: ``mlflow models serve --env-manager local`` (its defaults: one uvicorn worker), the
  forest saved with ``mlflow.sklearn``, the U-Net as a pyfunc calling the same predict function;
- Flask: ``bench/flask_server.py``, Flask's threaded development server as in the article;
- bare: ``model.predict`` on one row (one image) in a loop in this process.
MLflow and Flask run from a separate environment (``build/bench-mlflow``, made with uv on first
use: mlflow 3.17.2 with the same scikit-learn, torch, skops, NumPy and pandas versions).

Each cell runs ``--seconds`` of closed-loop load (every client sends its next request when the
previous one is answered) over keep-alive connections from a minimal asyncio HTTP/1.1 client in
this process (cheap per request, so the servers are what is measured); errors are counted.

    .venv/bin/python bench/model_api.py [--seconds 8] [--clients 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MLFLOW_ENV = ROOT / "build" / "bench-mlflow"
MLFLOW_PACKAGES = [
    "mlflow==3.17.2", "scikit-learn==1.9.1", "torch==2.13.0", "skops==0.16.0",
    "numpy==2.4.6", "pandas==2.3.3",
]  # fmt: skip
IRIS_ROW = {"sepal_length_cm": 6.7, "sepal_width_cm": 3.0, "petal_length_cm": 5.2,
            "petal_width_cm": 2.3}  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mlflow_python() -> Path:
    python = MLFLOW_ENV / "bin" / "python"
    if not python.exists():
        uv = Path(sys.executable).with_name("uv")
        subprocess.run([str(uv), "venv", "-q", "-p", sys.executable, str(MLFLOW_ENV)], check=True)
        links = os.environ.get("PIP_FIND_LINKS") or subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        extra = [arg for link in links.split() for arg in ("--find-links", link)]
        subprocess.run(
            [str(uv), "pip", "install", "-q", *extra, *MLFLOW_PACKAGES],
            env={**os.environ, "VIRTUAL_ENV": str(MLFLOW_ENV)},
            check=True,
        )
    return python


def train(home: Path) -> tuple[Any, Any]:
    """Train and register the forest and the U-Net in a fresh crispml home; deploy both."""
    from crispml.core.data.prepare import ImageRecipe
    from crispml.services import bootstrap, build_services
    from crispml.settings import Settings

    password = secrets.token_urlsafe(16)
    svc = build_services(Settings(home=home, admin_password=password))
    bootstrap(svc, samples=False)
    admin = svc.auth.first_admin()
    project = svc.projects.list(admin.id)[0]
    iris = svc.modeling.resolve_data(admin, project.id, "sample:iris")
    raw = svc.datasets.add_sample(admin, project.id, "shapes", seed=5, count=24, size=32)
    shapes = svc.datasets.prepare_images(
        admin, raw.id, ImageRecipe(size=32, train=0.75, validation=0.25, test=0)
    )
    runs = [
        svc.modeling.start(admin, iris.id, "random_forest_classifier", {"n_estimators": 100}),
        svc.modeling.start(admin, shapes.id, "unet_segmentation", {"epochs": 2}),
    ]
    versions = []
    for run, name in zip(runs, ("bench-rf", "bench-unet"), strict=True):
        while not svc.modeling.get(admin.id, run.id).finished:
            time.sleep(0.5)
        assert svc.modeling.get(admin.id, run.id).status == "succeeded", run.id
        versions.append(svc.modeling.register(admin, run.id, name))
        svc.deployments.deploy(admin, name)
    _, key = svc.apikeys.create(admin, "bench")
    picture = sorted((home / "datasets").glob("*/images/*.png"))[0]
    svc.db.dispose()
    return versions, (key, base64.b64encode(picture.read_bytes()).decode())


class Server:
    def __init__(self, argv: list[str], url: str, log: Path, env: dict[str, str] | None = None):
        self.url = url
        self.proc = subprocess.Popen(
            argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env or dict(os.environ)
        )
        self.log = log

    def wait(self, path: str, timeout: float = 120) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + path, timeout=2).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text()[-3000:])
            time.sleep(0.3)
        raise RuntimeError(f"{self.url} did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


Request = tuple[str, dict[str, Any], dict[str, str]]  # path, JSON body, headers


class Connection:
    """A minimal HTTP/1.1 client connection (keep-alive; reconnects when the server closes, as
    Flask's development server does after every response). Much cheaper per request than a
    full client library, so the servers, not the client, are what is measured."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> tuple[int, bytes]:
        if self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
        }
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await self.reader.readline()).strip(), 16):
                body += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        else:
            body = await self.reader.read()
        if headers.get("connection", "").lower() == "close" or lines[0].startswith("HTTP/1.0"):
            self.writer.close()
            self.reader = self.writer = None
        return status, body


def encode(url: str, request: Request) -> bytes:
    path, body, headers = request
    payload = json.dumps(body).encode()
    host = url.split("//", 1)[1]
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def load(url: str, request: Request, clients: int, seconds: float) -> dict[str, float]:
    raw = encode(url, request)
    host, port = url.split("//", 1)[1].split(":")
    latencies: list[float] = []
    errors = 0
    connections = [Connection(host, int(port)) for _ in range(clients)]
    for connection in connections:  # warm up the connections and the model
        status, answer = await connection.post(raw)
        if status != 200:
            raise RuntimeError(f"{url}{request[0]}: {status} {answer[:300]!r}")
    stop = time.perf_counter() + seconds

    async def one(connection: Connection) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            started = time.perf_counter()
            status, _ = await connection.post(raw)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(one(c) for c in connections))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": errors,
    }


def bare(predict: Callable[[], Any], seconds: float) -> dict[str, float]:
    for _ in range(3):
        predict()
    latencies = []
    stop = time.perf_counter() + seconds
    began = time.perf_counter()
    while time.perf_counter() < stop:
        started = time.perf_counter()
        predict()
        latencies.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--clients", default="1,8,32")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    python = mlflow_python()
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="crispml-bench-api-") as tmp:
        work = Path(tmp)
        (rf, unet), (key, picture) = train(work / "home")
        subprocess.run(
            [str(python), str(ROOT / "bench" / "mlflow_models.py"), rf.path, unet.path,
             str(work / "mlflow")], check=True,
        )  # fmt: skip

        # The bare loops: the same loaders and predict calls crispml and Flask use.
        import pandas as pd
        from PIL import Image

        from crispml.serving.models import _jobside

        forest = _jobside("crispml_algos.sklearn_models").load(Path(rf.path))
        torch_models = _jobside("crispml_algos.torch_models")
        segmenter = torch_models.load(Path(unet.path))
        image = Image.open(sorted((work / "home" / "datasets").glob("*/images/*.png"))[0])
        row = pd.DataFrame([IRIS_ROW])
        results[("forest", "bare predict", 1)] = bare(lambda: forest.predict(row), args.seconds)
        results[("U-Net", "bare predict", 1)] = bare(
            lambda: torch_models.predict(segmenter, [image]), args.seconds
        )

        env = {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}
        bearer = {"Authorization": f"Bearer {key}"}
        # mlflow starts "uvicorn" from PATH: its environment's.
        # The U-Net's pyfunc imports crispml's job-side modules (stdlib only besides torch).
        mlflow_env = {**env, "PATH": f"{python.parent}:{env.get('PATH', '')}",
                      "PYTHONPATH": str(ROOT / "crispml" / "jobside")}  # fmt: skip
        ports = {name: free_port() for name in ("crispml", "mlflow-rf", "mlflow-unet", "flask")}
        forest_row = {"dataframe_records": [IRIS_ROW]}

        def mlflow(model: str) -> Server:
            port = ports[f"mlflow-{model}"]
            argv = [str(python.with_name("mlflow")), "models", "serve", "-m",
                    str(work / "mlflow" / model), "--env-manager", "local", "-h", "127.0.0.1",
                    "-p", str(port)]  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            return Server(argv, url, work / f"mlflow-{model}.log", mlflow_env).wait("/ping")

        plans: list[tuple[str, str, Callable[[], Server], Request]] = [
            ("forest", "crispml",
             lambda: Server([sys.executable, "-m", "crispml", "--home", str(work / "home"),
                             "serve", "--port", str(ports["crispml"])],
                            f"http://127.0.0.1:{ports['crispml']}", work / "crispml.log",
                            env).wait("/readyz"),
             ("/invocations?model=bench-rf", forest_row, bearer)),
            ("U-Net", "crispml", None,
             ("/predict", {"images": [picture], "Model_path": "bench-unet"}, bearer)),
            ("forest", "MLflow", lambda: mlflow("rf"), ("/invocations", forest_row, {})),
            ("U-Net", "MLflow", lambda: mlflow("unet"),
             ("/invocations", {"dataframe_records": [{"image": picture}]}, {})),
            ("forest", "Flask (the article's way)",
             lambda: Server([str(python), str(ROOT / "bench" / "flask_server.py"),
                             str(ports["flask"]), rf.path, unet.path],
                            f"http://127.0.0.1:{ports['flask']}",
                            work / "flask.log").wait("/"),
             ("/invocations", forest_row, {})),
            ("U-Net", "Flask (the article's way)", None,
             ("/predict", {"images": [picture]}, {})),
        ]  # fmt: skip
        server: Server | None = None
        for model, system, start, request in plans:
            if start is not None:
                if server is not None:
                    server.stop()
                server = start()
            assert server is not None
            for clients in counts:
                results[(model, system, clients)] = asyncio.run(
                    load(server.url, request, clients, args.seconds)
                )
                print(".", end="", flush=True)
        if server is not None:
            server.stop()
    print()
    report(results, counts)


def report(results: dict[tuple[str, str, int], dict[str, float]], counts: list[int]) -> None:
    print("| model | server | clients | requests/s | p50 (ms) | p99 (ms) | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for (model, system, clients), r in results.items():
        print(
            f"| {model} | {system} | {clients} | {r['rps']:.0f} | {r['p50']:.2f} | "
            f"{r['p99']:.2f} | {r['errors']:.0f} |"
        )
    print()
    print("| target | measured | met |")
    print("| --- | --- | --- |")
    for model in ("forest", "U-Net"):
        if 8 in counts:
            ours, theirs = results[(model, "crispml", 8)], results[(model, "MLflow", 8)]
            ratio = ours["rps"] / theirs["rps"]
            print(
                f"| {model}: throughput at 8 clients >= 3x MLflow's | {ratio:.1f}x "
                f"({ours['rps']:.0f} vs {theirs['rps']:.0f} requests/s) | "
                f"{'yes' if ratio >= 3 else 'no'} |"
            )
        if 1 in counts:
            ours_p50 = results[(model, "crispml", 1)]["p50"]
            limit = 1.5 * results[(model, "bare predict", 1)]["p50"] + 1
            print(
                f"| {model}: median latency at 1 client <= 1.5x bare + 1 ms | "
                f"{ours_p50:.2f} ms (limit {limit:.2f} ms) | "
                f"{'yes' if ours_p50 <= limit else 'no'} |"
            )


if __name__ == "__main__":
    main()
