"""Predictions through the micro-batchers (crispml/serving/batching.py), one per served model
and kind, within the time limit: images framed and answered as the article's results, table
rows as one prediction each."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from crispml.core.errors import InvalidInput
from crispml.serving.batching import Batcher, BatchSettings
from crispml.serving.framing import Found, Framing, Result, article_result, shown_classes
from crispml.serving.inputs import number
from crispml.serving.models import InProcess, Served

if TYPE_CHECKING:
    from PIL import Image

T = TypeVar("T")
Rows = list[dict[str, Any]]  # one request's table rows, raw: feature -> value


class Predictions:
    """The batchers of the served models and the calls through them."""

    def __init__(self, batching: BatchSettings, timeout_s: float) -> None:
        self.batching = batching
        self.timeout_s = timeout_s
        # (weight, id of the loaded copy) -> its batcher; images also by overlay or not
        self._rows: dict[tuple[str, int], Batcher[Rows, list[Any]]] = {}
        self._images: dict[tuple[str, bool, int], Batcher[list[Image.Image], list[Found]]] = {}

    def forget(self, weight: str) -> None:
        """Drop the batchers of a weight no longer served."""
        # Copies of the keys: requests add batchers (on the event loop) while this runs in the
        # refresh's thread.
        for rows in [k for k in list(self._rows) if k[0] == weight]:
            self._rows.pop(rows, None)
        for images in [k for k in list(self._images) if k[0] == weight]:
            self._images.pop(images, None)

    async def images(
        self,
        served: Served,
        pictures: list[Image.Image],
        config: dict[str, Any],
        create: bool,
    ) -> list[Result]:
        """The article's result for each picture (and its overlay when ``create``), with the
        configuration's framing, minimum confidence and classes."""
        minimum = number(config, "DETECTION_MIN_CONFIDENCE", 0.0)
        wanted = shown_classes(config)
        framed = [Framing.of(picture, config) for picture in pictures]
        batcher = self._images_batcher(served, overlay=create)
        found_all = await self.timed(batcher.submit([f.picture for f in framed]))
        return [
            article_result(served.weight, frame.back(found, create), minimum, wanted, create)
            for frame, found in zip(framed, found_all, strict=True)
        ]

    async def rows(self, served: Served, rows: list[dict[str, Any]]) -> list[Any]:
        """One prediction per row (prepared as the model's data was). The raw rows go into
        the batcher: the combined batch is prepared once, off the event loop."""
        if not rows:
            raise InvalidInput("No rows to predict.")
        return await self.timed(self._rows_batcher(served).submit(rows))

    async def timed(self, call: Awaitable[T]) -> T:
        """``call``'s result, or a 504 once it took longer than the time limit."""
        try:
            return await asyncio.wait_for(call, self.timeout_s)
        except TimeoutError:
            raise HTTPException(
                504, f"The prediction took longer than {self.timeout_s:g} s."
            ) from None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a thread (off the event loop), within the time limit."""
        return await self.timed(run_in_threadpool(fn, *args))

    def _rows_batcher(self, served: Served) -> Batcher[Rows, list[Any]]:
        key = (served.weight, id(served))
        found = self._rows.get(key)
        if found is None:
            found = self._rows[key] = Batcher(
                _rows_combiner(served), self.batching, run_in_threadpool, inline=_inline(served)
            )
        return found

    def _images_batcher(
        self, served: Served, *, overlay: bool
    ) -> Batcher[list[Image.Image], list[Found]]:
        key = (served.weight, overlay, id(served))
        found = self._images.get(key)
        if found is None:
            combine = _images_combiner(served, overlay=overlay)
            found = self._images[key] = Batcher(
                combine, self.batching, run_in_threadpool, inline=_inline(served)
            )
        return found


def _inline(served: Served) -> bool:
    """A model in this process may answer on the event loop; never wait on a worker there."""
    return isinstance(served.backend, InProcess)


def _rows_combiner(served: Served) -> Callable[[list[Rows]], list[list[Any]]]:
    def combine(parts: list[Rows]) -> list[list[Any]]:
        # One preparation and one model call for every request's rows. A bad row fails the
        # whole batch; the batcher then answers each request alone, so the error names the
        # row of the request that sent it, and the others get their predictions.
        predicted = served.predict_rows([row for part in parts for row in part])
        bounds = itertools.accumulate((len(p) for p in parts), initial=0)
        return [predicted[a:b] for a, b in itertools.pairwise(bounds)]

    return combine


def _images_combiner(
    served: Served, *, overlay: bool
) -> Callable[[list[list[Image.Image]]], list[list[Found]]]:
    def combine(parts: list[list[Image.Image]]) -> list[list[Found]]:
        found = served.predict_images([p for part in parts for p in part], overlay)
        out, start = [], 0
        for part in parts:
            out.append(found[start : start + len(part)])
            start += len(part)
        return out

    return combine
