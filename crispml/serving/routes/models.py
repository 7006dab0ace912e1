"""``/models``: the algorithms served, and a model's versions or classes (the article's)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from crispml.core.errors import InvalidInput
from crispml.serving.api import ModelApi
from crispml.serving.inputs import truthy
from crispml.serving.schemas import ERRORS, MODELS_BODY


def router(api: ModelApi) -> APIRouter:
    routes = APIRouter()

    @routes.get("/models", responses=ERRORS)
    async def algorithms(request: Request) -> list[str]:
        """The algorithms available for prediction."""
        key = await api.caller(request)
        return api.registry.algorithms(key)

    @routes.post("/models", openapi_extra=MODELS_BODY, responses=ERRORS)
    async def model_details(request: Request) -> list[str]:
        """Form fields ``algorithm``, ``Model_path`` and ``return_weights=True`` (the trained
        versions) or ``return_classes=True`` (the classes)."""
        key = await api.caller(request)
        form = await api.inputs.form(request)
        fields = {k: str(v) for k, v in form.items()}
        served = api.registry.find(
            {"algorithm": fields.get("algorithm"), "Model_path": fields.get("Model_path")}, key
        )
        if truthy(fields.get("return_weights")):
            return api.registry.versions(served.name)
        if truthy(fields.get("return_classes")):
            return served.classes
        raise InvalidInput("Ask for return_weights=True or return_classes=True.")

    return routes
