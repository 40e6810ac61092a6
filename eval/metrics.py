"""Grounding metrics: how well a selector's frame scores / Top-K selection match the ground-truth frames.

All ids are 1-fps grid ids (``vidthinker.video``: grid id k is the frame shown at t = k s), so a
tolerance of N grid ids is a tolerance of N seconds.

Per question, with S = the selected ids (Top-K, a set), G = the ground-truth ids (a set),
C = the candidate ids the selector scored and s = their scores:

``recall``        |S ∩ G| / |G|
``precision``     |S ∩ G| / |S|
``f1``            2·P·R / (P + R)  (0 when P + R = 0)
``nrecall``       |S ∩ G| / min(|S|, |G|) — recall against the best any K frames can do (K < |G| caps
                  plain recall at K/|G|, e.g. whole-video questions whose truth is every frame)
``hit``           1 if some selected frame is within ±N of a truth frame, else 0
``recall_tol``    fraction of truth frames with a selected frame within ±N grid ids (seconds)
``precision_tol`` fraction of selected frames with a truth frame within ±N
``f1_tol``        harmonic mean of the two (N = 0 gives the exact metrics)
``auc``           ROC AUC of the scores over C with labels 1[c ∈ G]: the probability that a random truth
                  frame scores above a random other frame, ties counting ½ (Mann–Whitney U / (n⁺·n⁻))
``ap``            average precision over C (scikit-learn's definition: Σₙ (Rₙ − Rₙ₋₁)·Pₙ over the
                  distinct score thresholds, highest first; tied frames enter together). Its mean over
                  questions is ``mAP``.

Truth frames that are not among the candidates (a video longer than the candidate cap) still count in
|G| for the selection metrics — missing them is a real miss — but AUC and AP can only rank candidates,
so they use the candidates' labels.

Undefined cases (value NaN, left out of every mean; the aggregate reports how many were left out):

* empty ground truth (G = ∅: nothing to find, e.g. an unannotated question): every metric is NaN.
  Scoring it 0 would punish a selector for a labelling gap, scoring it 1 would reward anything;
* AUC when C holds no truth frame or nothing but truth frames (one class only);
* AP when C holds no truth frame;
* a selection that is not available (a predictions file written for another K): its selection metrics.

An empty selection (K = 0, or a selector that picked nothing) with G ≠ ∅ scores recall 0, precision 0,
F1 0 and hit 0: selecting nothing found nothing (scikit-learn's ``zero_division=0``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NAN = float("nan")

SELECTION_METRICS = ("recall", "precision", "f1", "nrecall", "hit", "recall_tol", "precision_tol", "f1_tol")
SCORE_METRICS = ("auc", "ap")


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _near(ids: np.ndarray, targets: np.ndarray, tolerance: int) -> np.ndarray:
    """For each id: is some target within ±tolerance of it?"""
    if ids.size == 0:
        return np.zeros(0, dtype=bool)
    if targets.size == 0:
        return np.zeros(ids.size, dtype=bool)
    t = np.sort(targets)
    pos = np.searchsorted(t, ids)
    left = np.abs(ids - t[np.clip(pos - 1, 0, t.size - 1)])
    right = np.abs(t[np.clip(pos, 0, t.size - 1)] - ids)
    return np.minimum(left, right) <= tolerance


def selection_metrics(
    selected: Iterable[int] | None, truth: Iterable[int], tolerance: int = 1
) -> dict[str, float]:
    """The selection metrics of one question (see the module doc); ``selected=None``: not available."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    g = np.unique(np.asarray(list(truth), dtype=np.int64))
    if g.size == 0 or selected is None:
        return dict.fromkeys(SELECTION_METRICS, NAN)
    s = np.unique(np.asarray(list(selected), dtype=np.int64))
    if s.size == 0:
        return {name: 0.0 for name in SELECTION_METRICS}
    tp = float(np.intersect1d(s, g).size)
    recall, precision = tp / g.size, tp / s.size
    selected_near = _near(s, g, tolerance)
    truth_near = _near(g, s, tolerance)
    recall_tol, precision_tol = float(truth_near.mean()), float(selected_near.mean())
    return {
        "recall": recall,
        "precision": precision,
        "f1": _f1(precision, recall),
        "nrecall": tp / min(s.size, g.size),
        "hit": float(selected_near.any()),
        "recall_tol": recall_tol,
        "precision_tol": precision_tol,
        "f1_tol": _f1(precision_tol, recall_tol),
    }


def _labels(candidate_ids: Sequence[int], truth: Iterable[int]) -> np.ndarray:
    g = {int(t) for t in truth}
    return np.array([int(c) in g for c in candidate_ids], dtype=bool)


