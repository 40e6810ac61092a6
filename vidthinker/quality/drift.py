"""Drift of a run (or of some shards) against pooled earlier ones: PSI and Jensen-Shannon divergence of
the instruction-type mix and of frames/clips per QA, and the change of the error rate and of the
none/all retrieval shares, each judged against the thresholds in `vidthinker.quality.models`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from vidthinker.quality.distributions import Distribution
from vidthinker.quality.merge import merge_figures
from vidthinker.quality.models import (
    ERROR_RATE_ALERT_PP,
    ERROR_RATE_WARN_PP,
    MIN_DRIFT_RECORDS,
    PSI_ALERT,
    PSI_WARN,
    SHARE_ALERT_PP,
    SHARE_WARN_PP,
    DriftCheck,
    DriftLevel,
    DriftReport,
    QualityFigures,
    RunQuality,
)

# Frames/clips per QA are compared across runs in these buckets (small counts exact, long tails pooled).
COUNT_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 7, 9, 13, 21, 41)


def _bucket_counts(dist: Distribution) -> dict[str, float]:
    """Frames/clips-per-QA value counts pooled into COUNT_BUCKETS ("0", "1", ..., "7-8", "41+")."""
    out: dict[str, float] = {}
    edges = list(COUNT_BUCKETS) + [math.inf]
    for lo, hi in itertools.pairwise(edges):
        label = str(lo) if hi == lo + 1 else (f"{lo}+" if hi == math.inf else f"{lo}-{int(hi) - 1}")
        out[label] = float(sum(n for v, n in (dist.values or {}).items() if lo <= v < hi))
    return out


def _shares(counts: Mapping[str, float], keys: Sequence[str]) -> np.ndarray:
    total = sum(counts.get(k, 0.0) for k in keys)
    return np.array([counts.get(k, 0.0) / total if total else 0.0 for k in keys])


def psi(current: np.ndarray, baseline: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index of two share vectors (epsilon-smoothed, renormalised)."""
    p = (current + eps) / (current + eps).sum()
    q = (baseline + eps) / (baseline + eps).sum()
    return float(np.sum((p - q) * np.log(p / q)))


def js_divergence(current: np.ndarray, baseline: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2: 0 = same, 1 = disjoint)."""
    p = current / current.sum() if current.sum() else current
    q = baseline / baseline.sum() if baseline.sum() else baseline
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return max(0.0, min(1.0, 0.5 * kl(p, m) + 0.5 * kl(q, m)))


def _level(value: float, warn: float, alert: float) -> DriftLevel:
    return "alert" if value >= alert else "warn" if value >= warn else "ok"


def _distribution_check(metric: str, current: Mapping[str, float], baseline: Mapping[str, float],
                        n_current: int, n_baseline: int) -> DriftCheck:
    keys = list(dict.fromkeys([*current, *baseline]))  # bucket order as given (frames: 0, 1, 2, ... 41+)
    p, q = _shares(current, keys), _shares(baseline, keys)
    check = DriftCheck(
        metric=metric, kind="distribution",
        current={k: round(float(v), 6) for k, v in zip(keys, p)},
        baseline={k: round(float(v), 6) for k, v in zip(keys, q)},
        psi=round(psi(p, q), 6), js=round(js_divergence(p, q), 6),
    )
    if min(n_current, n_baseline) < MIN_DRIFT_RECORDS:
        check.note = f"too few records to judge ({n_current} vs {n_baseline}, need {MIN_DRIFT_RECORDS})"
    else:
        check.level = _level(check.psi, PSI_WARN, PSI_ALERT)
    return check


def _rate_check(metric: str, current: float, baseline: float, n_current: int, n_baseline: int,
                warn_pp: float, alert_pp: float, *, rises_only: bool) -> DriftCheck:
    delta = (current - baseline) * 100
    check = DriftCheck(metric=metric, kind="rate", current=round(current, 6), baseline=round(baseline, 6),
                       delta_pp=round(delta, 3))
    if min(n_current, n_baseline) < MIN_DRIFT_RECORDS:
        check.note = f"too few records to judge ({n_current} vs {n_baseline}, need {MIN_DRIFT_RECORDS})"
    else:
        check.level = _level(delta if rises_only else abs(delta), warn_pp, alert_pp)
    return check


def _label(figures: QualityFigures) -> str:
    return figures.name if isinstance(figures, RunQuality) else getattr(figures, "shard", "?")


def drift_report(current: QualityFigures, previous: Sequence[QualityFigures]) -> DriftReport | None:
    """Compare a run (or a set of shards) with the pooled previous runs (or shards); None when there are none."""
    previous = [p for p in previous if p.records]
    if not previous:
        return None
    base = merge_figures(previous)
    base_good, cur_good = base["ok"], current.ok
    checks = [
        _distribution_check("instruction_type_mix", current.instruction_types, base["instruction_types"], cur_good, base_good),
        _distribution_check("frames_per_qa", _bucket_counts(current.frames_per_qa), _bucket_counts(base["frames_per_qa"]),
                            cur_good, base_good),
        _distribution_check("clips_per_qa", _bucket_counts(current.clips_per_qa), _bucket_counts(base["clips_per_qa"]),
                            cur_good, base_good),
        _rate_check("error_rate", current.error_rate, base["error_rate"], current.records, base["records"],
                    ERROR_RATE_WARN_PP, ERROR_RATE_ALERT_PP, rises_only=True),
        _rate_check("retrieval_none_share", current.retrieval.none_share, base["retrieval"].none_share,
                    current.retrieval.records, base["retrieval"].records, SHARE_WARN_PP, SHARE_ALERT_PP, rises_only=False),
        _rate_check("retrieval_all_share", current.retrieval.all_share, base["retrieval"].all_share,
                    current.retrieval.records, base["retrieval"].records, SHARE_WARN_PP, SHARE_ALERT_PP, rises_only=False),
    ]
    rank = {"ok": 0, "warn": 1, "alert": 2}
    return DriftReport(
        baseline_runs=[_label(p) for p in previous],
        baseline_records=base["records"],
        level=max((c.level for c in checks), key=rank.__getitem__),
        checks=checks,
    )
