"""The model API's state, shared by its routes and the web app's Deployment page: the served
models, the callers' keys, the input readers, the predictions and the stored configurations."""

from __future__ import annotations

import base64
import threading
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from crispml.core.apikeys import ApiKey
from crispml.core.modeling import ModelVersion
from crispml.services import Services
from crispml.serving.batching import BatchSettings
from crispml.serving.framing import Framing, Result, article_result
from crispml.serving.inputs import Inputs
from crispml.serving.keys import KeyCache
from crispml.serving.limits import ApiLimits, api_limits
from crispml.serving.models import Served
from crispml.serving.predictions import Predictions
from crispml.serving.registry import Registry

if TYPE_CHECKING:
    from crispml.settings import Settings


class ModelApi:
    """One model API: what its routes share (``crispml serve``'s, or the web app's /api/)."""

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
        self.limits = limits or ApiLimits()
        self.inputs = Inputs(self.limits)
        self.predictions = Predictions(batching or BatchSettings(), self.limits.timeout_s)
        self.registry = Registry(
            services,
            selection,
            public=public,
            threads=threads,
            timeout_s=self.limits.timeout_s,
            dropped=self.predictions.forget,
        )
        self.keys = KeyCache(self._verify, Registry.REFRESH_S)
        self.configs: dict[str, dict[str, Any]] = {}  # per API key (or "public")

    def _verify(self, presented: str) -> ApiKey | None:
        return self.services.apikeys.verify(presented)

    async def caller(self, request: Request) -> ApiKey | None:
        """The caller's API key, once the deployments are followed (when due); None for a
        caller without one, who may use public models only (a 401 when there are none)."""
        if self.registry.due():
            await run_in_threadpool(self.registry.refresh)
        return await self.keys.check(request, anonymous=bool(self.registry.public_models))

    def config_for(self, key: ApiKey | None) -> dict[str, Any]:
        """A copy of the configuration the caller last sent to /configs (``{}`` if none)."""
        return dict(self.configs.get(key.key_id if key else "public", {}))

    def keep_config(self, key: ApiKey | None, config: dict[str, Any]) -> None:
        self.configs[key.key_id if key else "public"] = config

    def served(self, version: ModelVersion) -> Served:
        """A deployed version, loaded (the Deployment page's try-it form shares the API's
        copy: one copy of each model per process)."""
        return self.registry.served(version)

    def try_image(self, served: Served, data: bytes, confidence: float) -> Result:
        """One image through ``served`` as ``/predict`` answers it (the article's result and
        the overlay, base64), for the Deployment page's try-it form: the same limits,
        framing and result as the API, through one public call."""
        picture = self.inputs.image(base64.b64encode(data).decode(), 0)
        framing = Framing.of(picture, {})
        found = framing.back(served.predict_images([framing.picture], overlay=True)[0], True)
        return article_result(served.weight, found, confidence, None, True)

    def refresh(self) -> None:
        self.registry.refresh()

    def close(self) -> None:
        self.registry.close()


def batch_settings(settings: Settings) -> BatchSettings:
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
