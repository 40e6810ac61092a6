"""Reviewed figures of a run: precision with Wilson intervals, agreement (Cohen's kappa), beside ground truth.

Figures (`review_figures`), per run and per instruction type, over current reviews:

* frame precision: a record scores 1 for "right", 0.5 for "partly", 0 for "wrong"; several reviewers'
  scores of one record are averaged, so a record counts once. The figure is the mean score over
  reviewed records, with a Wilson 95% interval on (sum of scores, records) — for "partly" a
  half-success, which keeps the interval's width that of the record count;
* clip precision (right = 1, wrong = 0) and instruction-type accuracy, the same way;
* share reviewed: reviewed good records / good records (of the type);
* Cohen's kappa between reviewers, per verdict, on records reviewed by two or more reviewers (the
  first two reviewers of each record, by time); None when fewer than two such records or when the
  chance agreement is 1.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from vidthinker.quality.runs import find_runs, fresh_run_quality
from vidthinker.review.index import current_hashes, review_status, run_index, shards_signature
from vidthinker.review.table import Review, read_reviews, review_file_names

FRAME_SCORES = {"right": 1.0, "partly": 0.5, "wrong": 0.0}
BINARY_SCORES = {"right": 1.0, "wrong": 0.0}
Z95 = 1.959963984540054
TYPES = ("semantic_only", "motion_only", "semantic_motion", "no_clues", "unknown")


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (successes may be fractional); None when n == 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z * z / (4 * n * n))) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def cohen_kappa(pairs: Sequence[tuple[object, object]]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items; None for no items or chance agreement 1."""
    if not pairs:
        return None
    n = len(pairs)
    labels = sorted({a for a, _ in pairs} | {b for _, b in pairs}, key=str)
    observed = sum(1 for a, b in pairs if a == b) / n
    chance = sum((sum(1 for a, _ in pairs if a == k) / n) * (sum(1 for _, b in pairs if b == k) / n) for k in labels)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


class Proportion(BaseModel):
    n: int = 0
    score: float = 0.0
    value: float | None = None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, scores: Sequence[float]) -> Proportion:
        n, total = len(scores), float(sum(scores))
        interval = wilson(total, n)
        return cls(n=n, score=total, value=total / n if n else None,
                   low=interval[0] if interval else None, high=interval[1] if interval else None)

    def text(self) -> str:
        if not self.n:
            return "–"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


class GroupReview(BaseModel):
    records: int = Field(0, description="good records in the run (of the type)")
    reviewed: int = Field(0, description="of them, with a current review")
    share_reviewed: float = 0.0
    frames: Proportion = Field(default_factory=Proportion)
    clips: Proportion = Field(default_factory=Proportion)
    type_accuracy: Proportion = Field(default_factory=Proportion)


class RunReview(BaseModel):
    run: str
    run_dir: str
    reviews: int = 0
    current: int = 0
    outdated: int = 0
    gone: int = 0
    reviewers: list[str] = Field(default_factory=list)
    groups: dict[str, GroupReview] = Field(default_factory=dict, description="'all' and each instruction type")
    double_reviewed: int = 0
    kappa: dict[str, float | None] = Field(default_factory=dict, description="frames / clips / type")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


_figures_cache: OrderedDict[tuple, RunReview] = OrderedDict()
_lock = threading.Lock()


def review_figures(run_dir: str | Path, reviews: Sequence[Review] | None = None) -> RunReview:
    """Reviewed precision and agreement of a run from its reviews table (see the module docstring);
    remembered while the run's shards and reviews are unchanged."""
    run_dir = Path(run_dir)
    if reviews is None:
        key = (str(run_dir.resolve()), shards_signature(run_dir), review_file_names(run_dir))
        with _lock:
            if key in _figures_cache:
                return _figures_cache[key]
        figures = _review_figures(run_dir, read_reviews(run_dir))
        with _lock:
            _figures_cache[key] = figures
            while len(_figures_cache) > 32:
                _figures_cache.popitem(last=False)
        return figures
    return _review_figures(run_dir, list(reviews))


def _review_figures(run_dir: Path, reviews: list[Review]) -> RunReview:
    index = run_index(run_dir)
    hashes = current_hashes(run_dir, {r.record_id for r in reviews}, index)
    status = review_status(reviews, hashes)
    latest: dict[tuple[str, str], Review] = {}
    for review, state in zip(reviews, status):
        if state == "current":
            latest[(review.record_id, review.reviewer)] = review  # oldest first: the newest stays
    by_record: dict[str, list[Review]] = {}
    for review in sorted(latest.values(), key=lambda r: (r.reviewed_at, r.review_id)):
        by_record.setdefault(review.record_id, []).append(review)
    kinds = {i: str(index.types[h]) for i, h in index.locate(by_record).items()}
    counts = index.type_counts()
    out = RunReview(run=run_dir.name, run_dir=str(run_dir), reviews=len(reviews),
                    current=status.count("current"), outdated=status.count("outdated"), gone=status.count("gone"),
                    reviewers=sorted({r.reviewer for r in reviews}))
    for group in ["all"] + [t for t in TYPES if t in counts]:
        members = [i for i in by_record if group == "all" or kinds.get(i) == group]
        frames, clips, types = [], [], []
        for record_id in members:
            f = _mean([FRAME_SCORES[r.frames] for r in by_record[record_id] if r.frames])
            c = _mean([BINARY_SCORES[r.clips] for r in by_record[record_id] if r.clips])
            t = _mean([1.0 if r.type_ok else 0.0 for r in by_record[record_id] if r.type_ok is not None])
            frames += [f] if f is not None else []
            clips += [c] if c is not None else []
            types += [t] if t is not None else []
        total = len(index) if group == "all" else counts.get(group, 0)
        out.groups[group] = GroupReview(records=total, reviewed=len(members), share_reviewed=len(members) / total if total else 0.0,
                                        frames=Proportion.of(frames), clips=Proportion.of(clips), type_accuracy=Proportion.of(types))
    doubles = [rs for rs in by_record.values() if len({r.reviewer for r in rs}) >= 2]
    out.double_reviewed = len(doubles)
    for name, get in (("frames", lambda r: r.frames), ("clips", lambda r: r.clips), ("type", lambda r: r.type_ok)):
        pairs = [(get(rs[0]), get(rs[1])) for rs in doubles if get(rs[0]) is not None and get(rs[1]) is not None]
        out.kappa[name] = cohen_kappa(pairs) if len(pairs) >= 2 else None
    return out


def review_trend(root: str | Path) -> list[RunReview]:
    """Reviewed figures of every run under `root` (oldest first) that has reviews."""
    return [review_figures(run) for run in find_runs(root) if review_file_names(run)]


def ground_truth_beside(run_dir: str | Path, figures: RunReview) -> list[dict]:
    """Rows of reviewed vs ground-truth figures per type, for runs on a synthetic set (else [])."""
    quality = fresh_run_quality(run_dir)
    if quality is None or not quality.agreement:
        return []
    rows = []
    for group, gt in quality.agreement.items():
        mine = figures.groups.get(group, GroupReview())
        rows.append({"type": group, "reviewed records": mine.reviewed,
                     "frame precision (reviewed)": mine.frames.value, "frame precision (GT)": gt.frame_precision,
                     "clip precision (reviewed)": mine.clips.value, "clip precision (GT)": gt.clip_precision,
                     "type accuracy (reviewed)": mine.type_accuracy.value, "type accuracy (GT)": gt.type_accuracy,
                     "GT records": gt.records})
    return rows
