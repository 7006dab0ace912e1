"""The model API: FastAPI, speaking the article's protocol (``/models``, ``/configs``,
``/base64``, ``/predict``) and MLflow's ``/invocations``, behind API keys.

    crispml serve [--model NAME[:VERSION] ...] [--public] [--port 8503]

Every request needs an API key (``Authorization: Bearer cml_...`` or ``X-API-Key``) unless the
server runs ``--public``. Bad input gets a 4xx whose message names the problem and the item; an
unexpected error gets a 500 with a request id (the traceback goes to the server log under it).
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import logging
import math
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from crispml.core.apikeys import ApiKey
from crispml.core.deployments import parse_weight
from crispml.core.envs.registry import SYSTEM, Environment
from crispml.core.errors import CrispmlError, InvalidInput, NotFound, Unavailable
from crispml.core.modeling import ModelVersion
from crispml.core.sandbox import SandboxSpec
from crispml.services import Services
from crispml.serving.batching import Batcher, BatchSettings
from crispml.serving.limits import (
    ApiLimits,
    BodyLimit,
    api_limits,
    decode_image,
    decoded_bytes,
    parse_json,
    zip_images_json,
)
from crispml.serving.models import InProcess, Served, WorkerCrashed, load, png_base64

MODEL_WORKER = "model worker"  # a kind of process the sandbox holds, like a job's

log = logging.getLogger("crispml.serving")

CONFIG_KEYS = (
    "algorithm",
    "Model_path",
    "weight",
    "IMAGE_MIN_DIM",
    "IMAGE_MAX_DIM",
    "DETECTION_MIN_CONFIDENCE",
    "mode",
    "class_show",
)
ROIS = "rois [y_min, x_min, y_max, x_max]"


# Request bodies in the OpenAPI document (the handlers read them themselves, to answer bad input
# with messages naming the item): what /docs shows and what schemathesis generates from.
_TEXT = {"type": "string"}
_CONFIG_FIELDS = {name: _TEXT for name in CONFIG_KEYS}
_ROW = {"type": "object", "additionalProperties": {"type": ["number", "string", "null"]}}
_MODEL_QUERY = {
    "name": "model",
    "in": "query",
    "required": False,
    "description": "NAME or NAME:VERSION, when the server has several table models.",
    "schema": _TEXT,
}


def _body(content: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": description, "content": content}}


def _form(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required or []}
    return {"application/x-www-form-urlencoded": {"schema": schema}}


def _file(description: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary", "description": description}},
        "required": ["file"],
    }
    return {"multipart/form-data": {"schema": schema}}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad input; the message names the problem and the item."},
    401: {"description": "No valid API key (and the model is not public)."},
    403: {"description": "The API key may not use this model."},
    404: {"description": "Unknown model, weight or algorithm."},
    413: {"description": "The request is larger than api_max_request_mb."},
    500: {"description": "Unexpected: the answer holds a request_id to look up in the log."},
    504: {"description": "The prediction took longer than api_timeout."},
}
MODELS_BODY = _body(
    _form({
        "algorithm": _TEXT,
        "Model_path": _TEXT,
        "return_weights": {"type": "string", "enum": ["True", "False"]},
        "return_classes": {"type": "string", "enum": ["True", "False"]},
    })
)  # fmt: skip
CONFIGS_BODY = _body(_file("A JSON object with the configuration fields."))
BASE64_BODY = _body(_file("A zip of images."))
_IMAGES = {"type": "array", "items": _TEXT, "description": "Base64 images."}
PREDICT_BODY = {
    **_body({
        "application/json": {"schema": {"oneOf": [
            {"type": "object", "properties": {
                "images": _IMAGES, "create_images": {"type": "boolean"}, **_CONFIG_FIELDS}},
            {"type": "array", "items": _ROW},
        ]}},
        **_form({"images": _IMAGES, "create_images": _TEXT, **_CONFIG_FIELDS}, ["images"]),
    }),
    "parameters": [_MODEL_QUERY],
}  # fmt: skip
INVOCATIONS_BODY = {
    **_body({
        "application/json": {"schema": {"type": "object", "properties": {
            "dataframe_split": {"type": "object", "properties": {
                "columns": {"type": "array", "items": _TEXT},
                "data": {"type": "array", "items": {"type": "array"}}}},
            "dataframe_records": {"type": "array", "items": _ROW},
            "instances": {"type": "array", "items": _ROW},
            "inputs": {"type": "object"},
        }}}
    }),
    "parameters": [_MODEL_QUERY],
}  # fmt: skip


# How long an idle keep-alive connection stays open. uvicorn's default, 5 s, dropped requests:
# when the server process stalls for longer (a loaded machine, swapping, a pause), the
# connections that went idle just before have their keep-alive timer fire before their next
# request, already sent by the client, is read; the server closes them and the clients get
# "connection reset". 75 s (nginx's default) outlasts such stalls and the idle timeout of common
# clients and proxies (60 s), so they close idle connections first.
KEEP_ALIVE_S = 75


def server_options() -> dict[str, Any]:
    """uvicorn's options for the model API server (``crispml serve``)."""
    return {"timeout_keep_alive": KEEP_ALIVE_S, "backlog": 2048}


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (what ``MALLOC_ARENA_MAX`` does at start).

    The server answers from a pool of threads that come and go; glibc gives threads their own
    arenas (up to eight per core), and each keeps freed memory fragmented, so a busy server's
    resident memory creeps up for minutes. Two arenas keep it flat and cost no measurable
    speed here. Call it before the threads start; False where the C library is not glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    m_arena_max = -8  # from glibc's malloc.h
    return bool(mallopt(m_arena_max, arenas))


