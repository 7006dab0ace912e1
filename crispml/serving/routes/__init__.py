"""The model API's routes, one module per resource; each gives a router bound to a ModelApi."""

from __future__ import annotations

from fastapi import APIRouter

from crispml.serving.api import ModelApi
from crispml.serving.routes import base64, configs, health, invocations, models, predict


def routers(api: ModelApi) -> list[APIRouter]:
    """Every route, in the order of the OpenAPI document (and docs/api.md)."""
    return [
        module.router(api) for module in (health, models, configs, base64, predict, invocations)
    ]
