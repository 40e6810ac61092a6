"""Distributions merge across shards and give numpy's quantiles; they survive a JSON round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vidthinker.quality import distributions as Q
from vidthinker.quality.distributions import merge_distributions


def test_distributions_merge_and_quantiles():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 30, 500), rng.integers(5, 60, 300)
    da, db = Q._Dist(), Q._Dist()
    da.add_many(a)
    db.add_many(b)
    merged = merge_distributions([da.model(), db.model()])
    both = np.concatenate([a, b])
    assert merged.count == len(both) and merged.sum == both.sum()
    for q in Q.QUANTILES:
        assert merged.quantiles[Q._q_name(q)] == pytest.approx(np.quantile(both, q))
    lat = rng.gamma(2.0, 1.0, 2000)
    dl = Q._Dist(Q.LATENCY_EDGES)
    dl.add_many(lat)
    model = dl.model()
    assert model.quantiles["p50"] == pytest.approx(np.quantile(lat, 0.5), rel=0.25)
    assert sum(model.histogram.counts) == 2000
    # JSON round trip (edges stay finite, integer keys come back as ints)
    again = Q.Distribution.model_validate_json(model.model_dump_json())
    assert again == model and all(math.isfinite(e) for e in again.histogram.edges)
    counts = Q.Distribution.model_validate_json(merged.model_dump_json())
    assert counts == merged
    assert json.loads(merged.model_dump_json())["values"]