def auc_roc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """ROC AUC with ties counting ½ (average ranks); NaN when only one class is present."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in shape")
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return NAN
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    # average rank (1-based) of each tie group
    start = 0
    while start < s.size:
        end = start
        while end + 1 < s.size and sorted_s[end + 1] == sorted_s[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    u = ranks[y].sum() - pos * (pos + 1) / 2
    return float(u / (pos * neg))


def average_precision(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """AP = Σ (R_n − R_{n−1}) P_n over distinct thresholds (scikit-learn); NaN without positives."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in shape")
    pos = int(y.sum())
    if pos == 0:
        return NAN
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    # the last index of each group of tied scores is a threshold
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[last].astype(np.float64)
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / pos
    prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev) * precision))


def score_metrics(
    candidate_ids: Sequence[int], scores: Sequence[float] | None, truth: Iterable[int]
) -> dict[str, float]:
    truth = list(truth)
    if not truth or scores is None or len(candidate_ids) == 0:
        return dict.fromkeys(SCORE_METRICS, NAN)
    labels = _labels(candidate_ids, truth)
    return {"auc": auc_roc(scores, labels), "ap": average_precision(scores, labels)}


def metric_key(name: str, k: int | None = None) -> str:
    return name if k is None else f"{name}@{k}"


def question_metrics(
    candidate_ids: Sequence[int],
    scores: Sequence[float] | None,
    selections: Mapping[int, Sequence[int] | None],
    truth: Iterable[int],
    tolerance: int = 1,
) -> dict[str, float]:
    """All metrics of one question: ``auc``, ``ap`` and ``<selection metric>@K`` for every K."""
    truth = list(truth)
    out = score_metrics(candidate_ids, scores, truth)
    for k, chosen in selections.items():
        for name, value in selection_metrics(chosen, truth, tolerance).items():
            out[metric_key(name, k)] = value
    return out


# --------------------------------------------------------------------------- aggregation


@dataclass
class Summary:
    """Mean of one metric over the questions where it is defined."""

    mean: float
    n: int  # questions where it is defined
    undefined: int  # questions left out (NaN)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": None if math.isnan(self.mean) else self.mean,
            "n": self.n,
            "undefined": self.undefined,
        }


def summarise(values: Iterable[float]) -> Summary:
    v = np.asarray(list(values), dtype=np.float64)
    ok = ~np.isnan(v)
    n = int(ok.sum())
    return Summary(float(v[ok].mean()) if n else NAN, n, int(v.size - n))


@dataclass
class MetricTable:
    """Per-question metric rows of one selector, and their means overall and by group."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # {"doc_id", "group", "video", metric: value}

    def metrics(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            for key in row:
                if key not in ("doc_id", "group", "video"):
                    seen.setdefault(key, None)
        return list(seen)

    def overall(self) -> dict[str, Summary]:
        return {m: summarise(r.get(m, NAN) for r in self.rows) for m in self.metrics()}

    def by_group(self) -> dict[str, dict[str, Summary]]:
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            groups.setdefault(str(row.get("group") or "unknown"), []).append(row)
        return {
            g: {m: summarise(r.get(m, NAN) for r in rows) for m in self.metrics()}
            for g, rows in sorted(groups.items())
        }

    def values(self, metric: str) -> dict[str, float]:
        return {str(r["doc_id"]): float(r.get(metric, NAN)) for r in self.rows}


# --------------------------------------------------------------------------- confidence intervals


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion (default 95 %); (nan, nan) for n = 0."""
    if n <= 0:
        return NAN, NAN
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} outside 0..{n}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class PairedDiff:
    """Mean of (a − b) over paired questions with a bootstrap percentile interval."""

    diff: float
    low: float
    high: float
    p_value: float  # two-sided bootstrap p (share of resamples on the other side of 0, doubled)
    n: int
    clusters: int

    @property
    def verdict(self) -> str:
        if self.n == 0 or math.isnan(self.diff):
            return "no data"
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no significant difference"

    def as_dict(self) -> dict[str, Any]:
        clean = lambda x: None if math.isnan(x) else x
        return {
            "diff": clean(self.diff),
            "low": clean(self.low),
            "high": clean(self.high),
            "p_value": clean(self.p_value),
            "n": self.n,
            "clusters": self.clusters,
            "verdict": self.verdict,
        }


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    clusters: Sequence[Any] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDiff:
    """Bootstrap interval of mean(a − b) over paired observations (pairs with a NaN are dropped).

    With ``clusters`` (e.g. the video of each question) whole clusters are resampled — questions about one
    video are correlated, so resampling them independently would give too narrow an interval.
    """
    x = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    keys = np.asarray(list(clusters) if clusters is not None else range(len(x)), dtype=object)
    ok = ~np.isnan(x)
    x, keys = x[ok], keys[ok]
    if x.size == 0:
        return PairedDiff(NAN, NAN, NAN, NAN, 0, 0)
    _, inverse = np.unique(keys.astype(str), return_inverse=True)
    n_clusters = int(inverse.max()) + 1
    sums = np.bincount(inverse, weights=x, minlength=n_clusters)
    counts = np.bincount(inverse, minlength=n_clusters).astype(np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    boot = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    diff = float(x.mean())
    if np.all(boot == 0):
        p = 1.0
    else:
        p = float(min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())))
    return PairedDiff(diff, float(low), float(high), p, int(x.size), n_clusters)
