"""The model API's OpenAPI schemas: what /docs shows, docs/api.md is written from and
schemathesis generates requests from.

Request bodies are written out here (the handlers read them themselves, so bad input gets a
400 whose message names the item, not a validation error of FastAPI's); responses are typed
models that FastAPI turns into schemas. The document is given the served models' names as
examples."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from crispml.serving.framing import ROIS
from crispml.serving.inputs import CONFIG_KEYS

# A schema, or a part of the OpenAPI document: JSON, so values of any type.
Schema = dict[str, Any]

_TEXT: Schema = {"type": "string"}
_CONFIG_FIELDS = {name: _TEXT for name in CONFIG_KEYS}
_ROW: Schema = {"type": "object", "additionalProperties": {"type": ["number", "string", "null"]}}
_MODEL_QUERY: Schema = {
    "name": "model",
    "in": "query",
    "required": False,
    "description": "NAME or NAME:VERSION, when the server has several table models.",
    "schema": _TEXT,
}


def _body(content: Schema, description: str = "") -> Schema:
    return {"requestBody": {"required": True, "description": description, "content": content}}


def _form(properties: Schema, required: list[str] | None = None) -> Schema:
    schema = {"type": "object", "properties": properties, "required": required or []}
    return {"application/x-www-form-urlencoded": {"schema": schema}}


def _file(description: str) -> Schema:
    schema = {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary", "description": description}},
        "required": ["file"],
    }
    return {"multipart/form-data": {"schema": schema}}


ERRORS: dict[int | str, Schema] = {
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


# --- responses -------------------------------------------------------------------------------


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    models: list[str]  # the loaded weights
    failed: list[str]  # the weights that cannot be loaded


class ConfigSet(BaseModel):
    message: str
    config: dict[str, Any]  # as sent: the configuration fields, of any JSON type


class Detections(BaseModel):
    class_name: list[str]
    scores: list[float]
    rois: list[list[int]] = Field(serialization_alias=ROIS)


class ArticleResult(BaseModel):
    results: Detections
    weight: str


class ImagePredictions(BaseModel):
    Responses: list[tuple[ArticleResult, str | None]]  # with the overlay (base64 PNG) if asked


class RowPredictions(BaseModel):
    predictions: list[str | float | bool]  # a class label or a number per row
    weight: str


# --- examples --------------------------------------------------------------------------------


def with_examples(document: Schema, weights: list[str]) -> Schema:
    """``document`` with the served ``weights``' names as examples of the fields and query
    parameters naming a model (for /docs' "Try it out" and for schemathesis, which then
    reaches past the 404s)."""
    weights = weights or ["NAME:1"]
    names = sorted({w.rpartition(":")[0] for w in weights})
    examples = {"Model_path": names, "weight": weights, "model": [*names, *weights]}
    for path in document.get("paths", {}).values():
        for operation in path.values():
            _parameter_examples(operation, examples)
            _body_examples(operation, examples)
    return document


def _parameter_examples(operation: Schema, examples: dict[str, list[str]]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["name"] in examples:
            parameter["schema"] = {**_TEXT, "examples": examples[parameter["name"]]}


def _body_examples(operation: Schema, examples: dict[str, list[str]]) -> None:
    content = operation.get("requestBody", {}).get("content", {})
    for media in content.values():
        for variant in [media["schema"], *media["schema"].get("oneOf", [])]:
            for name, field in variant.get("properties", {}).items():
                if name in examples:
                    variant["properties"][name] = {**field, "examples": examples[name]}
