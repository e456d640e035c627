"""A cumulative histogram with fixed buckets: what a metrics exporter needs, nothing more.

It lives in the core, clock-free and I/O-free, so the transport (tick lag and duration) and
the stores (write latency) can record into it without either importing the other, and so the
core never imports a metrics library. ``observe`` is one bisect and three additions; the caller
measures the value.

Reading it from another thread (a scrape) needs no lock: ``snapshot`` copies the counts in one
step, and its total is taken from those counts, so the buckets and the count always agree (the
sum may miss an observation that was half-recorded, which no reader can tell from timing).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

# Seconds: 50 µs to 2.5 s, about 2.5x apart. A tick at 30 Hz has 33 ms to do its work; a store
# write is tens of microseconds in memory or in SQLite's WAL, milliseconds with an fsync.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """``buckets``: (upper bound, observations <= it), ascending, ending with +inf, whose
    count is ``count``."""

    buckets: tuple[tuple[float, int], ...]
    sum: float

    @property
    def count(self) -> int:
        return self.buckets[-1][1]


class Histogram:
    """Observations counted into buckets by upper bound (inclusive, as Prometheus's ``le``),
    plus their sum. Counts only grow."""

    __slots__ = ("_counts", "bounds", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        ordered = tuple(float(bound) for bound in bounds)
        if not ordered or any(b >= a for a, b in zip(ordered[1:], ordered, strict=False)):
            raise ValueError("histogram bounds must be a non-empty, strictly ascending sequence")
        if ordered[-1] == float("inf"):
            ordered = ordered[:-1]  # +inf is always the last bucket
        self.bounds = ordered
        self._counts = [0] * (len(ordered) + 1)  # per bucket, not cumulative; last: > all bounds
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self._counts)

    def snapshot(self) -> HistogramSnapshot:
        counts = self._counts.copy()  # one step: consistent even while another thread observes
        total = self.sum
        cumulative: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return HistogramSnapshot(buckets=tuple(cumulative), sum=total)
