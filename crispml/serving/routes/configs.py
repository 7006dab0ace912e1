"""``/configs``: the prediction configuration, kept per API key (the article's)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from crispml.core.errors import InvalidInput
from crispml.serving.api import ModelApi
from crispml.serving.inputs import CONFIG_KEYS
from crispml.serving.schemas import CONFIGS_BODY, ERRORS, ConfigSet


def router(api: ModelApi) -> APIRouter:
    routes = APIRouter()

    @routes.post("/configs", openapi_extra=CONFIGS_BODY, responses=ERRORS)
    async def set_config(request: Request) -> ConfigSet:
        """A JSON file (multipart field ``file``): the prediction configuration used until the
        next one, kept per API key."""
        key = await api.caller(request)
        form = await api.inputs.form(request)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("Send the configuration as a JSON file in the field 'file'.")
        config = api.inputs.json(await upload.read(), "The configuration file")
        if not isinstance(config, dict):
            raise InvalidInput("The configuration must be a JSON object.")
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise InvalidInput(
                f"Unknown configuration key(s) {', '.join(unknown)}; "
                f"known: {', '.join(CONFIG_KEYS)}."
            )
        served = api.registry.find(config, key)
        api.keep_config(key, config)
        return ConfigSet(message=f"Predictions now use {served.weight}.", config=config)

    @routes.get("/configs", responses=ERRORS)
    async def get_config(request: Request) -> dict[str, Any]:
        """The prediction configuration this API key last sent (``{}`` if none)."""
        return api.config_for(await api.caller(request))

    return routes
