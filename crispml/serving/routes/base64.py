"""``/base64``: a zip of images as base64 strings (the article's)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from crispml.core.errors import InvalidInput
from crispml.serving.api import ModelApi
from crispml.serving.schemas import BASE64_BODY, ERRORS


def router(api: ModelApi) -> APIRouter:
    routes = APIRouter()

    @routes.post("/base64", openapi_extra=BASE64_BODY, responses=ERRORS, response_model=list[str])
    async def to_base64(request: Request) -> Response:
        """A zip of images (multipart field ``file``): the base64 string of each image."""
        await api.caller(request)
        form = await api.inputs.form(request)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("Send a zip of images in the field 'file'.")
        # The upload as Starlette spooled it (to disk past 1 MB), not read into memory; the
        # answer's bytes are built once, entry by entry.
        answer = await api.predictions.run(api.inputs.zip_images, upload.file)
        return Response(memoryview(answer), media_type="application/json")

    return routes
