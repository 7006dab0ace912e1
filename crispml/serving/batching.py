"""Adaptive micro-batching: concurrent requests for one model share one model call.

A lone request is answered at once. When requests arrive while a call is running, they queue;
the next call takes them all (up to ``max_items`` rows or images), after letting requests that
are already arriving join it (at most ``max_wait`` seconds, and only while the queue grows and
the load is concurrent). So batching costs a
single client nothing and lets many clients share the model's fixed cost per call.

A lone request to a fast model (its calls take under ``INLINE_S`` on average) is even answered
on the event loop itself, saving the hop to a worker thread; slow models, models in worker
processes (``inline=False``) and concurrent requests always go to a thread, so the loop keeps
answering health checks and parsing the next requests meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence, Sized
from dataclasses import dataclass
from typing import Generic, TypeVar

from crispml.core.errors import CrispmlError, InvalidInput

Part = TypeVar("Part", bound=Sized)  # what one request sends: rows or images
Out = TypeVar("Out")  # what it gets back
T = TypeVar("T")
# parts -> one result per part; it runs in a worker thread.
Combine = Callable[[list[Part]], list[Out]]
# runs a combine off the event loop (run_in_threadpool)
Offload = Callable[[Combine[Part, Out], list[Part]], Awaitable[list[Out]]]


@dataclass(frozen=True)
class BatchSettings:
    max_items: int = 64
    max_wait: float = 0.002  # seconds


INLINE_S = 0.005
# Turns of the event loop without a new request after which a batch goes: a request takes a
# few turns from its bytes arriving to reaching submit().
IDLE_TURNS = 8


class Batcher(Generic[Part, Out]):
    """The queue of one model's requests of one kind, answered in shared calls."""

    def __init__(
        self,
        combine: Combine[Part, Out],
        settings: BatchSettings,
        offload: Offload[Part, Out],
        size: Callable[[Part], int] = len,
        *,
        inline: bool = False,
    ) -> None:
        self._inline = inline
        self._cost = INLINE_S * 4  # seconds per call, a running average; start by offloading
        self._combine = combine
        self._settings = settings
        self._offload = offload  # runs a blocking call off the event loop
        self._size = size
        self._queue: deque[tuple[Part, asyncio.Future[Out]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._concurrent = False
        self.calls = 0  # model calls made, for tests and metrics
        self.parts = 0  # requests answered

    async def submit(self, part: Part) -> Out:
        """The result for ``part`` (a list of rows or images), computed with others'."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append((part, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[Part, asyncio.Future[Out]]]:
        batch = [self._queue.popleft()]
        items = self._size(batch[0][0])
        while self._queue and items + self._size(self._queue[0][0]) <= self._settings.max_items:
            part = self._queue.popleft()
            items += self._size(part[0])
            batch.append(part)
        return [(p, f) for p, f in batch if not f.done()]  # skip requests that timed out

    def _queued_items(self) -> int:
        return sum(self._size(p) for p, _ in self._queue)

    async def _gather(self) -> None:
        """Let requests already arriving join the batch: yield to the event loop (which reads
        the sockets) while the queue grows, for at most ``max_wait``, never for a queue that
        has stopped growing."""
        deadline = time.perf_counter() + self._settings.max_wait
        idle = 0
        while self._queued_items() < self._settings.max_items and idle < IDLE_TURNS:
            before = len(self._queue)
            await asyncio.sleep(0)  # the loop reads the sockets and runs the handlers a step
            idle = 0 if len(self._queue) > before else idle + 1
            if time.perf_counter() >= deadline:
                return

    async def _drain(self) -> None:
        while self._queue:
            if self._concurrent and self._settings.max_wait > 0:
                await self._gather()
            batch = self._take()
            if not batch:
                continue
            await self._answer(batch)
            self._concurrent = len(batch) > 1 or bool(self._queue)

    async def _answer(self, batch: Sequence[tuple[Part, asyncio.Future[Out]]]) -> None:
        parts = [p for p, _ in batch]
        self.calls += 1
        lone = len(batch) == 1 and not self._concurrent and not self._queue
        started = time.perf_counter()
        try:
            if self._inline and lone and self._cost < INLINE_S:
                results = self._combine(parts)
            else:
                results = await self._offload(self._combine, parts)
        except (CrispmlError, ValueError, TypeError) as exc:  # the input's fault, not ours
            if len(batch) == 1:
                refused = (
                    exc
                    if isinstance(exc, CrispmlError)
                    else InvalidInput(f"The model refused the input: {exc}")
                )
                _fail(batch[0][1], refused)
                return
            for part, future in batch:  # one request's bad input must not fail the others
                await self._answer([(part, future)])
            self.calls -= 1
            return
        except Exception as exc:  # handed to each request's own handler
            for _, future in batch:
                _fail(future, exc)
            return
        self._cost = 0.8 * self._cost + 0.2 * (time.perf_counter() - started)
        self.parts += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            _resolve(future, result)


def _fail(future: asyncio.Future[T], error: BaseException) -> None:
    if not future.done():  # a request that timed out is no longer waiting
        future.set_exception(error)


def _resolve(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)
