"""Registered model versions, loaded once per server process and called for predictions.

The loaders are the job-side ones (``crispml_algos``): scikit-learn models through skops
(classes of scikit-learn, NumPy and SciPy only, never pickle), PyTorch models as state dicts
(``weights_only``). One copy of each model per process: in the server's process when the model's
environment is the server's, else in one worker process in the model's environment.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import select
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from crispml.core.data.prepare import apply_fitted
from crispml.core.envs.registry import SYSTEM, Environment
from crispml.core.errors import InvalidInput, NotFound
from crispml.core.modeling import PREPROCESSING, ModelVersion
from crispml.core.sandbox import PRIVATE_TMP, JobLimits, SandboxSpec
from crispml.core.sandbox import command as sandbox_command

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray
    from PIL import Image

    Matrix = NDArray[np.float64]  # rows as the model's input: one row per row sent

JOBSIDE = Path(__file__).resolve().parent.parent / "jobside"


def _jobside(module: str) -> ModuleType:
    if str(JOBSIDE) not in sys.path:
        sys.path.insert(0, str(JOBSIDE))
    return importlib.import_module(module)


class WorkerCrashed(RuntimeError):
    """The model's worker process ended while answering (the caller answers 500)."""


class InProcess:
    """The model in the server's own process (its environment is the server's)."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        if (folder / "model.skops").exists():
            self.kind = "sklearn"
            self.model = _jobside("crispml_algos.sklearn_models").load(folder)
        elif (folder / "model.pt").exists():
            import torch

            # Per process: several threads per call only contend when requests run at once.
            torch.set_num_threads(threads)
            self.kind = "torch"
            self.model = _jobside("crispml_algos.torch_models").load(folder)
        else:
            raise InvalidInput(f"{folder} has no model file crispml can serve.")
        self.lock = threading.Lock()

    def rows(self, columns: list[str], matrix: Matrix) -> list[Any]:
        with self.lock:
            if self.kind == "sklearn":
                import pandas as pd

                predicted = self.model.predict(pd.DataFrame(matrix, columns=columns or None))
                return [v.item() if hasattr(v, "item") else v for v in predicted]
            found = _jobside("crispml_algos.torch_models").predict(self.model, matrix)
            return [r["prediction"] for r in found]

    def images(self, pictures: list[Image.Image], overlay: bool) -> list[dict[str, Any]]:
        with self.lock:
            found = _jobside("crispml_algos.torch_models").predict(
                self.model, pictures, overlay=overlay
            )
        for item in found:
            item.pop("mask", None)
            if "overlay" in item:
                item["overlay"] = png_base64(item["overlay"])
        return list(found)

    def close(self) -> None:
        pass


class Worker:
    """The model in a worker process in its own environment, fed JSON lines over its stdin and
    stdout (``crispml_serve_worker``). A worker that dies fails the request it was answering
    with :class:`WorkerCrashed` and is started again at once."""

    LOAD_S = 300.0  # longest a worker may take to load its model

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        label: str,
        timeout_s: float = 60.0,
        limits: JobLimits | None = None,
    ) -> None:
        self.argv, self.env, self.label = argv, env, label
        self.timeout_s = timeout_s
        self.limits = limits  # a sandboxed worker's memory and process limits
        self.lock = threading.Lock()
        self.process: subprocess.Popen[str] | None = None
        self.kind = ""
        self.restarts = 0
        self.closed = False
        self._spawn()
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
            text=True,
            bufsize=1,
            preexec_fn=self.limits.enter if self.limits is not None else None,
        )
        self.kind = ""

    def _read(self, timeout_s: float) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        if not ready:  # a hung worker: end it, so its lock and its callers are freed
            self.process.kill()
            self.process.wait()
            self.process = None
            raise WorkerCrashed(f"the worker of {self.label} did not answer in {timeout_s:g} s")
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            self.process = None
            raise WorkerCrashed(f"the worker of {self.label} ended (exit code {code})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _handshake(self) -> None:
        hello = self._read(self.LOAD_S)
        if not hello.get("ok"):
            raise InvalidInput(f"{self.label} cannot load: {hello.get('error')}")
        self.kind = str(hello.get("ready"))

    def call(self, message: dict[str, Any]) -> object:
        """The worker's result for ``message`` (JSON; the caller knows its shape)."""
        with self.lock:
            if self.closed:
                raise NotFound(f"{self.label} is no longer deployed.")
            if self.process is None:
                self._spawn()
            try:
                if not self.kind:
                    self._handshake()
                assert self.process is not None
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps(message) + "\n")
                self.process.stdin.flush()
                reply = self._read(self.timeout_s)
            except (BrokenPipeError, WorkerCrashed) as exc:
                if self.process is not None:
                    self.process.kill()
                    self.process.wait()
                self.restarts += 1
                if not self.closed:
                    self._spawn()  # ready for the next request; this one fails
                raise WorkerCrashed(str(exc) or f"the worker of {self.label} ended") from None
        if not reply.get("ok"):
            raise InvalidInput(f"{self.label} refused the input: {reply.get('error')}")
        result: object = reply["result"]
        return result

    def rows(self, columns: list[str], matrix: Matrix) -> list[Any]:
        message = {
            "op": "rows",
            "columns": columns,
            "matrix": [list(map(float, r)) for r in matrix],
        }
        return cast("list[Any]", self.call(message))

    def images(self, pictures: list[Image.Image], overlay: bool) -> list[dict[str, Any]]:
        encoded = [png_base64(picture) for picture in pictures]
        message = {"op": "images", "images": encoded, "overlay": overlay}
        return cast("list[dict[str, Any]]", self.call(message))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def close(self) -> None:
        """End the worker at once, even while a call waits on it (that call then fails)."""
        self.closed = True
        process = self.process
        if process is not None:
            process.kill()
            process.wait()
        if self.limits is not None:
            self.limits.remove()


