"""A plain histogram: bucket counts, a sum and a count, for latencies the modules keep.

Modules observe into it on their own threads (`observe`); the metrics module reads
`snapshot` at scrape time and renders it in Prometheus' format. Nothing here knows
Prometheus, threads or clocks, so the sans-I/O cores can keep one. Not thread-safe:
an owner observing from several threads holds a lock of its own around both calls.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TypedDict

# Upper bounds in seconds: delivery to an edge and end to end (a LAN edge acks in
# milliseconds, one behind a slow link or a backlog in seconds to minutes).
DELIVERY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
# Kubernetes API requests (client-go's rest_client_request_duration_seconds, shorter).
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HistogramData(TypedDict):
    """A histogram as JSON-ready data: per-bucket counts (not cumulative; the last one
    is above every bound), and the sum of the observations."""

    bounds: list[float]
    counts: list[int]  # len(bounds) + 1
    sum: float


def cumulative(data: HistogramData) -> list[tuple[float, int]]:
    """(upper bound, observations at or below it), +Inf last: Prometheus' buckets."""
    out, running = [], 0
    for bound, count in zip((*data["bounds"], float("inf")), data["counts"], strict=True):
        running += count
        out.append((bound, running))
    return out


class Histogram:
    """Observations counted into fixed buckets (upper bounds inclusive, as Prometheus)."""

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError(f"bucket bounds must be increasing and distinct: {bounds}")
        self._bounds = tuple(float(b) for b in bounds)  # upper bounds, increasing
        self._counts = [0] * (len(self._bounds) + 1)  # per bucket; the last is +Inf
        self._sum = 0.0  # of every observation

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def snapshot(self) -> HistogramData:
        return {"bounds": list(self._bounds), "counts": list(self._counts), "sum": self._sum}
