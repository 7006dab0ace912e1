"""``/invocations``: MLflow's scoring protocol; and the answer to table rows that ``/predict``
gives too."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from crispml.core.apikeys import ApiKey
from crispml.core.errors import InvalidInput
from crispml.serving.api import ModelApi
from crispml.serving.inputs import table_rows
from crispml.serving.schemas import ERRORS, INVOCATIONS_BODY, RowPredictions


async def predict_rows(
    api: ModelApi,
    request: Request,
    key: ApiKey | None,
    config: dict[str, Any],
    rows: list[dict[str, Any]],
) -> JSONResponse:
    """The predictions for table rows, from the model the query's ``model`` names, else the
    configuration's."""
    model = request.query_params.get("model")
    if model:
        config = {"weight": model} if ":" in model else {"Model_path": model}
    served = api.registry.find(config, key)
    if served.images:
        raise InvalidInput(f"{served.weight} predicts from images, not table rows.")
    predictions = await api.registry.counted(served, api.predictions.rows(served, rows))
    return JSONResponse({"predictions": predictions, "weight": served.weight})


def router(api: ModelApi) -> APIRouter:
    routes = APIRouter()

    @routes.post(
        "/invocations",
        openapi_extra=INVOCATIONS_BODY,
        responses=ERRORS,
        response_model=RowPredictions,
    )
    async def invocations(request: Request) -> JSONResponse:
        """MLflow's scoring protocol: dataframe_split, dataframe_records, instances or inputs."""
        key = await api.caller(request)
        payload = api.inputs.json(await api.inputs.body(request), "The body")
        rows = table_rows(payload)
        if rows is None:
            raise InvalidInput(
                "Send one of dataframe_split, dataframe_records, instances or inputs."
            )
        return await predict_rows(api, request, key, api.config_for(key), rows)

    return routes
