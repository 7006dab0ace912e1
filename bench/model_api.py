"""Benchmark: the model API against its limit, MLflow's scoring server, LitServe and a Flask
server written the article's way, side by side in one run (issues 11 and 23).

The limit, computed in the run for each number of clients N: the bare batched predict (the
model's own predict on N rows, or N images, at once, in this process) plus the framework's floor
(a minimal FastAPI app on the same uvicorn, bench/floor_app.py, under the same load):
``limit(N) = 1 / (predict(N) / N + 1 / floor_rps(N))`` requests per second.

Targets (issue 23), for the forest and the U-Net, all printed and checked:
- 32 clients: at least 60% of the limit; 8 clients: at least 50% of it and at least 6x MLflow;
- 1 client: a median latency at most 1.2x (bare predict of one + the floor's median);
- the forest at 32 clients: server CPU (the process and its children) at most 1 ms a request.

The same two models everywhere, trained and registered through crispml: a scikit-learn random
forest (100 trees, iris; one row per request) and the shapes U-Net (one 32x32 PNG per request).
- crispml: ``crispml serve`` (one process), with an API key, ``/invocations`` and ``/predict``;
- MLflow: ``mlflow models serve --env-manager local`` (its defaults: one uvicorn worker), the
  forest saved with ``mlflow.sklearn``, the U-Net as a pyfunc calling the same predict function;
- LitServe: bench/litserve_server.py, its dynamic batching on (32 at most, 2 ms), one worker;
- Flask: ``bench/flask_server.py``, Flask's threaded development server as in the article.
MLflow, LitServe and Flask run from a separate environment (``build/bench-servers``, made with
uv on first use, with the same scikit-learn, torch, skops, NumPy and pandas versions).

Each cell runs ``--seconds`` of closed-loop load (every client sends its next request when the
previous one is answered) over keep-alive connections from a minimal asyncio HTTP/1.1 client in
this process (cheap per request, so the servers are what is measured); errors are counted.

    .venv/bin/python bench/model_api.py [--seconds 8] [--clients 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
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
from processes import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH_ENV = ROOT / "build" / "bench-servers"
BENCH_PACKAGES = [
    "mlflow==3.17.2", "litserve==0.2.19", "scikit-learn==1.9.1", "torch==2.13.0",
    "skops==0.16.0", "numpy==2.4.6", "pandas==2.3.3",
]  # fmt: skip
IRIS_ROW = {"sepal_length_cm": 6.7, "sepal_width_cm": 3.0, "petal_length_cm": 5.2,
            "petal_width_cm": 2.3}  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_python() -> Path:
    """The benchmark environment's Python, made (or brought up to BENCH_PACKAGES) with uv."""
    python = BENCH_ENV / "bin" / "python"
    stamp = BENCH_ENV / ".packages"
    wanted = "\n".join(BENCH_PACKAGES)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    uv = Path(sys.executable).with_name("uv")
    if not python.exists():
        subprocess.run([str(uv), "venv", "-q", "-p", sys.executable, str(BENCH_ENV)], check=True)
    links = os.environ.get("PIP_FIND_LINKS") or subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    extra = [arg for link in links.split() for arg in ("--find-links", link)]
    subprocess.run(
        [str(uv), "pip", "install", "-q", *extra, *BENCH_PACKAGES],
        env={**os.environ, "VIRTUAL_ENV": str(BENCH_ENV)},
        check=True,
    )
    stamp.write_text(wanted)
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
            argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env or dict(os.environ),
            start_new_session=True,  # its own process group: stop() ends its workers too
        )  # fmt: skip
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
        """End the server and every process it started (LitServe's workers, for one)."""
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


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


async def load(
    url: str, request: Request, clients: int, seconds: float, pid: int | None = None
) -> dict[str, float]:
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

    cpu = cpu_seconds(pid) if pid else 0.0
    began = time.perf_counter()
    await asyncio.gather(*(one(c) for c in connections))
    elapsed = time.perf_counter() - began
    cpu = cpu_seconds(pid) - cpu if pid else float("nan")
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": errors,
        "cpu_ms": cpu / len(latencies) * 1000,
    }


def bare(predict: Callable[[], Any], seconds: float, per_call: int) -> dict[str, float]:
    """A predict call in a loop: ``per_call`` rows or images a call; figures per request."""
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
        "rps": len(latencies) * per_call / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": 0,
        "cpu_ms": float("nan"),
    }


