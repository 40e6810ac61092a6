"""Drift: PSI and Jensen-Shannon divergence, a shifted run flagged and a copy not, new shards against the rest."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vidthinker.quality.drift import js_divergence, psi
from vidthinker.quality.run import compute_run_quality
from vidthinker.quality.runs import shard_paths


def test_drift_flags_the_shifted_run_and_not_a_copy(runs, tmp_path):
    base = [compute_run_quality(r, write=False) for r in runs[:2]]
    drifted = compute_run_quality(runs[2], previous_runs=base, write=False)
    assert drifted.drift.level == "alert"
    levels = {c.metric: c.level for c in drifted.drift.checks}
    assert levels["retrieval_all_share"] == "alert" and levels["frames_per_qa"] == "alert"
    same = compute_run_quality(runs[1], previous_runs=[runs[1]], write=False)
    assert same.drift.level == "ok"
    assert all((c.psi or 0) < 1e-9 and (c.js or 0) < 1e-9 and not c.delta_pp for c in same.drift.checks)
    assert compute_run_quality(runs[0], write=False).drift is None


def test_psi_and_js():
    p = np.array([0.5, 0.3, 0.2])
    assert psi(p, p) == pytest.approx(0) and js_divergence(p, p) == pytest.approx(0)
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    q = np.array([0.2, 0.3, 0.5])
    assert psi(p, q) == pytest.approx(float(np.sum((p - q) * np.log(p / q))), rel=1e-3)
    assert 0 < js_divergence(p, q) < 1


def test_shard_drift_compares_new_shards_with_the_rest(runs, tmp_path):
    from vidthinker.quality.run import shard_drift

    folder = tmp_path / "out"
    (folder / "shards").mkdir(parents=True)
    for i, run in enumerate(runs):  # three "DAG runs" worth of shards in one out_dir
        for shard in shard_paths(run)[:2]:
            shutil.copy2(shard, folder / "shards" / f"r{i}-{shard.name}")
    new = [p for p in shard_paths(folder) if p.name.startswith("r2-")]
    report = shard_drift(folder, new)
    assert report is not None and report.level == "alert"
    assert sorted(report.baseline_runs) == sorted(p.name for p in shard_paths(folder) if not p.name.startswith("r2-"))
    assert shard_drift(folder, []) is None
