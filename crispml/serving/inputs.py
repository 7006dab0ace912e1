"""A request's input, read and decoded within the limits (their values and the decoders of
untrusted bytes are in crispml/serving/limits.py): the body, the form, JSON, base64 images, a zip
of images, table rows in the shapes clients send, and the configuration fields. Bad input is an
InvalidInput (a 400) whose message names the problem and the item."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, TypeGuard

from fastapi import HTTPException, Request
from starlette.datastructures import FormData

from crispml.core.errors import InvalidInput
from crispml.serving.limits import (
    ApiLimits,
    decode_image,
    decoded_bytes,
    parse_json,
    zip_images_json,
)

if TYPE_CHECKING:
    from PIL import Image

# The article's configuration fields: sent to /configs, or with a prediction.
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
# What the MLflow shapes hold rows under (and "records", the article's).
ROW_KEYS = ("records", "dataframe_records", "instances", "inputs")


class Inputs:
    """The readers and decoders of one server, bound to its limits."""

    def __init__(self, limits: ApiLimits) -> None:
        self.limits = limits

    def _refuse_declared(self, request: Request) -> None:
        declared = int(request.headers.get("content-length") or 0)
        if declared > self.limits.max_request_bytes:
            raise HTTPException(413, self.limits.too_large)

    async def body(self, request: Request) -> bytes:
        """The body, counted as it arrives (a 413 past the request limit)."""
        self._refuse_declared(request)
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > self.limits.max_request_bytes:
                raise HTTPException(413, self.limits.too_large)
        return bytes(data)

    async def form(self, request: Request) -> FormData:
        """The form, within the request size limit (Starlette's own default would refuse any
        field over 1 MB, a larger image among them)."""
        self._refuse_declared(request)
        return await request.form(
            max_part_size=self.limits.max_form_part_bytes, max_files=self.limits.max_form_files
        )

    def json(self, data: bytes, what: str) -> object:
        """JSON of any shape (the caller checks it), ``what`` naming it in messages."""
        return parse_json(data, what, self.limits)

    def image(self, text: str, index: int, budget: float = math.inf) -> Image.Image:
        """A base64 image as RGB, checked before it is decoded (crispml.serving.limits)."""
        return decode_image(text, index, self.limits, budget)

    def images(self, texts: list[str]) -> list[Image.Image]:
        """Decode a request's images (in a thread, not on the event loop), within the decoded
        size budget of a request (api_max_decoded_mb), each checked before it is decoded."""
        budget = self.limits.max_decoded_bytes
        decoded = []
        for index, text in enumerate(texts):
            decoded.append(self.image(text, index, budget))
            budget -= decoded_bytes(decoded[-1])
        return decoded

    def zip_images(self, source: IO[bytes]) -> bytearray:
        """A zip's images as the JSON answer of /base64 (crispml.serving.limits)."""
        return zip_images_json(source, self.limits)

    def image_texts(self, images: object) -> list[str]:
        """A request's ``images``: a list of base64 strings, no more than allowed."""
        if (
            not isinstance(images, list)
            or not images
            or not all(isinstance(i, str) for i in images)
        ):
            raise InvalidInput("Send 'images': a list of base64 strings.")
        if len(images) > self.limits.max_images:
            raise InvalidInput(
                f"{len(images)} images is more than the {self.limits.max_images} allowed "
                "per request."
            )
        return images


def truthy(value: object) -> bool:
    """A form's or JSON's yes (``True``, ``1``, ``yes``, ``on``)."""
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def number(config: Mapping[str, object], name: str, default: float) -> float:
    """A configuration field as a number (``default`` when unset or "None")."""
    value = config.get(name)
    if value in (None, "", "None", "none"):
        return default
    if isinstance(value, str | int | float):  # a bool too, as before
        try:
            return float(value)
        except (ValueError, OverflowError):  # an int of hundreds of digits overflows
            pass
    raise InvalidInput(f"{name} must be a number, not {value!r}.")


def override(config: dict[str, Any], fields: Mapping[str, object]) -> None:
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


def table_rows(payload: object) -> list[dict[str, Any]] | None:
    """Table rows from any of the shapes clients send: records, {"records"}, MLflow's
    dataframe_split / dataframe_records / instances / inputs; None when it holds none."""
    if _records(payload):
        return payload
    if not isinstance(payload, dict):
        return None
    if "dataframe_split" in payload:
        return _split_rows(payload["dataframe_split"])
    for key in ROW_KEYS:
        if key in payload:
            return _keyed_rows(key, payload[key])
    return None


def _records(value: object) -> TypeGuard[list[dict[str, Any]]]:
    return isinstance(value, list) and all(isinstance(r, dict) for r in value)


def _split_rows(split: object) -> list[dict[str, Any]]:
    """MLflow's ``dataframe_split``: ``columns`` and ``data`` (a list of value lists)."""
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


def _keyed_rows(key: str, value: object) -> list[dict[str, Any]]:
    """Rows under ``key``: a list of records, or an object of columns of equal length."""
    if _records(value):
        return value
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        names = list(value)
        if len({len(v) for v in value.values()}) > 1:
            raise InvalidInput(f"'{key}': every column must hold as many values.")
        return [dict(zip(names, row, strict=True)) for row in zip(*value.values(), strict=True)]
    raise InvalidInput(f"'{key}' must be a list of rows (objects of feature to value).")
