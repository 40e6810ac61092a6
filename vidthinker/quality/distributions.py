"""Numeric distributions that merge across shards: exact value counts for small integers (frames,
clips, words) and fixed-edge histograms for continuous figures (latency, tokens), with quantiles."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, Field

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# Fixed bin edges, so histograms of shards merge by adding counts (the last edge stands for infinity).
LATENCY_EDGES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 300.0, 1e9)
TOKEN_EDGES = (0.0, 1, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 1e12)


class Histogram(BaseModel):
    edges: list[float] = Field(description="bin i is [edges[i], edges[i+1]); the last edge may be inf")
    counts: list[int]


class Distribution(BaseModel):
    """A numeric distribution that merges across shards: exact value counts for small integers
    (frames, clips, words), fixed-edge histograms for continuous figures (latency, tokens)."""

    count: int = 0
    sum: float = 0.0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    quantiles: dict[str, float] = Field(default_factory=dict, description="p5, p25, p50, p75, p95")
    histogram: Histogram | None = None
    values: dict[int, int] | None = Field(default=None, description="exact counts by value (integer figures)")


def _q_name(q: float) -> str:
    return f"p{round(q * 100):d}"


class _Dist:
    """Accumulator behind a Distribution."""

    def __init__(self, edges: Sequence[float] | None = None):
        self.edges = tuple(edges) if edges is not None else None
        self.values: Counter[int] = Counter()
        self.bins = np.zeros(len(self.edges) - 1, dtype=np.int64) if self.edges else None
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add_many(self, data: np.ndarray) -> None:
        data = np.asarray(data)
        if data.size == 0:
            return
        self.count += int(data.size)
        self.sum += float(data.sum())
        self.min = min(self.min, float(data.min()))
        self.max = max(self.max, float(data.max()))
        if self.edges is None:
            uniques, counts = np.unique(data.astype(np.int64), return_counts=True)
            for value, n in zip(uniques.tolist(), counts.tolist()):
                self.values[value] += n
        else:
            idx = np.searchsorted(np.asarray(self.edges), data, side="right") - 1
            idx = np.clip(idx, 0, len(self.edges) - 2)
            self.bins += np.bincount(idx, minlength=len(self.edges) - 1)

    def merge(self, model: Distribution) -> None:
        if model.count == 0:
            return
        self.count += model.count
        self.sum += model.sum
        self.min = min(self.min, model.min if model.min is not None else math.inf)
        self.max = max(self.max, model.max if model.max is not None else -math.inf)
        if self.edges is None:
            self.values.update({int(k): v for k, v in (model.values or {}).items()})
        else:
            if model.histogram is None or tuple(model.histogram.edges) != self.edges:
                raise ValueError("cannot merge distributions with different bin edges")
            self.bins += np.asarray(model.histogram.counts, dtype=np.int64)

    def quantile(self, q: float) -> float:
        if self.count == 0:
            return math.nan
        if self.edges is None:
            keys = sorted(self.values)
            cum = np.cumsum([self.values[k] for k in keys])
            # linear interpolation between order statistics (numpy's default quantile)
            pos = q * (self.count - 1)
            lo = math.floor(pos)

            def at(k: int) -> float:
                return float(keys[int(np.searchsorted(cum, k + 1, side="left"))])

            v_lo = at(lo)
            return v_lo if lo + 1 >= self.count else v_lo + (at(lo + 1) - v_lo) * (pos - lo)
        target = q * self.count
        cum = 0
        for i, n in enumerate(self.bins):
            if n and cum + n >= target:
                lo = max(self.edges[i], self.min)
                hi = min(self.edges[i + 1], self.max)
                frac = (target - cum) / n
                return float(lo + (hi - lo) * frac)
            cum += n
        return self.max

    def model(self) -> Distribution:
        if self.count == 0:
            return Distribution(histogram=Histogram(edges=list(self.edges), counts=self.bins.tolist()) if self.edges else None,
                                values={} if self.edges is None else None)
        if self.edges is None:
            lo, hi = int(self.min), int(self.max)
            if hi - lo <= 60:
                edges = [float(v) for v in range(lo, hi + 2)]
                counts = [self.values.get(v, 0) for v in range(lo, hi + 1)]
            else:
                width = math.ceil((hi - lo + 1) / 40)
                edges = [float(lo + i * width) for i in range(41) if lo + (i - 1) * width <= hi]
                counts = [0] * (len(edges) - 1)
                for value, n in self.values.items():
                    counts[min((value - lo) // width, len(counts) - 1)] += n
            histogram = Histogram(edges=edges, counts=counts)
        else:
            histogram = Histogram(edges=list(self.edges), counts=self.bins.tolist())
        return Distribution(
            count=self.count,
            sum=round(self.sum, 6),
            min=self.min,
            max=self.max,
            mean=round(self.sum / self.count, 6),
            quantiles={_q_name(q): round(self.quantile(q), 6) for q in QUANTILES},
            histogram=histogram,
            values=dict(sorted(self.values.items())) if self.edges is None else None,
        )


def _dist_like(model: Distribution) -> _Dist:
    if model.values is not None:
        return _Dist()
    return _Dist(model.histogram.edges if model.histogram else None)


def merge_distributions(models: Iterable[Distribution]) -> Distribution:
    models = list(models)
    if not models:
        return _Dist().model()
    acc = _dist_like(models[0])
    for model in models:
        acc.merge(model)
    return acc.model()
