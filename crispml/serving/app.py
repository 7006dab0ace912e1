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
import binascii
import io
import json
import logging
import secrets
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from crispml.core.apikeys import ApiKey
from crispml.core.errors import CrispmlError, InvalidInput, NotFound
from crispml.services import Services
from crispml.serving.models import Served, load, png_base64

log = logging.getLogger("crispml.serving")

IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
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


@dataclass(frozen=True)
class ApiLimits:
    max_request_bytes: int = 50_000_000
    max_images: int = 64
    max_pixels: int = 25_000_000
    zip_max_entries: int = 1_000
    zip_max_bytes: int = 200_000_000
    timeout_s: float = 60.0


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "on")


class ModelApi:
    def __init__(
        self,
        services: Services,
        selection: list[str] | None = None,
        *,
        public: bool = False,
        limits: ApiLimits | None = None,
    ) -> None:
        self.services = services
        self.selection = selection or []
        self.public = public
        self.limits = limits or ApiLimits()
        self.models: dict[str, Served] = {}  # weight (name:version) -> loaded model
        self.configs: dict[str, dict[str, Any]] = {}  # per API key (or "public")

    # --- models ------------------------------------------------------------------------------

    def load(self) -> None:
        modeling = self.services.modeling
        versions = []
        if self.selection:
            for item in self.selection:
                name, _, version = item.partition(":")
                versions.append(modeling.model(name, int(version) if version else None))
        else:
            versions = [m for m in modeling.models() if m.stage == "production"]
        for version in versions:
            served = load(version)
            self.models[served.weight] = served
            log.info("serving %s (%s)", served.weight, version.algorithm)

    def find(self, config: dict[str, Any]) -> Served:
        """The model a request means: its ``weight``, else ``Model_path`` (newest version),
        else ``algorithm`` when only one model has it, else the only model served."""
        weight = str(config.get("weight") or "").strip()
        if weight and weight.lower() != "none":
            if weight not in self.models:
                raise NotFound(f"Unknown weight '{weight}': this server has {self._weights()}.")
            return self.models[weight]
        name = str(config.get("Model_path") or "").strip()
        algorithm = str(config.get("algorithm") or "").strip()
        candidates = list(self.models.values())
        if name:
            candidates = [m for m in candidates if m.name == name]
            if not candidates:
                raise NotFound(f"Unknown Model_path '{name}': this server has {self._names()}.")
        if algorithm:
            candidates = [m for m in candidates if m.version.algorithm == algorithm]
            if not candidates:
                raise NotFound(
                    f"Unknown algorithm '{algorithm}'"
                    + (f" for Model_path '{name}'" if name else "")
                    + f": this server has {', '.join(self._algorithms()) or 'none'}."
                )
        if not candidates:
            raise NotFound("This server has no model loaded.")
        if len({m.name for m in candidates}) > 1:
            raise InvalidInput(
                f"Several models match; say which with Model_path ({self._names()}) or weight."
            )
        return max(candidates, key=lambda m: m.version.version)

    def _weights(self) -> str:
        return ", ".join(sorted(self.models)) or "none"

    def _names(self) -> str:
        return ", ".join(sorted({m.name for m in self.models.values()})) or "none"

    def _algorithms(self) -> list[str]:
        return sorted({m.version.algorithm for m in self.models.values()})

    # --- auth and limits ---------------------------------------------------------------------

    async def key(self, request: Request) -> ApiKey | None:
        presented = request.headers.get("x-api-key") or ""
        authorization = request.headers.get("authorization") or ""
        if authorization.lower().startswith("bearer "):
            presented = authorization[7:].strip()
        if not presented and self.public:
            return None
        found = await run_in_threadpool(self.services.apikeys.verify, presented)
        if found is None:
            raise HTTPException(
                401,
                "A valid API key is required: send 'Authorization: Bearer <key>' (keys are "
                "created on the Deployment page or with 'crispml apikey create').",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    @staticmethod
    def _scope(key: ApiKey | None, served: Served) -> None:
        if key is not None and not key.allows(served.name):
            raise HTTPException(403, f"This API key may not use the model '{served.name}'.")

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

    def _too_large(self) -> str:
        return f"The request is larger than {self.limits.max_request_bytes:,} bytes."

    # --- decoding ----------------------------------------------------------------------------

    def image(self, text: str, index: int) -> Any:
        from PIL import Image, UnidentifiedImageError

        if "," in text[:100] and text.startswith("data:"):
            text = text.split(",", 1)[1]
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"images[{index}] is not valid base64.") from None
        try:
            picture = Image.open(io.BytesIO(raw))
            width, height = picture.size
            if width * height > self.limits.max_pixels:
                raise InvalidInput(
                    f"images[{index}] has {width}x{height} pixels, more than the "
                    f"{self.limits.max_pixels:,} allowed."
                )
            picture.load()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise InvalidInput(
                f"images[{index}] is not an image crispml can read ({exc})."
            ) from None
        return picture.convert("RGB")

    def unzip_images(self, data: bytes) -> list[str]:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise InvalidInput("The file is not a zip archive.") from None
        entries = [e for e in archive.infolist() if not e.is_dir()]
        if len(entries) > self.limits.zip_max_entries:
            raise InvalidInput(
                f"The zip has {len(entries)} entries, more than the "
                f"{self.limits.zip_max_entries} allowed."
            )
        found: list[str] = []
        total = 0
        for entry in sorted(entries, key=lambda e: e.filename):
            path = PurePosixPath(entry.filename.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts:
                raise InvalidInput(f"The zip entry '{entry.filename}' points outside the folder.")
            if path.suffix.lower() not in IMAGE_TYPES or path.name.startswith("."):
                continue
            content = bytearray()
            with archive.open(entry) as f:  # counted as it is unpacked, not as the zip claims
                while chunk := f.read(1 << 16):
                    content += chunk
                    total += len(chunk)
                    if total > self.limits.zip_max_bytes:
                        raise InvalidInput(
                            f"The zip unpacks to more than {self.limits.zip_max_bytes:,} bytes "
                            f"(at '{entry.filename}')."
                        )
            self.image(base64.b64encode(bytes(content)).decode(), len(found))
            found.append(base64.b64encode(bytes(content)).decode())
        if not found:
            raise InvalidInput("The zip holds no image (png, jpg, bmp, gif, webp or tif).")
        return found

    # --- predictions -------------------------------------------------------------------------

    def predict_images(
        self, served: Served, images: list[Any], config: dict[str, Any], create: bool
    ) -> list[list[Any]]:
        try:
            minimum = float(config.get("DETECTION_MIN_CONFIDENCE") or 0)
        except ValueError:
            raise InvalidInput("DETECTION_MIN_CONFIDENCE must be a number.") from None
        shown = config.get("class_show")
        wanted: set[str] | None = None
        if shown not in (None, "", "None", "none", []):
            wanted = set(shown if isinstance(shown, list) else str(shown).split(","))
            wanted = {w.strip() for w in wanted}
        responses = []
        for found in served.predict_images(images, overlay=create):
            keep = [
                i
                for i, (name, score) in enumerate(
                    zip(found["classes"], found["scores"], strict=True)
                )
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
            image = png_base64(found["overlay"]) if create else None
            responses.append([result, image])
        return responses

    async def run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.wait_for(run_in_threadpool(fn, *args), self.limits.timeout_s)
        except TimeoutError:
            raise HTTPException(
                504, f"The prediction took longer than {self.limits.timeout_s:g} s."
            ) from None


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
        return [dict(zip(columns, row, strict=False)) for row in split["data"]]
    for key in ("records", "dataframe_records", "instances", "inputs"):
        if key in payload:
            value = payload[key]
            if isinstance(value, list) and all(isinstance(r, dict) for r in value):
                return value
            if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
                names = list(value)
                return [
                    dict(zip(names, row, strict=True)) for row in zip(*value.values(), strict=True)
                ]
            raise InvalidInput(f"'{key}' must be a list of rows (objects of feature to value).")
    return None


def create_api(api: ModelApi) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(api.load)
        yield

    app = FastAPI(
        title="crispml model API",
        description="Registered models behind API keys; the article's protocol and MLflow's.",
        lifespan=lifespan,
    )

    @app.exception_handler(CrispmlError)
    async def _known(_request: Request, exc: CrispmlError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        reference = secrets.token_hex(4)
        log.error("model API error %s", reference, exc_info=exc)
        return JSONResponse(
            {"detail": f"The server failed on this request (request id {reference}).",
             "request_id": reference},
            status_code=500,
        )  # fmt: skip

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = bool(api.models)
        body = {"ready": ready, "models": sorted(api.models)}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/models")
    async def algorithms(request: Request) -> list[str]:
        """The algorithms available for prediction."""
        await api.key(request)
        return api._algorithms()

    @app.post("/models")
    async def model_details(request: Request) -> Any:
        """Form fields ``algorithm``, ``Model_path`` and ``return_weights=True`` (the trained
        versions) or ``return_classes=True`` (the classes)."""
        key = await api.key(request)
        form = await request.form()
        fields = {k: str(v) for k, v in form.items()}
        served = api.find(
            {"algorithm": fields.get("algorithm"), "Model_path": fields.get("Model_path")}
        )
        api._scope(key, served)
        if _truthy(fields.get("return_weights")):
            return sorted(w for w, m in api.models.items() if m.name == served.name)
        if _truthy(fields.get("return_classes")):
            return served.classes
        raise InvalidInput("Ask for return_weights=True or return_classes=True.")

    @app.post("/configs")
    async def set_config(request: Request) -> dict[str, Any]:
        """A JSON file (multipart field ``file``): the prediction configuration used until the
        next one, kept per API key."""
        key = await api.key(request)
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("Send the configuration as a JSON file in the field 'file'.")
        data = await upload.read()
        try:
            config = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"The configuration file is not JSON ({exc}).") from None
        if not isinstance(config, dict):
            raise InvalidInput("The configuration must be a JSON object.")
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise InvalidInput(
                f"Unknown configuration key(s) {', '.join(unknown)}; "
                f"known: {', '.join(CONFIG_KEYS)}."
            )
        served = api.find(config)
        api._scope(key, served)
        api.configs[key.key_id if key else "public"] = config
        return {"message": f"Predictions now use {served.weight}.", "config": config}

    @app.get("/configs")
    async def get_config(request: Request) -> dict[str, Any]:
        return api.config_for(await api.key(request))

    @app.post("/base64")
    async def to_base64(request: Request) -> list[str]:
        """A zip of images (multipart field ``file``): the base64 string of each image."""
        await api.key(request)
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("Send a zip of images in the field 'file'.")
        data = await upload.read()
        return await api.run(api.unzip_images, data)

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        """Images (form or JSON field ``images``: base64 strings, optional ``create_images``)
        give ``{"Responses": [[result, image], ...]}``; table rows (JSON records) give
        ``{"predictions": [...]}``. Configuration fields in the request override the stored
        configuration."""
        key = await api.key(request)
        config = api.config_for(key)
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            try:
                payload = json.loads((await api.body(request)).decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise InvalidInput(f"The body is not JSON ({exc}).") from None
            rows = _rows(payload)
            if rows is not None:
                return await _tables(request, key, config, rows, payload)
            if not isinstance(payload, dict):
                raise InvalidInput("Send an object with 'images', or table rows.")
            images = payload.get("images")
            fields = payload
        else:
            form = await request.form()
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
        served = api.find(config)
        api._scope(key, served)
        if not served.images:
            raise InvalidInput(f"{served.weight} predicts from table rows, not images.")
        decoded = [api.image(text, i) for i, text in enumerate(images)]
        create = _truthy(fields.get("create_images"))
        return {"Responses": await api.run(api.predict_images, served, decoded, config, create)}

    async def _tables(
        request: Request,
        key: ApiKey | None,
        config: dict[str, Any],
        rows: list[dict[str, Any]],
        payload: Any,
    ) -> dict[str, Any]:
        if isinstance(payload, dict):
            _override(config, payload)
        model = request.query_params.get("model")
        if model:
            config = {"weight": model} if ":" in model else {"Model_path": model}
        served = api.find(config)
        api._scope(key, served)
        if served.images:
            raise InvalidInput(f"{served.weight} predicts from images, not table rows.")
        predictions = await api.run(served.predict_rows, rows)
        return {"predictions": predictions, "weight": served.weight}

    @app.post("/invocations")
    async def invocations(request: Request) -> Any:
        """MLflow's scoring protocol: dataframe_split, dataframe_records, instances or inputs."""
        key = await api.key(request)
        try:
            payload = json.loads((await api.body(request)).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"The body is not JSON ({exc}).") from None
        rows = _rows(payload)
        if rows is None:
            raise InvalidInput(
                "Send one of dataframe_split, dataframe_records, instances or inputs."
            )
        return await _tables(request, key, api.config_for(key), rows, {})

    return app
