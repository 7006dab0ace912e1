"""One metric's points in growable numpy buffers, indexed as they arrive for display at any
length: a refresh costs what was appended, not what was there."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]


class Series:
    """One metric's points in growable buffers: step, wall time, epoch (NaN when unknown), value.

    For display at any size it keeps, as points arrive, the index of the minimum and maximum of
    each bucket of ``width`` consecutive points (at most ``BUCKETS`` buckets: when there would be
    more, neighbours merge and the width doubles), and the running exponential average for the
    last smoothing weight asked for. A refresh therefore costs what was appended, not the series'
    length."""

    BUCKETS = 4096

    __slots__ = ("_buckets", "_buffer", "_ema", "_hi", "_lo", "_n", "_width")

    def __init__(self) -> None:
        self._buffer = np.empty((4, 256), dtype=np.float64)
        self._n = 0
        self._width = 1
        self._buckets = 0
        self._lo = np.empty(0, dtype=np.int64)
        self._hi = np.empty(0, dtype=np.int64)
        self._ema: tuple[float, Floats, int] | None = None  # weight, running average, length

    def extend(self, rows: Sequence[tuple[float, float, float, float]]) -> None:
        if rows:
            self.extend_columns(np.asarray(rows, dtype=np.float64).T)

    def extend_columns(self, columns: NDArray[np.float64]) -> None:
        """Append points given as four rows: steps, times, epochs, values."""
        count = columns.shape[1]
        if not count:
            return
        need = self._n + count
        if need > self._buffer.shape[1]:
            grown = np.empty((4, max(need, 2 * self._buffer.shape[1])), dtype=np.float64)
            grown[:, : self._n] = self._buffer[:, : self._n]
            self._buffer = grown
        self._buffer[:, self._n : need] = columns
        self._n = need
        self._index()

    def _index(self) -> None:
        values = self._buffer[3]
        while True:
            width = self._width
            done = self._buckets * width
            complete = (self._n - done) // width
            if complete:
                block = values[done : done + complete * width].reshape(complete, width)
                base = done + np.arange(complete, dtype=np.int64) * width
                self._lo = np.concatenate([self._lo, base + block.argmin(axis=1)])
                self._hi = np.concatenate([self._hi, base + block.argmax(axis=1)])
                self._buckets += complete
            if self._buckets <= self.BUCKETS:
                return
            pairs = self._buckets // 2  # an odd last bucket is read again at the new width
            lo = self._lo[: 2 * pairs].reshape(pairs, 2)
            hi = self._hi[: 2 * pairs].reshape(pairs, 2)
            self._lo = np.where(values[lo[:, 0]] <= values[lo[:, 1]], lo[:, 0], lo[:, 1])
            self._hi = np.where(values[hi[:, 0]] >= values[hi[:, 1]], hi[:, 0], hi[:, 1])
            self._buckets, self._width = pairs, width * 2

    def candidates(self) -> NDArray[np.int64]:
        """Indices that hold every bucket's minimum and maximum, and the first and last point:
        at most about 2 * BUCKETS, whatever the length."""
        n = self._n
        if n <= 2 * self.BUCKETS:
            return np.arange(n, dtype=np.int64)
        done = self._buckets * self._width
        tail = self._buffer[3, done:n]
        extra = [0, n - 1]
        if len(tail):
            extra += [done + int(tail.argmin()), done + int(tail.argmax())]
        chosen = np.concatenate([self._lo, self._hi, np.asarray(extra, dtype=np.int64)])
        return np.unique(chosen)

    def running_average(self, weight: float) -> Floats:
        """TensorBoard's exponential moving average before debiasing, kept up to date."""
        from scipy.signal import lfilter

        if self._ema is None or self._ema[0] != weight:
            self._ema = (weight, np.empty(self._buffer.shape[1], dtype=np.float64), 0)
        _, done, length = self._ema
        if length < self._n:
            if self._n > len(done):
                grown = np.empty(self._buffer.shape[1], dtype=np.float64)
                grown[:length] = done[:length]
                done = grown
            previous = float(done[length - 1]) if length else 0.0
            new, _ = lfilter(
                [1 - weight],
                [1, -weight],
                self._buffer[3, length : self._n],
                zi=[weight * previous],
            )
            done[length : self._n] = new
            self._ema = (weight, done, self._n)
        return done[: self._n]

    def __len__(self) -> int:
        return self._n

    def snapshot(self) -> NDArray[np.float64]:
        """The four columns as they are now (steps, times, epochs, values). Later appends do
        not change them: the length is read before the buffer, and a grown buffer starts with
        the same points."""
        count = self._n
        return self._buffer[:, :count]

    @property
    def steps(self) -> Floats:
        return self._buffer[0, : self._n]

    @property
    def times(self) -> Floats:
        return self._buffer[1, : self._n]

    @property
    def epochs(self) -> Floats:
        return self._buffer[2, : self._n]

    @property
    def values(self) -> Floats:
        return self._buffer[3, : self._n]
