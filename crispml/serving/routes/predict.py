"""``/predict``: images (the article's protocol) or table rows."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from crispml.core.errors import InvalidInput
from crispml.serving.api import ModelApi
from crispml.serving.inputs import override, table_rows, truthy
from crispml.serving.routes.invocations import predict_rows
from crispml.serving.schemas import ERRORS, PREDICT_BODY, ImagePredictions, RowPredictions


def router(api: ModelApi) -> APIRouter:
    routes = APIRouter()

    @routes.post(
        "/predict",
        openapi_extra=PREDICT_BODY,
        responses=ERRORS,
        response_model=ImagePredictions | RowPredictions,
    )
    async def predict(request: Request) -> JSONResponse:
        """Images (form or JSON field ``images``: base64 strings, optional ``create_images``)
        give ``{"Responses": [[result, image], ...]}``; table rows (JSON records) give
        ``{"predictions": [...]}``. Configuration fields in the request override the stored
        configuration."""
        key = await api.caller(request)
        config = api.config_for(key)
        images: object
        fields: Mapping[str, object]
        if request.headers.get("content-type", "").startswith("application/json"):
            payload = api.inputs.json(await api.inputs.body(request), "The body")
            rows = table_rows(payload)
            if rows is not None:
                if isinstance(payload, dict):
                    override(config, payload)
                return await predict_rows(api, request, key, config, rows)
            if not isinstance(payload, dict):
                raise InvalidInput("Send an object with 'images', or table rows.")
            images, fields = payload.get("images"), payload
        else:
            form = await api.inputs.form(request)
            images = form.getlist("images")
            fields = {k: v for k, v in form.items() if k != "images"}
        override(config, fields)
        texts = api.inputs.image_texts(images)
        served = api.registry.find(config, key)
        if not served.images:
            raise InvalidInput(f"{served.weight} predicts from table rows, not images.")
        decoded = await api.predictions.run(api.inputs.images, texts)
        create = truthy(fields.get("create_images"))
        found = await api.registry.counted(
            served, api.predictions.images(served, decoded, config, create)
        )
        return JSONResponse({"Responses": found})

    return routes