Results = dict[tuple[str, str, int], dict[str, float]]
BARE, FLOOR, LIMIT = "bare batched predict", "floor: minimal FastAPI app", "limit"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--clients", default="1,8,32")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    python = bench_python()
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="crispml-bench-api-") as tmp:
        work = Path(tmp)
        (rf, unet), (key, picture) = train(work / "home")
        subprocess.run(
            [str(python), str(ROOT / "bench" / "mlflow_models.py"), rf.path, unet.path,
             str(work / "mlflow")], check=True,
        )  # fmt: skip

        # The bare batched predicts: the same loaders and predict calls crispml serves with.
        import pandas as pd
        from PIL import Image

        from crispml.serving.models import _jobside

        forest = _jobside("crispml_algos.sklearn_models").load(Path(rf.path))
        torch_models = _jobside("crispml_algos.torch_models")
        segmenter = torch_models.load(Path(unet.path))
        image = Image.open(sorted((work / "home" / "datasets").glob("*/images/*.png"))[0])
        for n in counts:
            rows = pd.DataFrame([IRIS_ROW] * n)
            results[("forest", BARE, n)] = bare(lambda r=rows: forest.predict(r), args.seconds, n)
            images = [image] * n
            results[("U-Net", BARE, n)] = bare(
                lambda i=images: torch_models.predict(segmenter, i), args.seconds, n
            )

        env = {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}
        bearer = {"Authorization": f"Bearer {key}"}
        # mlflow starts "uvicorn" from PATH: its environment's.
        # The U-Net's pyfunc imports crispml's job-side modules (stdlib only besides torch).
        mlflow_env = {**env, "PATH": f"{python.parent}:{env.get('PATH', '')}",
                      "PYTHONPATH": str(ROOT / "crispml" / "jobside")}  # fmt: skip
        names = ("crispml", "floor", "mlflow-rf", "mlflow-unet", "lit-rf", "lit-unet", "flask")
        ports = {name: free_port() for name in names}
        forest_row = {"dataframe_records": [IRIS_ROW]}
        image_body = {"images": [picture]}

        def url(name: str) -> str:
            return f"http://127.0.0.1:{ports[name]}"

        def mlflow(model: str) -> Server:
            argv = [str(python.with_name("mlflow")), "models", "serve", "-m",
                    str(work / "mlflow" / model), "--env-manager", "local", "-h", "127.0.0.1",
                    "-p", str(ports[f"mlflow-{model}"])]  # fmt: skip
            return Server(argv, url(f"mlflow-{model}"), work / f"mlflow-{model}.log",
                          mlflow_env).wait("/ping")  # fmt: skip

        def litserve(model: str, folder: str) -> Server:
            argv = [str(python), str(ROOT / "bench" / "litserve_server.py"),
                    str(ports[f"lit-{model}"]), model, folder]  # fmt: skip
            return Server(argv, url(f"lit-{model}"), work / f"lit-{model}.log",
                          mlflow_env).wait("/health")  # fmt: skip

        plans: list[tuple[str, str, Callable[[], Server] | None, Request]] = [
            ("forest", "crispml",
             lambda: Server([sys.executable, "-m", "crispml", "--home", str(work / "home"),
                             "serve", "--port", str(ports["crispml"])],
                            url("crispml"), work / "crispml.log", env).wait("/readyz"),
             ("/invocations?model=bench-rf", forest_row, bearer)),
            ("U-Net", "crispml", None,
             ("/predict", {"images": [picture], "Model_path": "bench-unet"}, bearer)),
            ("forest", FLOOR,
             lambda: Server([sys.executable, str(ROOT / "bench" / "floor_app.py"),
                             str(ports["floor"])], url("floor"), work / "floor.log",
                            env).wait("/docs"),
             ("/invocations", forest_row, {})),
            ("U-Net", FLOOR, None, ("/predict", image_body, {})),
            ("forest", "MLflow", lambda: mlflow("rf"), ("/invocations", forest_row, {})),
            ("U-Net", "MLflow", lambda: mlflow("unet"),
             ("/invocations", {"dataframe_records": [{"image": picture}]}, {})),
            ("forest", "LitServe", lambda: litserve("rf", rf.path),
             ("/invocations", forest_row, {})),
            ("U-Net", "LitServe", lambda: litserve("unet", unet.path),
             ("/predict", image_body, {})),
            ("forest", "Flask (the article's way)",
             lambda: Server([str(python), str(ROOT / "bench" / "flask_server.py"),
                             str(ports["flask"]), rf.path, unet.path],
                            url("flask"), work / "flask.log").wait("/"),
             ("/invocations", forest_row, {})),
            ("U-Net", "Flask (the article's way)", None, ("/predict", image_body, {})),
        ]  # fmt: skip
        server: Server | None = None
        failed = {k: float("nan") for k in ("rps", "p50", "p99", "errors", "cpu_ms")}
        for model, system, start, request in plans:
            if start is not None:
                if server is not None:
                    server.stop()
                try:
                    server = start()
                except RuntimeError as exc:  # shown, and its cells left empty
                    print(f"\n{system} did not start: {str(exc)[-2000:]}", file=sys.stderr)
                    server = None
            for clients in counts:
                try:
                    if server is None:
                        raise RuntimeError(f"{system} is not running")
                    results[(model, system, clients)] = asyncio.run(
                        load(server.url, request, clients, args.seconds, server.proc.pid)
                    )
                except (RuntimeError, OSError) as exc:
                    print(f"\n{model}, {system}, {clients}: {exc}", file=sys.stderr)
                    results[(model, system, clients)] = failed
                print(".", end="", flush=True)
        if server is not None:
            server.stop()
    print()
    for model in ("forest", "U-Net"):
        for n in counts:
            per_request = results[(model, BARE, n)]["p50"] / n / 1000
            floor = 1 / results[(model, FLOOR, n)]["rps"]
            results[(model, LIMIT, n)] = {"rps": 1 / (per_request + floor), "p50": float("nan"),
                                          "p99": float("nan"), "errors": 0,
                                          "cpu_ms": float("nan")}  # fmt: skip
    sys.exit(0 if report(results, counts) else 1)