def batch_settings(settings: Any) -> BatchSettings:
    return BatchSettings(settings.api_batch_max, settings.api_batch_wait_ms / 1000)


def model_api(
    services: Services, selection: list[str] | None = None, *, public: bool = False
) -> ModelApi:
    """A ModelApi with the limits and batching of the services' settings."""
    settings = services.settings
    return ModelApi(
        services,
        selection,
        public=public,
        limits=api_limits(settings),
        batching=batch_settings(settings),
        threads=settings.api_model_threads,
    )


_shared: dict[int, ModelApi] = {}
_sharing = threading.Lock()


def shared_api(services: Services) -> ModelApi:
    """The process's one ModelApi for ``services`` (the web app's /api/ and its pages)."""
    with _sharing:
        found = _shared.get(id(services))
        if found is None:
            found = _shared[id(services)] = model_api(services)
        return found


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "on")


@dataclass(frozen=True)
class Wanted:
    version: ModelVersion
    public: bool


RETRY_S = 30.0  # a version that failed to load is tried again this often


class ModelApi:
    """The served models (the deployments, or the versions named), who may use them, their
    batchers and request counts. The deployments are re-read at most every ``REFRESH_S``
    seconds, so deploys and undeploys take effect without a restart."""

    REFRESH_S = 1.0

    def __init__(
        self,
        services: Services,
        selection: list[str] | None = None,
        *,
        public: bool = False,
        limits: ApiLimits | None = None,
        batching: BatchSettings | None = None,
        threads: int = 1,
    ) -> None:
        self.services = services
        self.threads = threads
        self.selection = selection or []
        self.public = public
        self.limits = limits or ApiLimits()
        self.batching = batching or BatchSettings()
        self.models: dict[str, Served] = {}  # weight (name:version) -> loaded model
        self.public_models: set[str] = set()
        self.failed: dict[str, str] = {}  # weight -> why it could not be loaded
        self._retry_at: dict[str, float] = {}  # weight -> when to try loading it again
        self.batchers: dict[tuple[str, str, int], Batcher] = {}
        self.configs: dict[str, dict[str, Any]] = {}  # per API key (or "public")
        self._counts: dict[str, list[int]] = {}  # weight -> [requests, errors] not yet recorded
        self._checked = -math.inf
        self._refreshing = threading.Lock()
        # Keys verified in the last REFRESH_S seconds: a request does not wait for the database;
        # a revoked key stops working within that second.
        self._keys: dict[str, tuple[ApiKey, float]] = {}
        self._closed = threading.Event()
        self._follower: threading.Thread | None = None

    # --- models ------------------------------------------------------------------------------

    def wanted(self) -> dict[str, Wanted]:
        modeling = self.services.modeling
        if self.selection:
            found = {}
            for item in self.selection:
                name, version = parse_weight(item)
                model = modeling.model(name, version)
                found[f"{model.name}:{model.version}"] = Wanted(model, self.public)
            return found
        return {
            d.weight: Wanted(d.model, d.public or self.public)
            for d in self.services.deployments.all()
        }

    def due(self) -> bool:
        return time.monotonic() - self._checked >= self.REFRESH_S

    def refresh(self, *, force: bool = False) -> None:
        """Follow the deployments (load new versions, drop undeployed ones) and record the
        request counts. The first call loads everything; later ones never make requests wait
        for each other (a refresh already under way is skipped)."""
        first = self._checked == -math.inf
        if not self._refreshing.acquire(blocking=first or force):
            return
        try:
            if not force and not first and not self.due():
                return
            self.flush()
            wanted = self.wanted()
            # Access first: a version made private or undeployed is refused from now on.
            self.public_models = {w for w, want in wanted.items() if want.public}
            for weight in [w for w in self.models if w not in wanted]:
                self.models.pop(weight).close()
                for key in [k for k in list(self.batchers) if k[0] == weight]:
                    self.batchers.pop(key, None)
                log.info("stopped serving %s", weight)
            for weight in [w for w in self.failed if w not in wanted]:
                del self.failed[weight]  # undeployed: no longer a reason to be unready
            now = time.monotonic()
            for weight, want in wanted.items():
                if weight in self.models or self._retry_at.get(weight, 0) > now:
                    continue
                try:
                    environment = self._environment(want.version)
                    self.models[weight] = load(
                        want.version,
                        environment,
                        self.threads,
                        self.limits.timeout_s,
                        self._sandbox(want.version, environment),
                    )
                    self.failed.pop(weight, None)
                    log.info("serving %s (%s)", weight, want.version.algorithm)
                except Exception as exc:  # one model that cannot load must not stop the others
                    if self.selection and first and isinstance(exc, CrispmlError):
                        raise
                    if self.failed.get(weight) != str(exc):
                        log.error("cannot serve %s: %s", weight, exc)
                    self.failed[weight] = str(exc) or type(exc).__name__
                    self._retry_at[weight] = now + RETRY_S
            self._checked = time.monotonic()
            if self._follower is None:
                self._follower = threading.Thread(
                    target=self._follow, name="crispml-api-follow", daemon=True
                )
                self._follower.start()
        finally:
            self._refreshing.release()

    def _follow(self) -> None:
        """Refresh in the background too, so counts are recorded and deploys picked up while
        no request comes."""
        while not self._closed.wait(self.REFRESH_S):
            try:
                self.refresh()
            except Exception:  # a database hiccup must not end the follower
                log.exception("could not follow the deployments")

    def _environment(self, version: ModelVersion) -> Environment | None:
        if version.env in ("", SYSTEM):
            return None
        env = self.services.environments.get(version.env)
        if not env.ready:
            raise InvalidInput(f"The environment '{version.env}' is not ready ({env.status}).")
        return env

    def _sandbox(self, version: ModelVersion, env: Environment | None) -> SandboxSpec | None:
        """A worker in another environment runs that environment's packages, which users may
        have chosen: in a sandbox as the model's owner, seeing the model read-only."""
        runtime = self.services.jobs.runtime
        if env is None or not runtime.sandboxed(MODEL_WORKER, "local"):
            return None
        return runtime.owner_sandbox(
            version.owner_id, env, readable=[version.path], writable=[], files=False
        )

    def served(self, version: ModelVersion) -> Served:
        """A deployed version, loaded (the Deployment page's try-it form shares the API's
        copy: one copy of each model per process)."""
        weight = f"{version.name}:{version.version}"
        if weight not in self.models:
            self.refresh(force=True)
        if weight in self.failed:
            raise InvalidInput(f"{weight} cannot be served: {self.failed[weight]}")
        if weight not in self.models:
            raise NotFound(f"{weight} is not deployed.")
        return self.models[weight]

    def close(self) -> None:
        self._closed.set()
        with self._refreshing:
            self.flush()
            for served in list(self.models.values()):
                served.close()
            self.models.clear()

    # --- request counts ----------------------------------------------------------------------

    def count(self, weight: str, *, error: bool = False) -> None:
        counts = self._counts.setdefault(weight, [0, 0])
        counts[0] += 1
        counts[1] += int(error)

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        if counts and not self.selection:
            try:
                self.services.deployments.record({w: (r, e) for w, (r, e) in counts.items()})
            except Exception:  # counts are not worth failing a request for
                log.exception("could not record request counts")

    async def predicting(self, served: Served, call: Awaitable[Any]) -> Any:
        """Await a prediction, counting it (and its failure) for the Deployment page."""
        try:
            result = await call
        except Exception:
            self.count(served.weight, error=True)
            raise
        self.count(served.weight)
        return result

    def batcher(self, served: Served, kind: str) -> Batcher:
        found = self.batchers.get((served.weight, kind, id(served)))
        if found is None:
            combine = (
                _rows_combiner(served)
                if kind == "rows"
                else _images_combiner(served, overlay=kind == "overlay")
            )
            inline = isinstance(served.backend, InProcess)  # never wait on a worker on the loop
            found = Batcher(combine, self.batching, run_in_threadpool, inline=inline)
            self.batchers[(served.weight, kind, id(served))] = found
        return found

    def find(self, config: dict[str, Any], key: ApiKey | None = None) -> Served:
        """The model a request means: its ``weight``, else ``Model_path`` (newest version),
        else ``algorithm`` when only one model the caller may use has it, else the only one."""
        weight = str(config.get("weight") or "").strip()
        if weight and weight.lower() != "none":
            if weight not in self.models:
                raise NotFound(f"Unknown weight '{weight}': this server has {self._weights(key)}.")
            return self.authorized(key, self.models[weight])
        name = str(config.get("Model_path") or "").strip()
        algorithm = str(config.get("algorithm") or "").strip()
        candidates = list(self.models.values())  # a snapshot: refresh runs in a thread
        if name:
            candidates = [m for m in candidates if m.name == name]
            if not candidates:
                raise NotFound(f"Unknown Model_path '{name}': this server has {self._names(key)}.")
        else:
            candidates = [m for m in candidates if self.may_use(key, m)]
        if algorithm:
            candidates = [m for m in candidates if m.version.algorithm == algorithm]
            if not candidates:
                raise NotFound(
                    f"Unknown algorithm '{algorithm}'"
                    + (f" for Model_path '{name}'" if name else "")
                    + f": this server has {', '.join(self._algorithms(key)) or 'none'}."
                )
        if not candidates:
            raise NotFound("This server has no model loaded.")
        if len({m.name for m in candidates}) > 1:
            raise InvalidInput(
                f"Several models match; say which with Model_path ({self._names(key)}) or weight."
            )
        return self.authorized(key, max(candidates, key=lambda m: m.version.version))

    def _usable(self, key: ApiKey | None) -> list[Served]:
        return [m for m in list(self.models.values()) if self.may_use(key, m)]

    def _weights(self, key: ApiKey | None = None) -> str:
        """What the caller may use, for messages (others' private models stay unnamed)."""
        return ", ".join(sorted(m.weight for m in self._usable(key))) or "none you may use"

    def _names(self, key: ApiKey | None = None) -> str:
        return ", ".join(sorted({m.name for m in self._usable(key)})) or "none you may use"

    def _algorithms(self, key: ApiKey | None = None) -> list[str]:
        return sorted({m.version.algorithm for m in self._usable(key)})

    # --- auth and limits ---------------------------------------------------------------------

    async def key(self, request: Request) -> ApiKey | None:
        """The caller's API key; None for a caller without one, who may use public models
        only (a 401 when there are none)."""
        if self.due():
            await run_in_threadpool(self.refresh)
        presented = request.headers.get("x-api-key") or ""
        authorization = request.headers.get("authorization") or ""
        if authorization.lower().startswith("bearer "):
            presented = authorization[7:].strip()
        if not presented:
            if not self.public_models:
                raise _unauthorized()
            return None
        cached = self._keys.get(presented)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await run_in_threadpool(self.services.apikeys.verify, presented)
        if found is None:
            self._keys.pop(presented, None)
            raise _unauthorized("This API key is not valid (mistyped, or revoked). ")
        if len(self._keys) >= 10_000:
            self._keys.clear()
        self._keys[presented] = (found, now + self.REFRESH_S)
        return found

    def may_use(self, key: ApiKey | None, served: Served) -> bool:
        if key is None:
            return served.weight in self.public_models
        return key.allows(served.name, served.version.owner_id)

    def authorized(self, key: ApiKey | None, served: Served) -> Served:
        if key is None and served.weight not in self.public_models:
            raise _unauthorized()
        if key is not None and not key.allows(served.name, served.version.owner_id):
            raise HTTPException(403, f"This API key may not use the model '{served.name}'.")
        return served

    def config_for(self, key: ApiKey | None) -> dict[str, Any]:
        return dict(self.configs.get(key.key_id if key else "public", {}))

    async def body(self, request: Request) -> bytes:
        declared = int(request.headers.get("content-length") or 0)
        if declared > self.limits.max_request_bytes:
            raise HTTPException(413, self._too_large())
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > self.limits.max_request_bytes:
                raise HTTPException(413, self._too_large())
        return bytes(data)

    async def form(self, request: Request) -> Any:
        """The form, within the request size limit (Starlette's own default would refuse any
        field over 1 MB, a larger image among them)."""
        declared = int(request.headers.get("content-length") or 0)
        if declared > self.limits.max_request_bytes:
            raise HTTPException(413, self._too_large())
        return await request.form(
            max_part_size=min(self.limits.max_request_bytes, self.limits.max_base64_chars + 4096),
            max_files=self.limits.max_images + 8,
        )

    def _too_large(self) -> str:
        return f"The request is larger than {self.limits.max_request_bytes:,} bytes."

    # --- decoding ----------------------------------------------------------------------------

    def image(self, text: str, index: int, budget: float = math.inf) -> Any:
        """A base64 image as RGB, checked before it is decoded (crispml.serving.limits)."""
        return decode_image(text, index, self.limits, budget)

    def try_image(
        self, served: Served, data: bytes, confidence: float
    ) -> tuple[dict[str, Any], str | None]:
        """One image through ``served`` as ``/predict`` answers it (the article's result and
        the overlay, base64), for the Deployment page's try-it form: the same limits,
        framing and result as the API, through one public call."""
        picture = self.image(base64.b64encode(data).decode(), 0)
        framing = Framing.of(picture, {})
        found = framing.back(served.predict_images([framing.picture], overlay=True)[0], True)
        result, overlay = _article_result(served, found, confidence, None, True)
        return result, overlay

    def images(self, texts: list[str]) -> list[Any]:
        """Decode a request's images (in a thread, not on the event loop), within the decoded
        size budget of a request (api_max_decoded_mb), each checked before it is decoded."""
        budget = self.limits.max_decoded_bytes
        decoded = []
        for index, text in enumerate(texts):
            decoded.append(self.image(text, index, budget))
            budget -= decoded_bytes(decoded[-1])
        return decoded

    def zip_images(self, source: Any) -> bytearray:
        """A zip's images as the JSON answer of /base64 (crispml.serving.limits)."""
        return zip_images_json(source, self.limits)

    def json(self, data: bytes, what: str) -> Any:
        return parse_json(data, what, self.limits)

    # --- predictions -------------------------------------------------------------------------

    async def predict_images(
        self, served: Served, images: list[Any], config: dict[str, Any], create: bool
    ) -> list[tuple[dict[str, Any], str | None]]:
        minimum = _number(config, "DETECTION_MIN_CONFIDENCE", 0.0)
        shown = config.get("class_show")
        wanted: set[str] | None = None
        if shown not in (None, "", "None", "none", []):
            names = shown if isinstance(shown, list) else str(shown).split(",")
            wanted = {str(w).strip() for w in names}
        framed = [Framing.of(picture, config) for picture in images]
        batcher = self.batcher(served, "overlay" if create else "images")
        found_all = await self.timed(batcher.submit([f.picture for f in framed]))
        return [
            _article_result(served, frame.back(found, create), minimum, wanted, create)
            for frame, found in zip(framed, found_all, strict=True)
        ]

    async def predict_rows(self, served: Served, rows: list[dict[str, Any]]) -> list[Any]:
        matrix = served.prepare(rows)
        result: list[Any] = await self.timed(self.batcher(served, "rows").submit(matrix))
        return result

    async def timed(self, call: Awaitable[Any]) -> Any:
        try:
            return await asyncio.wait_for(call, self.limits.timeout_s)
        except TimeoutError:
            raise HTTPException(
                504, f"The prediction took longer than {self.limits.timeout_s:g} s."
            ) from None

    async def run(self, fn: Any, *args: Any) -> Any:
        return await self.timed(run_in_threadpool(fn, *args))