@dataclass
class Served:
    """One model version, ready to predict, in this process or in a worker."""

    version: ModelVersion
    backend: InProcess | Worker
    fitted: dict[str, Any] = field(default_factory=dict)  # the data's steps, if it had any

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

    def prepare(self, rows: list[dict[str, Any]]) -> Matrix:
        """Rows (mappings of feature to raw value) as the model's input matrix (float64),
        after the data's fitted preparation steps."""
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
        if not self.fitted and self.features:  # the common case, without pandas' overhead
            import numpy as np

            try:
                matrix = np.array([[r[f] for f in self.features] for r in rows], dtype="float64")
            except (TypeError, ValueError, OverflowError) as exc:
                raise InvalidInput(f"Every feature must be a number: {exc}.") from None
            bad = np.argwhere(~np.isfinite(matrix))
            if len(bad):
                row, column = (int(i) for i in bad[0])
                raise InvalidInput(
                    f"Row {row}: '{self.features[column]}' is missing or not a finite number "
                    f"({rows[row][self.features[column]]!r}); {self.weight} needs a value."
                )
            return matrix
        try:
            frame = pd.DataFrame(rows)
            if self.fitted:  # raw values, as in the data before preparation
                frame = apply_fitted(frame, self.fitted)
            frame = frame[self.features] if self.features else frame
            prepared: Matrix = frame.to_numpy(dtype="float64")
            return prepared
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInput(f"Every feature must be a number: {exc}.") from None

    def predict_matrix(self, matrix: Matrix) -> list[Any]:
        return self.backend.rows(self.features, matrix)

    def predict_rows(self, rows: list[dict[str, Any]]) -> list[Any]:
        """One prediction per row: a class label or a number."""
        return self.predict_matrix(self.prepare(rows))

    def predict_images(self, images: list[Image.Image], overlay: bool) -> list[dict[str, Any]]:
        """Per image: classes, scores, boxes [y_min, x_min, y_max, x_max], and with ``overlay``
        the image with the mask drawn on it, as base64 PNG."""
        return self.backend.images(images, overlay)

    def close(self) -> None:
        self.backend.close()


def _fitted(version: ModelVersion) -> dict[str, Any]:
    path = Path(version.path) / PREPROCESSING
    if not path.exists():
        return {}
    found: dict[str, Any] = json.loads(path.read_text()).get("fitted") or {}
    return found


def input_columns(version: ModelVersion) -> list[str]:
    """The columns a row sent for prediction needs: the raw ones its data had before
    preparation, else the model's features."""
    return list(_fitted(version)) or [str(c) for c in version.info.get("features") or []]


def load(
    version: ModelVersion,
    environment: Environment | None = None,
    threads: int = 1,
    timeout_s: float = 60.0,
    sandbox: SandboxSpec | None = None,
) -> Served:
    """The version, in this process when ``environment`` is None or the server's own, else in
    a worker process in that environment (inside ``sandbox`` when given: the environment's
    packages are not the server's to trust); a call uses at most ``threads`` threads."""
    folder = Path(version.path)
    fitted = _fitted(version)
    label = f"{version.name}:{version.version}"
    if not (folder / "model.skops").exists() and not (folder / "model.pt").exists():
        raise InvalidInput(f"{label} has no model file crispml can serve.")
    backend: InProcess | Worker
    if environment is None or environment.name == SYSTEM:
        backend = InProcess(folder, threads)
    else:
        argv = environment.command(["python", "-m", "crispml_serve_worker", str(folder)])
        name = f"{label} ({environment.name})"
        if sandbox is None:
            inherited = {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}
            variables = {**inherited, **environment.variables(), "OMP_NUM_THREADS": str(threads)}
            backend = Worker(argv, variables, name, timeout_s)
        else:  # nothing of the server's environment; the model's folder read-only
            base = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
            variables = {**environment.variables(base), "OMP_NUM_THREADS": str(threads)}
            wrapped = sandbox_command(sandbox, argv, PRIVATE_TMP, variables)
            worker_id = f"worker-{uuid.uuid4().hex[:12]}"
            limits = JobLimits(worker_id, sandbox.memory_mb, sandbox.processes)
            backend = Worker(wrapped, {"PATH": base["PATH"]}, name, timeout_s, limits)
    return Served(version, backend, fitted)


def png_base64(pixels: ArrayLike | Image.Image) -> str:
    """An RGB array (or image) as a base64 PNG."""
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype="uint8")).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