def report(results: Results, counts: list[int]) -> bool:
    """Print the tables and the targets; True when every target printed is met."""
    order = [LIMIT, BARE, FLOOR, "crispml", "LitServe", "MLflow", "Flask (the article's way)"]
    print("| model | server | clients | requests/s | % of limit | p50 (ms) | p99 (ms) | "
          "server CPU per request (ms) | errors |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    def cell(value: float, fmt: str) -> str:
        return "" if value != value else format(value, fmt)  # NaN: not measured

    for model in ("forest", "U-Net"):
        for system in order:
            for clients in counts:
                r = results[(model, system, clients)]
                share = 100 * r["rps"] / results[(model, LIMIT, clients)]["rps"]
                print(
                    f"| {model} | {system} | {clients} | {cell(r['rps'], '.0f')} | "
                    f"{cell(share, '.0f')}% | "
                    f"{cell(r['p50'], '.2f')} | {cell(r['p99'], '.2f')} | "
                    f"{cell(r['cpu_ms'], '.2f')} | {r['errors']:.0f} |"
                )
    print()
    print("| target | measured | met |")
    print("| --- | --- | --- |")
    met = True

    def check(label: str, measured: str, ok: bool) -> None:
        nonlocal met
        met &= ok
        print(f"| {label} | {measured} | {'yes' if ok else 'NO'} |")

    for model in ("forest", "U-Net"):
        ours = {n: results[(model, "crispml", n)] for n in counts}
        limit = {n: results[(model, LIMIT, n)]["rps"] for n in counts}
        for n, share in ((32, 0.6), (8, 0.5)):
            if n in counts:
                got = ours[n]["rps"] / limit[n]
                check(f"{model}: {n} clients, at least {share:.0%} of the limit",
                      f"{got:.0%} ({ours[n]['rps']:.0f} of {limit[n]:.0f} requests/s)",
                      got >= share)  # fmt: skip
        if 8 in counts:
            theirs = results[(model, "MLflow", 8)]["rps"]
            ratio = ours[8]["rps"] / theirs
            check(f"{model}: 8 clients, at least 6x MLflow",
                  f"{ratio:.1f}x ({ours[8]['rps']:.0f} vs {theirs:.0f} requests/s)",
                  ratio >= 6)  # fmt: skip
        if 1 in counts:
            bound = 1.2 * (results[(model, BARE, 1)]["p50"] + results[(model, FLOOR, 1)]["p50"])
            check(
                f"{model}: 1 client, median at most 1.2x (bare predict + floor)",
                f"{ours[1]['p50']:.2f} ms (bound {bound:.2f} ms)",
                ours[1]["p50"] <= bound,
            )
        if model == "forest" and 32 in counts:
            cpu = ours[32]["cpu_ms"]
            check("forest: 32 clients, server CPU at most 1 ms a request", f"{cpu:.2f} ms",
                  cpu <= 1.0)  # fmt: skip
    print(f"\ntargets {'met' if met else 'NOT met'}")
    return met


if __name__ == "__main__":
    main()