@dataclass(frozen=True)
class Framing:
    """The article's IMAGE_MIN_DIM, IMAGE_MAX_DIM and mode (from Mask R-CNN). An image whose
    long side exceeds MAX_DIM is scaled down before the model sees it; mode "square" pads it to
    a square (the model then sees it undistorted). Boxes and overlays are mapped back to the
    image as sent, as Mask R-CNN's are. So upscaling to MIN_DIM could not change a result (it is
    checked, not done), and other modes (the article's "2") change nothing."""

    picture: Any
    size: tuple[int, int]  # the image as sent
    scale: float = 1.0
    pad: tuple[int, int] = (0, 0)  # x, y

    @classmethod
    def of(cls, picture: Any, config: dict[str, Any]) -> Framing:
        from PIL import Image

        low = _number(config, "IMAGE_MIN_DIM", 0.0)
        high = _number(config, "IMAGE_MAX_DIM", 0.0)
        if low < 0 or high < 0 or (high and low > high):
            raise InvalidInput(
                f"IMAGE_MIN_DIM ({low:g}) and IMAGE_MAX_DIM ({high:g}) must be positive, "
                "the minimum not above the maximum."
            )
        width, height = picture.size
        scale = min(1.0, high / max(width, height)) if high else 1.0
        shown = picture
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            shown = picture.resize(size, Image.Resampling.BILINEAR)
        pad = (0, 0)
        if str(config.get("mode") or "").strip().lower() == "square":
            side = max(shown.size)
            pad = ((side - shown.size[0]) // 2, (side - shown.size[1]) // 2)
            canvas = Image.new("RGB", (side, side))
            canvas.paste(shown, pad)
            shown = canvas
        return cls(shown, (width, height), scale, pad)

    def back(self, found: dict[str, Any], create: bool) -> dict[str, Any]:
        if self.scale == 1.0 and self.pad == (0, 0):
            return found
        width, height = self.size
        boxes = []
        for y0, x0, y1, x1 in found["boxes"]:
            boxes.append([
                min(height - 1, max(0, int((y0 - self.pad[1]) / self.scale))),
                min(width - 1, max(0, int((x0 - self.pad[0]) / self.scale))),
                min(height - 1, max(0, int((y1 - self.pad[1]) / self.scale))),
                min(width - 1, max(0, int((x1 - self.pad[0]) / self.scale))),
            ])  # fmt: skip
        mapped = {**found, "boxes": boxes}
        if create and found.get("overlay"):
            from PIL import Image

            drawn = Image.open(io.BytesIO(base64.b64decode(found["overlay"])))
            inner = (round(width * self.scale), round(height * self.scale))
            cropped = drawn.crop((*self.pad, self.pad[0] + inner[0], self.pad[1] + inner[1]))
            mapped["overlay"] = png_base64(cropped.resize(self.size))
        return mapped


def _unauthorized(why: str = "") -> HTTPException:
    return HTTPException(
        401,
        f"{why}A valid API key is required: send 'Authorization: Bearer <key>' (keys are "
        "created on the Deployment page or with 'crispml apikey create').",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _number(config: dict[str, Any], name: str, default: float) -> float:
    value = config.get(name)
    if value in (None, "", "None", "none"):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, not {value!r}.") from None


def _article_result(
    served: Served,
    found: dict[str, Any],
    minimum: float,
    wanted: set[str] | None,
    create: bool,
) -> tuple[dict[str, Any], str | None]:
    keep = [
        i
        for i, (name, score) in enumerate(zip(found["classes"], found["scores"], strict=True))
        if score >= minimum and (wanted is None or name in wanted)
    ]
    result = {
        "results": {
            "class_name": [found["classes"][i] for i in keep],
            "scores": [found["scores"][i] for i in keep],
            ROIS: [found["boxes"][i] for i in keep],
        },
        "weight": served.weight,
    }
    return result, found.get("overlay") if create else None


def _rows_combiner(served: Served) -> Any:
    def combine(parts: list[Any]) -> list[Any]:
        import numpy as np

        predicted = served.predict_matrix(np.vstack(parts) if len(parts) > 1 else parts[0])
        bounds = np.cumsum([0, *(len(p) for p in parts)])
        return [predicted[a:b] for a, b in itertools.pairwise(bounds)]

    return combine


def _images_combiner(served: Served, *, overlay: bool) -> Any:
    def combine(parts: list[list[Any]]) -> list[Any]:
        found = served.predict_images([p for part in parts for p in part], overlay)
        out, start = [], 0
        for part in parts:
            out.append(found[start : start + len(part)])
            start += len(part)
        return out

    return combine


def _override(config: dict[str, Any], fields: Any) -> None:
    """A request's own configuration fields win over the stored ones. Naming another model
    drops the stored weight and algorithm (they were the other model's); naming an algorithm
    drops the stored weight."""
    given = {k: v for k, v in fields.items() if k in CONFIG_KEYS}
    if "Model_path" in given:
        for key in ("weight", "algorithm"):
            if key not in given:
                config.pop(key, None)
    if "algorithm" in given and "weight" not in given:
        config.pop("weight", None)
    config.update(given)


def _rows(payload: Any) -> list[dict[str, Any]] | None:
    """Table rows from any of the shapes clients send: records, {"records"}, MLflow's
    dataframe_split / dataframe_records / instances / inputs."""
    if isinstance(payload, list) and all(isinstance(r, dict) for r in payload):
        return payload
    if not isinstance(payload, dict):
        return None
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise InvalidInput("dataframe_split needs 'columns' and 'data'.")
        columns = split.get("columns") or []
        data = split["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidInput("dataframe_split 'columns' must be a list of names.")
        for index, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                raise InvalidInput(
                    f"dataframe_split data[{index}] must be a list of {len(columns)} values "
                    "(one per column)."
                )
        return [dict(zip(columns, row, strict=True)) for row in data]
    for key in ("records", "dataframe_records", "instances", "inputs"):
        if key in payload:
            value = payload[key]
            if isinstance(value, list) and all(isinstance(r, dict) for r in value):
                return value
            if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
                names = list(value)
                if len({len(v) for v in value.values()}) > 1:
                    raise InvalidInput(f"'{key}': every column must hold as many values.")
                return [
                    dict(zip(names, row, strict=True)) for row in zip(*value.values(), strict=True)
                ]
            raise InvalidInput(f"'{key}' must be a list of rows (objects of feature to value).")
    return None


def create_api(api: ModelApi) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(api.refresh)
        try:
            yield
        finally:
            await run_in_threadpool(api.close)

    app = FastAPI(
        title="crispml model API",
        description="Registered models behind API keys; the article's protocol and MLflow's.",
        lifespan=lifespan,
    )
    # The whole body counted as it arrives (chunked too), before any route buffers it.
    app.add_middleware(
        BodyLimit, max_bytes=api.limits.max_request_bytes, setting="api_max_request_mb"
    )

    @app.exception_handler(CrispmlError)
    async def _known(_request: Request, exc: CrispmlError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 503 if isinstance(exc, Unavailable) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        reference = secrets.token_hex(4)
        if isinstance(exc, WorkerCrashed):  # the worker restarts; the traceback says nothing
            log.error("model API error %s: %s; restarting it", reference, exc)
        else:
            log.error("model API error %s", reference, exc_info=exc)
        return JSONResponse(
            {"detail": f"The server failed on this request (request id {reference}).",
             "request_id": reference},
            status_code=500,
        )  # fmt: skip

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the server answers (no key needed)."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "No model loaded, or one failed."}})
    async def readyz() -> JSONResponse:
        """Readiness (no key needed): the loaded weights, and under ``failed`` the versions
        that cannot be loaded (the reasons go to the log); 503 until a model is loaded or while
        one fails."""
        if api.due():
            await run_in_threadpool(api.refresh)
        ready = bool(api.models) and not api.failed
        body = {"ready": ready, "models": sorted(api.models), "failed": sorted(api.failed)}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/models", responses=ERRORS)
    async def algorithms(request: Request) -> list[str]:
        """The algorithms available for prediction."""
        key = await api.key(request)
        return api._algorithms(key)

    @app.post("/models", openapi_extra=MODELS_BODY, responses=ERRORS)
    async def model_details(request: Request) -> Any:
        """Form fields ``algorithm``, ``Model_path`` and ``return_weights=True`` (the trained
        versions) or ``return_classes=True`` (the classes)."""
        key = await api.key(request)
        form = await api.form(request)
        fields = {k: str(v) for k, v in form.items()}
        served = api.find(
            {"algorithm": fields.get("algorithm"), "Model_path": fields.get("Model_path")}, key
        )
        if _truthy(fields.get("return_weights")):
            return sorted(m.weight for m in list(api.models.values()) if m.name == served.name)
        if _truthy(fields.get("return_classes")):
            return served.classes
        raise InvalidInput("Ask for return_weights=True or return_classes=True.")

    @app.post("/configs", openapi_extra=CONFIGS_BODY, responses=ERRORS)
    async def set_config(request: Request) -> dict[str, Any]:
        """A JSON file (multipart field ``file``): the prediction configuration used until the
        next one, kept per API key."""
        key = await api.key(request)
        form = await api.form(request)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("Send the configuration as a JSON file in the field 'file'.")
        config = api.json(await upload.read(), "The configuration file")
        if not isinstance(config, dict):
            raise InvalidInput("The configuration must be a JSON object.")
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise InvalidInput(
                f"Unknown configuration key(s) {', '.join(unknown)}; "
                f"known: {', '.join(CONFIG_KEYS)}."
            )
        served = api.find(config, key)
        api.configs[key.key_id if key else "public"] = config
        return {"message": f"Predictions now use {served.weight}.", "config": config}

    @app.get("/configs", responses=ERRORS)
    async def get_config(request: Request) -> dict[str, Any]:
        """The prediction configuration this API key last sent (``{}`` if none)."""
        return api.config_for(await api.key(request))

    @app.post("/base64", openapi_extra=BASE64_BODY, responses=ERRORS, response_model=list[str])
    async def to_base64(request: Request) -> Response:
        """A zip of images (multipart field ``file``): the base64 string of each image."""
        await api.key(request)
        form = await api.form(request)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("Send a zip of images in the field 'file'.")
        # The upload as Starlette spooled it (to disk past 1 MB), not read into memory; the
        # answer's bytes are built once, entry by entry.
        answer = await api.run(api.zip_images, upload.file)
        return Response(memoryview(answer), media_type="application/json")

    @app.post("/predict", openapi_extra=PREDICT_BODY, responses=ERRORS)
    async def predict(request: Request) -> Any:
        """Images (form or JSON field ``images``: base64 strings, optional ``create_images``)
        give ``{"Responses": [[result, image], ...]}``; table rows (JSON records) give
        ``{"predictions": [...]}``. Configuration fields in the request override the stored
        configuration."""
        key = await api.key(request)
        config = api.config_for(key)
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            payload = api.json(await api.body(request), "The body")
            rows = _rows(payload)
            if rows is not None:
                return await _tables(request, key, config, rows, payload)
            if not isinstance(payload, dict):
                raise InvalidInput("Send an object with 'images', or table rows.")
            images = payload.get("images")
            fields = payload
        else:
            form = await api.form(request)
            images = form.getlist("images")
            fields = {k: v for k, v in form.items() if k != "images"}
        _override(config, fields)
        if (
            not isinstance(images, list)
            or not images
            or not all(isinstance(i, str) for i in images)
        ):
            raise InvalidInput("Send 'images': a list of base64 strings.")
        if len(images) > api.limits.max_images:
            raise InvalidInput(
                f"{len(images)} images is more than the {api.limits.max_images} allowed "
                "per request."
            )
        served = api.find(config, key)
        if not served.images:
            raise InvalidInput(f"{served.weight} predicts from table rows, not images.")
        decoded = await api.run(api.images, images)
        create = _truthy(fields.get("create_images"))
        found = await api.predicting(served, api.predict_images(served, decoded, config, create))
        return JSONResponse({"Responses": found})

    async def _tables(
        request: Request,
        key: ApiKey | None,
        config: dict[str, Any],
        rows: list[dict[str, Any]],
        payload: Any,
    ) -> JSONResponse:
        if isinstance(payload, dict):
            _override(config, payload)
        model = request.query_params.get("model")
        if model:
            config = {"weight": model} if ":" in model else {"Model_path": model}
        served = api.find(config, key)
        if served.images:
            raise InvalidInput(f"{served.weight} predicts from images, not table rows.")
        predictions = await api.predicting(served, api.predict_rows(served, rows))
        return JSONResponse({"predictions": predictions, "weight": served.weight})

    @app.post("/invocations", openapi_extra=INVOCATIONS_BODY, responses=ERRORS)
    async def invocations(request: Request) -> Any:
        """MLflow's scoring protocol: dataframe_split, dataframe_records, instances or inputs."""
        key = await api.key(request)
        payload = api.json(await api.body(request), "The body")
        rows = _rows(payload)
        if rows is None:
            raise InvalidInput(
                "Send one of dataframe_split, dataframe_records, instances or inputs."
            )
        return await _tables(request, key, api.config_for(key), rows, {})

    def openapi() -> dict[str, Any]:
        """The document, with the served models' names as examples (for /docs' "Try it out"
        and for schemathesis, which then reaches past the 404s)."""
        from fastapi.openapi.utils import get_openapi

        document = get_openapi(title=app.title, version="1", routes=app.routes,
                               description=app.description)  # fmt: skip
        weights = sorted(api.public_models & set(api.models)) or ["NAME:1"]
        names = sorted({w.rpartition(":")[0] for w in weights})
        examples = {"Model_path": names, "weight": weights, "model": [*names, *weights]}
        for path in document.get("paths", {}).values():
            for operation in path.values():
                for parameter in operation.get("parameters", []):
                    if parameter["name"] in examples:
                        parameter["schema"] = {**_TEXT, "examples": examples[parameter["name"]]}
                content = operation.get("requestBody", {}).get("content", {})
                for media in content.values():
                    for variant in [media["schema"], *media["schema"].get("oneOf", [])]:
                        for name, field in variant.get("properties", {}).items():
                            if name in examples:
                                variant["properties"][name] = {**field, "examples": examples[name]}
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    return app
