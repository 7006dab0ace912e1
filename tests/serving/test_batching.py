"""Adaptive micro-batching, on a real event loop with a real thread pool."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from PIL import Image
from starlette.concurrency import run_in_threadpool

from crispml.core.errors import InvalidInput
from crispml.serving.batching import Batcher, BatchSettings
from crispml.serving.framing import Framing
from tests.helpers import in_thread


def doubling(calls: list[int], delay: float = 0.02) -> Any:
    def combine(parts: list[list[int]]) -> list[list[int]]:
        calls.append(sum(len(p) for p in parts))
        if any(-1 in p for p in parts):
            raise InvalidInput("-1 is not allowed")
        time.sleep(delay)  # the model's fixed cost per call
        return [[2 * x for x in part] for part in parts]

    return combine


def test_concurrent_requests_share_model_calls_and_get_their_own_results() -> None:
    calls: list[int] = []
    settings = BatchSettings(max_items=8, max_wait=0.005)
    batcher = Batcher(doubling(calls), settings, run_in_threadpool)

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.submit([i, i + 100]) for i in range(20)))

    results = in_thread(main())
    assert results == [[2 * i, 2 * i + 200] for i in range(20)]
    assert len(calls) < 20 and max(calls) <= 8  # shared, never above the maximum
    assert batcher.parts == 20


def test_a_lone_request_does_not_wait_for_company() -> None:
    calls: list[int] = []
    settings = BatchSettings(max_items=64, max_wait=1.0)
    batcher = Batcher(doubling(calls, 0), settings, run_in_threadpool)

    async def main() -> float:
        started = time.perf_counter()
        for i in range(5):
            assert await batcher.submit([i]) == [2 * i]
        return time.perf_counter() - started

    assert in_thread(main()) < 0.5  # five sequential requests, none waited the second
    assert calls == [1, 1, 1, 1, 1]


def test_bad_input_in_a_shared_call_fails_only_its_own_request() -> None:
    calls: list[int] = []
    settings = BatchSettings(max_items=64, max_wait=0.005)
    batcher = Batcher(doubling(calls), settings, run_in_threadpool)

    async def main() -> list[Any]:
        parts = [[1], [-1], [3], [4]]
        return await asyncio.gather(*(batcher.submit(p) for p in parts), return_exceptions=True)

    first, bad, *rest = in_thread(main())
    assert first == [2] and rest == [[6], [8]]
    assert isinstance(bad, InvalidInput) and "-1" in str(bad)


def test_image_max_dim_scales_down_and_square_pads_and_boxes_map_back() -> None:
    picture = Image.new("RGB", (400, 200))
    framed = Framing.of(picture, {"IMAGE_MAX_DIM": "100", "mode": "square"})
    assert framed.picture.size == (100, 100) and framed.scale == 0.25 and framed.pad == (0, 25)
    found = {"classes": ["a"], "scores": [1.0], "boxes": [[25, 0, 74, 99]]}
    assert framed.back(found, create=False)["boxes"] == [[0, 0, 196, 396]]
    assert Framing.of(picture, {"IMAGE_MIN_DIM": "1024", "mode": "2"}).picture is picture
    with pytest.raises(InvalidInput, match="IMAGE_MIN_DIM"):
        Framing.of(picture, {"IMAGE_MIN_DIM": "300", "IMAGE_MAX_DIM": "100"})


def test_scipys_regions_equal_the_flood_fills() -> None:
    import numpy as np

    from crispml.serving.models import _jobside

    torch_models = _jobside("crispml_algos.torch_models")
    generator = np.random.default_rng(3)
    for _ in range(20):
        mask = generator.integers(0, 4, size=(24, 31)).astype("uint8")
        mask[generator.random(mask.shape) < 0.4] = 0
        fast, slow = torch_models.components(mask), torch_models.components_python(mask)
        assert [label for label, _ in fast] == [label for label, _ in slow]
        assert all((a == b).all() for (_, a), (_, b) in zip(fast, slow, strict=True))


def test_rows_without_preparation_steps_need_finite_numbers() -> None:
    from datetime import UTC, datetime

    from crispml.core.modeling import ModelVersion
    from crispml.serving.models import Served

    version = ModelVersion(
        "m", 1, "run", "knn", "classification", "system", {}, {}, {"features": ["a", "b"]},
        "/nowhere", "", 1, datetime.now(UTC),
    )  # fmt: skip
    served = Served(version, backend=None)  # type: ignore[arg-type]  # prepare needs none
    assert served.prepare([{"a": 1, "b": "2.5"}]).tolist() == [[1.0, 2.5]]
    with pytest.raises(InvalidInput, match=r"Row 1: 'b' is missing .*None"):
        served.prepare([{"a": 1, "b": 2}, {"a": 1, "b": None}])
    with pytest.raises(InvalidInput, match="finite"):
        served.prepare([{"a": float("inf"), "b": 2}])
    with pytest.raises(InvalidInput, match="must be a number"):
        served.prepare([{"a": 10**400, "b": 2}])
    with pytest.raises(InvalidInput, match="lack the feature"):
        served.prepare([{"a": 1}])


class RecordingModel:
    """A stand-in for a model's backend (the model's own work is not under test here): it
    answers each row with the sum of its features and records each call's rows and thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []  # (rows, thread id)

    def rows(self, columns: list[str], matrix: Any) -> list[Any]:
        import threading

        self.calls.append((len(matrix), threading.get_ident()))
        return [float(sum(row)) for row in matrix]


def test_raw_rows_are_batched_and_prepared_once_per_call_off_the_event_loop() -> None:
    import threading
    from datetime import UTC, datetime

    from crispml.core.modeling import ModelVersion
    from crispml.serving.models import Served
    from crispml.serving.predictions import Predictions

    version = ModelVersion(
        "m", 1, "run", "knn", "regression", "system", {}, {}, {"features": ["a", "b"]},
        "/nowhere", "", 1, datetime.now(UTC),
    )  # fmt: skip
    model = RecordingModel()
    served = Served(version, backend=model)  # type: ignore[arg-type]
    predictions = Predictions(BatchSettings(max_items=64, max_wait=0.005), timeout_s=30)
    good = [[{"a": i, "b": 1}, {"a": i, "b": 2}] for i in range(12)]
    mixed = [[{"a": 1, "b": 1}], [{"a": 5, "b": 1}, {"a": 5, "b": None}], [{"a": 3, "b": 1}]]
    loop_thread: list[int] = []

    async def main(requests: list[list[dict[str, Any]]]) -> list[Any]:
        loop_thread.append(threading.get_ident())
        calls = (predictions.rows(served, rows) for rows in requests)
        return await asyncio.gather(*calls, return_exceptions=True)

    prepared: list[tuple[int, int]] = []  # (rows, thread id) of each preparation
    prepare = served.prepare

    def recording_prepare(rows: list[dict[str, Any]]) -> Any:
        prepared.append((len(rows), threading.get_ident()))
        return prepare(rows)

    served.prepare = recording_prepare  # type: ignore[method-assign]
    assert in_thread(main(good)) == [[i + 1.0, i + 2.0] for i in range(12)]
    # Several requests' rows were prepared together, off the event loop, and went to the
    # model in the same call; each row was prepared and predicted once.
    assert len(prepared) < 12 and max(rows for rows, _ in prepared) > 2, prepared
    assert all(thread != loop_thread[0] for rows, thread in prepared if rows > 2)
    assert [rows for rows, _ in model.calls] == [rows for rows, _ in prepared]
    assert sum(rows for rows, _ in prepared) == 24
    # A bad row fails its own request only, with its own row's number.
    first, bad, last = in_thread(main(mixed))
    assert (first, last) == ([2.0], [4.0])
    assert isinstance(bad, InvalidInput) and "Row 1: 'b' is missing" in str(bad)
