"""Annotation quality: figures computed per shard and per run, stored next to the shards.

`compute_run_quality(run_dir)` reads a run's record shards batch by batch with column projection
(never whole records into Python) and writes

    <run>/quality/<shard stem>.json   ShardQuality: one shard's figures (reused while its content hash holds)
    <run>/quality/run.json            RunQuality: the shards merged, plus ground-truth agreement,
                                      repeated questions across videos and drift against previous runs

Figures: records and error rate by stage and by reason; frames and clips per QA (histogram, quantiles);
instruction-type mix; share of retrievals that returned no clip / every clip; caption length; tokens,
calls and latency per stage; agreement with ground truth where the manifest has it (synthetic sets);
near-duplicate questions of one video (normalised text, token Jaccard); drift against previous runs
(PSI and Jensen-Shannon divergence of the type mix and of frames/clips per QA, error-rate change).

`ground_truth_agreement(records, manifest)` keeps its record-level API: frame and clip precision/recall
against the ground truth and whether stage 2 named the right instruction type, overall and by type.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
import os
import re
import tempfile
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from statistics import fmean
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import typer
from pydantic import BaseModel, Field

from vidthinker.preflight import file_mode
from vidthinker.schema import ManifestRow, SchemaError, VideoITGRecord
from vidthinker.shards import error_reason as shards_error_reason

QUALITY_VERSION = "2"  # 2: errors by class (stored figures of another version are recomputed)
QUALITY_DIR = "quality"
RUN_FILE = "run.json"
STAGE_ORDER = ("probe", "decode", "caption", "retrieve", "localize")
# A failed record's error_class; "unknown" when the shard predates the column or the record has none.
ERROR_CLASSES = ("transient", "permanent", "unknown")
TRACE_STAGES = ("caption", "retrieve", "localize")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
BATCH_ROWS = 2048

# Fixed bin edges, so histograms of shards merge by adding counts (the last edge stands for infinity).
LATENCY_EDGES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 300.0, 1e9)
TOKEN_EDGES = (0.0, 1, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 1e12)
# Frames/clips per QA are compared across runs in these buckets (small counts exact, long tails pooled).
COUNT_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 7, 9, 13, 21, 41)

NEAR_DUPLICATE_JACCARD = 0.8
MAX_PAIRWISE_PER_VIDEO = 400
MAX_LISTED_GROUPS = 50
MAX_GROUP_MEMBERS = 10
TOP_REPEATED = 20
PSI_WARN, PSI_ALERT = 0.1, 0.25
ERROR_RATE_WARN_PP, ERROR_RATE_ALERT_PP = 5.0, 10.0
SHARE_WARN_PP, SHARE_ALERT_PP = 10.0, 20.0
MIN_DRIFT_RECORDS = 20


# --------------------------------------------------------------------------- ground-truth agreement


class Agreement(BaseModel):
    records: int = 0
    frame_precision: float = 0.0
    frame_recall: float = 0.0
    clip_precision: float = 0.0
    clip_recall: float = 0.0
    type_accuracy: float = 0.0
    mean_frames: float = 0.0


def _pr(predicted: set[int], truth: set[int]) -> tuple[float, float]:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else (1.0 if not truth else 0.0)
    recall = hits / len(truth) if truth else 1.0
    return precision, recall


class _AgreementAccumulator:
    """Agreement over (video_id, qa_id, ok, frames, clips, type) tuples, so shards can feed it column-wise."""

    def __init__(self, manifest: Iterable[ManifestRow]):
        self.truth = {(row.video_id, qa.qa_id): qa.ground_truth for row in manifest for qa in row.qa if qa.ground_truth}
        self.rows: dict[str, list[tuple[float, ...]]] = defaultdict(list)

    def add(self, video_id: str, qa_id: str, ok: bool, frames: Sequence[int], clips: Sequence[int], kind: str | None) -> None:
        gt = self.truth.get((video_id, qa_id))
        if gt is None or not ok:
            return
        fp, fr = _pr(set(frames), set(gt.frame_ids))
        cp, cr = _pr(set(clips), set(gt.clip_ids))
        same_type = float(kind == gt.instruction_type)
        values = (fp, fr, cp, cr, same_type, float(len(frames)))
        self.rows["all"].append(values)
        self.rows[str(gt.instruction_type)].append(values)

    def result(self) -> dict[str, Agreement]:
        return {
            key: Agreement(records=len(values), **dict(zip(
                ("frame_precision", "frame_recall", "clip_precision", "clip_recall", "type_accuracy", "mean_frames"),
                (round(fmean(column), 4) for column in zip(*values)),
            )))
            for key, values in sorted(self.rows.items())
        }


def ground_truth_agreement(records: Iterable[VideoITGRecord], manifest: Iterable[ManifestRow]) -> dict[str, Agreement]:
    """{"all": ..., "<instruction type>": ...} over the good records whose question has ground truth."""
    acc = _AgreementAccumulator(manifest)
    for record in records:
        acc.add(record.video_id, record.qa_id, record.ok, record.frame_num, record.clip_num, record.instruction_type)
    return acc.result()


# --------------------------------------------------------------------------- distributions


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


# --------------------------------------------------------------------------- the figures


class StageErrors(BaseModel):
    errors: int = 0
    rate: float = 0.0


class ReasonErrors(BaseModel):
    stage: str
    reason: str
    count: int
    rate: float = 0.0
    example: str = Field("", description="one error message of this kind (truncated)")
    classes: dict[str, int] = Field(default_factory=dict, description="these errors by class: transient / permanent / unknown")


class RetrievalShares(BaseModel):
    """Among good records: stage 2 returned no clip, or every clip of the video."""

    records: int = 0
    none: int = 0
    all: int = 0
    none_share: float = 0.0
    all_share: float = 0.0


class StageCost(BaseModel):
    records: int = Field(0, description="records that carry a trace of this stage")
    traces: int = Field(0, description="traces (stage 1 has one per clip)")
    calls: int = 0
    cached_or_free: int = Field(0, description="traces that made no billable call (cache hits, embeddings)")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    trace_errors: int = 0
    tokens_per_record: Distribution = Field(default_factory=Distribution)
    calls_per_record: Distribution = Field(default_factory=Distribution)
    latency_per_record_s: Distribution = Field(default_factory=Distribution)


class CaptionStats(BaseModel):
    captions: int = 0
    empty: int = 0
    words: Distribution = Field(default_factory=Distribution)


class DuplicateGroup(BaseModel):
    video_id: str
    kind: Literal["exact", "near"]
    similarity: float
    size: int = Field(description="records in the group")
    qa_ids: list[str] = Field(description=f"the first {MAX_GROUP_MEMBERS}")
    questions: list[str] = Field(description=f"the first {MAX_GROUP_MEMBERS}")


class NearDuplicates(BaseModel):
    """Questions of one video that say the same thing (normalised text equal, or token Jaccard >= 0.8)."""

    threshold: float = NEAR_DUPLICATE_JACCARD
    exact_groups: int = 0
    near_groups: int = 0
    records_in_groups: int = 0
    share: float = 0.0
    groups: list[DuplicateGroup] = Field(default_factory=list, description=f"at most {MAX_LISTED_GROUPS}")


class QualityFigures(BaseModel):
    """The figures a shard and a run share."""

    records: int = 0
    ok: int = 0
    errors: int = 0
    error_rate: float = 0.0
    videos: int = 0
    errors_by_stage: dict[str, StageErrors] = Field(default_factory=dict)
    errors_by_reason: list[ReasonErrors] = Field(default_factory=list)
    errors_by_class: dict[str, int] = Field(default_factory=dict, description="failed records: transient / permanent / unknown")
    frames_per_qa: Distribution = Field(default_factory=Distribution, description="good records")
    clips_per_qa: Distribution = Field(default_factory=Distribution, description="good records")
    instruction_types: dict[str, int] = Field(default_factory=dict, description="good records; 'unknown' when unset")
    retrieval: RetrievalShares = Field(default_factory=RetrievalShares)
    captions: CaptionStats = Field(default_factory=CaptionStats)
    stages: dict[str, StageCost] = Field(default_factory=dict)
    tokens_per_record: Distribution = Field(default_factory=Distribution, description="all stages, all records")
    latency_per_record_s: Distribution = Field(default_factory=Distribution, description="all stages, all records")
    near_duplicates: NearDuplicates = Field(default_factory=NearDuplicates)

    @property
    def type_share(self) -> dict[str, float]:
        total = sum(self.instruction_types.values())
        return {k: v / total for k, v in self.instruction_types.items()} if total else {}

    @property
    def tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.stages.values())

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.stages.values())


class ShardRunPass(BaseModel):
    """One shard's part of the run-level figures that do not merge from `QualityFigures` (stored in the
    shard's figures; its questions, one row per distinct normalised question, in `<stem>.questions.parquet`)."""

    created_at: dt.datetime | None = None
    run_ids: dict[str, int] = Field(default_factory=dict)
    pipeline_versions: list[str] = Field(default_factory=list)
    models: dict[str, list[str]] = Field(default_factory=dict)
    questions_key: str = Field("", description="the shard state the questions file was made from")


class ShardQuality(QualityFigures):
    version: str = QUALITY_VERSION
    shard: str = Field(description="shard path relative to the run's shard folder")
    content_hash: str | None = Field(None, description="the shard manifest's content hash when there is one")
    file_size: int = 0
    file_mtime_ns: int = 0
    video_ids: list[str] = Field(default_factory=list)
    run_pass: ShardRunPass | None = None


class RepeatedQuestion(BaseModel):
    question: str
    records: int
    videos: int


class RepeatedQuestions(BaseModel):
    """Across videos: how templated the questions are (the same normalised text asked of many videos)."""

    distinct: int = 0
    records: int = 0
    distinct_share: float = 0.0
    top: list[RepeatedQuestion] = Field(default_factory=list)


DriftLevel = Literal["ok", "warn", "alert"]


class DriftCheck(BaseModel):
    metric: str
    kind: Literal["distribution", "rate"]
    current: dict[str, float] | float
    baseline: dict[str, float] | float
    psi: float | None = None
    js: float | None = Field(None, description="Jensen-Shannon divergence, base 2, in [0, 1]")
    delta_pp: float | None = Field(None, description="change of a rate, in percentage points")
    level: DriftLevel = "ok"
    note: str = ""


class DriftReport(BaseModel):
    baseline_runs: list[str] = Field(default_factory=list)
    baseline_records: int = 0
    level: DriftLevel = "ok"
    checks: list[DriftCheck] = Field(default_factory=list)
    thresholds: dict[str, float] = Field(default_factory=lambda: {
        "psi_warn": PSI_WARN, "psi_alert": PSI_ALERT,
        "error_rate_warn_pp": ERROR_RATE_WARN_PP, "error_rate_alert_pp": ERROR_RATE_ALERT_PP,
        "share_warn_pp": SHARE_WARN_PP, "share_alert_pp": SHARE_ALERT_PP,
        "min_records": MIN_DRIFT_RECORDS,
    })


class ShardRef(BaseModel):
    shard: str
    records: int
    errors: int
    error_rate: float
    videos: int
    content_hash: str | None = None
    errors_by_stage: dict[str, int] | None = Field(None, description="failed records by stage (None: not stored)")
    errors_by_class: dict[str, int] | None = Field(None, description="failed records by class (None: not stored)")
    instruction_types: dict[str, int] | None = Field(None, description="good records by type (None: not stored)")


class RunQuality(QualityFigures):
    version: str = QUALITY_VERSION
    run_dir: str
    run_id: str | None = None
    run_ids: list[str] = Field(default_factory=list, description="provenance run ids found in the shards")
    created_at: dt.datetime | None = Field(None, description="earliest record creation time")
    pipeline_versions: list[str] = Field(default_factory=list)
    models: dict[str, list[str]] = Field(default_factory=dict, description="model ids by stage")
    shards: list[ShardRef] = Field(default_factory=list)
    agreement: dict[str, Agreement] | None = None
    ground_truth_manifest: str | None = None
    repeated_questions: RepeatedQuestions = Field(default_factory=RepeatedQuestions)
    drift: DriftReport | None = None

    @property
    def name(self) -> str:
        return self.run_id or Path(self.run_dir).name


# --------------------------------------------------------------------------- text helpers

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalise_question(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def token_jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def error_reason(error: str | None) -> str:
    """The error's class, e.g. 'CorruptVideo' or 'ModelReplyError' (as the annotate summary groups them)."""
    return shards_error_reason(error) if error else "unknown"


def _near_duplicate_groups(video_id: str, items: list[tuple[str, str]]) -> tuple[list[DuplicateGroup], int]:
    """Exact groups by normalised text, then near clusters (Jaccard >= threshold, single linkage) among the
    distinct texts; and how many of the video's records are in any group."""
    by_text: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for qa_id, question in items:
        by_text[normalise_question(question)].append((qa_id, question))
    def group(kind: Literal["exact", "near"], similarity: float, members: list[tuple[str, str]]) -> DuplicateGroup:
        head = members[:MAX_GROUP_MEMBERS]
        return DuplicateGroup(video_id=video_id, kind=kind, similarity=similarity, size=len(members),
                              qa_ids=[q for q, _ in head], questions=[t for _, t in head])

    groups = [group("exact", 1.0, members) for members in by_text.values() if len(members) > 1]
    involved = {qa for members in by_text.values() if len(members) > 1 for qa, _ in members}
    texts = list(by_text)
    if len(texts) <= MAX_PAIRWISE_PER_VIDEO:
        tokens = [set(t.split()) for t in texts]
        parent = list(range(len(texts)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        best: dict[int, float] = {}
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                sim = token_jaccard(tokens[i], tokens[j])
                if sim >= NEAR_DUPLICATE_JACCARD:
                    a, b = find(i), find(j)
                    parent[a] = b
                    best[j] = max(best.get(j, 0.0), sim)
                    best[i] = max(best.get(i, 0.0), sim)
        clusters: dict[int, list[int]] = defaultdict(list)
        for i in range(len(texts)):
            clusters[find(i)].append(i)
        for members in clusters.values():
            if len(members) < 2:
                continue
            entries = [e for i in members for e in by_text[texts[i]]]
            groups.append(group("near", round(min(best[i] for i in members), 4), entries))
            involved.update(qa for qa, _ in entries)
    return groups, len(involved)


# --------------------------------------------------------------------------- reading shards column-wise

SHARD_COLUMNS = [
    "video_id", "qa_id", "question", "error", "error_stage", "instruction_type", "frame_num", "clip_num",
    "captions.list.element.caption",
    "captions.list.element.trace.latency_s",
    "captions.list.element.trace.usage",
    "captions.list.element.trace.error",
    "retrieval.trace.latency_s",
    "retrieval.trace.usage",
    "retrieval.trace.error",
    "localization.trace.latency_s",
    "localization.trace.usage",
    "localization.trace.error",
]


def iter_shard_batches(path: Path, columns: Sequence[str], batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Record batches of a shard with only `columns` decoded (dotted paths select nested fields)."""
    try:
        handle = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise SchemaError(f"{path}: not a readable parquet shard: {error}") from None
    with handle:
        yield from handle.iter_batches(batch_size=batch_size, columns=list(columns))


def _shard_columns(path: Path) -> list[str]:
    """SHARD_COLUMNS, plus `error_class` when the shard has it (shards written before error classes do not)."""
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowInvalid):
        return SHARD_COLUMNS  # iter_shard_batches names the unreadable shard
    return [*SHARD_COLUMNS, "error_class"] if "error_class" in names else SHARD_COLUMNS


def _np(array: pa.Array, fill: float = 0) -> np.ndarray:
    return array.fill_null(fill).to_numpy(zero_copy_only=False)


def _field(array: pa.Array, *names: str) -> pa.Array:
    for name in names:
        array = pc.struct_field(array, name)
    return array


class _StageAcc:
    def __init__(self) -> None:
        self.cost = StageCost()
        self.tokens = _Dist(TOKEN_EDGES)
        self.calls = _Dist()
        self.latency = _Dist(LATENCY_EDGES)

    def add(self, present: np.ndarray, traces_per_record: np.ndarray, prompt: np.ndarray, completion: np.ndarray,
            calls: np.ndarray, latency: np.ndarray, errors: int, free: int) -> None:
        """Per-record sums (arrays over the batch) and counts; only records where `present` are counted."""
        c = self.cost
        c.records += int(present.sum())
        c.traces += int(traces_per_record.sum())
        c.calls += int(calls.sum())
        c.cached_or_free += free
        c.prompt_tokens += int(prompt.sum())
        c.completion_tokens += int(completion.sum())
        c.latency_s += float(latency.sum())
        c.trace_errors += errors
        self.tokens.add_many((prompt + completion)[present])
        self.calls.add_many(calls[present])
        self.latency.add_many(latency[present])

    def model(self) -> StageCost:
        cost = self.cost.model_copy()
        cost.latency_s = round(cost.latency_s, 6)
        cost.tokens_per_record = self.tokens.model()
        cost.calls_per_record = self.calls.model()
        cost.latency_per_record_s = self.latency.model()
        return cost


def compute_shard_quality(path: str | Path, *, shard_name: str | None = None) -> ShardQuality:
    """One shard's figures, read in batches with only the columns they need."""
    path = Path(path)
    stat = path.stat()
    frames, clips, words = _Dist(), _Dist(), _Dist()
    tokens_all, latency_all = _Dist(TOKEN_EDGES), _Dist(LATENCY_EDGES)
    stages = {name: _StageAcc() for name in TRACE_STAGES}
    types: Counter[str] = Counter()
    stage_errors: Counter[str] = Counter()
    reason_errors: Counter[tuple[str, str]] = Counter()
    reason_example: dict[tuple[str, str], str] = {}
    class_errors: Counter[str] = Counter()
    reason_classes: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    questions: dict[str, list[tuple[str, str]]] = defaultdict(list)
    retrieval = RetrievalShares()
    captions = CaptionStats()
    records = ok = 0

    for batch in iter_shard_batches(path, _shard_columns(path)):
        n = batch.num_rows
        records += n
        col = {name: batch.column(name) for name in batch.schema.names}
        error = col["error"]
        is_ok = _np(error.is_null(), True).astype(bool)
        ok += int(is_ok.sum())

        # errors by stage, reason and class (only failed rows go to Python)
        failed = np.flatnonzero(~is_ok)
        if failed.size:
            idx = pa.array(failed)
            kinds_of = col["error_class"].take(idx).to_pylist() if "error_class" in col else [None] * failed.size
            for message, stage, kind in zip(error.take(idx).to_pylist(), col["error_stage"].take(idx).to_pylist(), kinds_of):
                stage, kind = stage or "unknown", kind or "unknown"
                key = (stage, error_reason(message))
                stage_errors[stage] += 1
                reason_errors[key] += 1
                class_errors[kind] += 1
                reason_classes[key][kind] += 1
                reason_example.setdefault(key, (message or "")[:300])

        # frames / clips per QA, instruction types, none/all retrievals (good records)
        n_frames = _np(pc.list_value_length(col["frame_num"]))
        n_clips = _np(pc.list_value_length(col["clip_num"]))
        frames.add_many(n_frames[is_ok])
        clips.add_many(n_clips[is_ok])
        kinds = col["instruction_type"].fill_null("unknown").filter(pa.array(is_ok))
        types.update(dict(zip(*[x.to_pylist() for x in pc.value_counts(kinds).flatten()])) if len(kinds) else {})

        # stage 1: one trace per clip caption; per-record sums through the list's parent indices
        cap = col["captions"]
        n_caps = _np(pc.list_value_length(cap)).astype(np.int64)
        flat = pc.list_flatten(cap)
        parents = _np(pc.list_parent_indices(cap)).astype(np.int64) if len(flat) else np.zeros(0, np.int64)
        if len(flat):
            text = _field(flat, "caption")
            w = _np(pc.count_substring_regex(text, r"\S+"))
            captions.captions += len(flat)
            captions.empty += int((w == 0).sum())
            words.add_many(w)

        def per_record(values: np.ndarray, parents: np.ndarray = parents, n: int = n) -> np.ndarray:
            return np.bincount(parents, weights=values, minlength=n) if len(values) else np.zeros(n)

        if len(flat):
            usage = _field(flat, "trace", "usage")
            c_prompt = per_record(_np(_field(usage, "prompt_tokens")).astype(float))
            c_completion = per_record(_np(_field(usage, "completion_tokens")).astype(float))
            c_calls_each = _np(_field(usage, "calls")).astype(float)
            c_calls = per_record(c_calls_each)
            c_latency = per_record(_np(_field(flat, "trace", "latency_s")).astype(float))
            trace_error = _field(flat, "trace", "error")
            c_errors = len(trace_error) - trace_error.null_count
            c_free = int((c_calls_each == 0).sum())
        else:
            c_prompt = c_completion = c_calls = c_latency = np.zeros(n)
            c_errors = c_free = 0
        stages["caption"].add(n_caps > 0, n_caps, c_prompt, c_completion, c_calls, c_latency, c_errors, c_free)
        sum_prompt, sum_completion, sum_latency = c_prompt.copy(), c_completion.copy(), c_latency.copy()

        for stage, column in (("retrieve", "retrieval"), ("localize", "localization")):
            struct = col[column]
            present = _np(struct.is_valid(), False).astype(bool)
            usage = _field(struct, "trace", "usage")
            prompt = np.where(present, _np(_field(usage, "prompt_tokens")), 0).astype(float)
            completion = np.where(present, _np(_field(usage, "completion_tokens")), 0).astype(float)
            calls = np.where(present, _np(_field(usage, "calls")), 0).astype(float)
            latency = np.where(present, _np(_field(struct, "trace", "latency_s")), 0).astype(float)
            errors = int((present & _np(_field(struct, "trace", "error").is_valid(), False).astype(bool)).sum())
            free = int((present & (calls == 0)).sum())
            stages[stage].add(present, present.astype(np.int64), prompt, completion, calls, latency, errors, free)
            sum_prompt += prompt
            sum_completion += completion
            sum_latency += latency
        tokens_all.add_many(sum_prompt + sum_completion)
        latency_all.add_many(sum_latency)

        # none / all retrievals: the clip count of a video is its number of clip captions
        good_with_caps = is_ok & (n_caps > 0)
        retrieval.records += int(good_with_caps.sum())
        retrieval.none += int((good_with_caps & (n_clips == 0)).sum())
        retrieval.all += int((good_with_caps & (n_clips >= n_caps) & (n_clips > 0)).sum())

        for video_id, qa_id, question in zip(col["video_id"].to_pylist(), col["qa_id"].to_pylist(),
                                             col["question"].to_pylist()):
            questions[video_id].append((qa_id, question))

    errors = records - ok
    retrieval.none_share = round(retrieval.none / retrieval.records, 6) if retrieval.records else 0.0
    retrieval.all_share = round(retrieval.all / retrieval.records, 6) if retrieval.records else 0.0
    captions.words = words.model()
    groups, involved = [], 0
    for video_id, items in questions.items():
        found, n = _near_duplicate_groups(video_id, items)
        groups += found
        involved += n
    near = NearDuplicates(
        exact_groups=sum(g.kind == "exact" for g in groups),
        near_groups=sum(g.kind == "near" for g in groups),
        records_in_groups=involved,
        groups=groups[:MAX_LISTED_GROUPS],
    )
    near.share = round(near.records_in_groups / records, 6) if records else 0.0
    manifest = _shard_manifest(path)
    return ShardQuality(
        shard=shard_name or path.name,
        content_hash=manifest.get("content_hash") if manifest else None,
        file_size=stat.st_size,
        file_mtime_ns=stat.st_mtime_ns,
        video_ids=sorted(questions),
        records=records,
        ok=ok,
        errors=errors,
        error_rate=round(errors / records, 6) if records else 0.0,
        videos=len(questions),
        errors_by_stage=_stage_errors(stage_errors, records),
        errors_by_reason=_reason_errors(reason_errors, reason_example, records, reason_classes),
        errors_by_class=_class_errors(class_errors),
        frames_per_qa=frames.model(),
        clips_per_qa=clips.model(),
        instruction_types=dict(sorted(types.items())),
        retrieval=retrieval,
        captions=captions,
        stages={name: acc.model() for name, acc in stages.items()},
        tokens_per_record=tokens_all.model(),
        latency_per_record_s=latency_all.model(),
        near_duplicates=near,
    )


def _stage_errors(counts: Mapping[str, int], records: int) -> dict[str, StageErrors]:
    order = {name: i for i, name in enumerate(STAGE_ORDER)}
    return {
        stage: StageErrors(errors=n, rate=round(n / records, 6) if records else 0.0)
        for stage, n in sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    }


def _class_errors(counts: Mapping[str, int]) -> dict[str, int]:
    order = {name: i for i, name in enumerate(ERROR_CLASSES)}
    return {k: n for k, n in sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0])) if n}


def _reason_errors(counts: Mapping[tuple[str, str], int], examples: Mapping[tuple[str, str], str], records: int,
                   classes: Mapping[tuple[str, str], Mapping[str, int]] | None = None) -> list[ReasonErrors]:
    return [
        ReasonErrors(stage=stage, reason=reason, count=n, rate=round(n / records, 6) if records else 0.0,
                     example=examples.get((stage, reason), ""),
                     classes=_class_errors((classes or {}).get((stage, reason), {})))
        for (stage, reason), n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def _shard_manifest(path: Path) -> dict | None:
    from vidthinker.shards import manifest_path

    mpath = manifest_path(path)
    try:
        return json.loads(mpath.read_text()) if mpath.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


# --------------------------------------------------------------------------- merging


def merge_figures(parts: Sequence[QualityFigures]) -> dict:
    """The QualityFigures fields of several shards merged (as a dict of field values)."""
    records = sum(p.records for p in parts)
    ok = sum(p.ok for p in parts)
    stage_errors: Counter[str] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    by_class: Counter[str] = Counter()
    reason_classes: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    types: Counter[str] = Counter()
    for p in parts:
        for stage, e in p.errors_by_stage.items():
            stage_errors[stage] += e.errors
        for r in p.errors_by_reason:
            reasons[(r.stage, r.reason)] += r.count
            examples.setdefault((r.stage, r.reason), r.example)
            reason_classes[(r.stage, r.reason)].update(r.classes)
        by_class.update(p.errors_by_class)
        types.update(p.instruction_types)
    retrieval = RetrievalShares(
        records=sum(p.retrieval.records for p in parts),
        none=sum(p.retrieval.none for p in parts),
        all=sum(p.retrieval.all for p in parts),
    )
    if retrieval.records:
        retrieval.none_share = round(retrieval.none / retrieval.records, 6)
        retrieval.all_share = round(retrieval.all / retrieval.records, 6)
    stages = {}
    for name in TRACE_STAGES:
        costs = [p.stages[name] for p in parts if name in p.stages]
        if not costs:
            continue
        stages[name] = StageCost(
            records=sum(c.records for c in costs),
            traces=sum(c.traces for c in costs),
            calls=sum(c.calls for c in costs),
            cached_or_free=sum(c.cached_or_free for c in costs),
            prompt_tokens=sum(c.prompt_tokens for c in costs),
            completion_tokens=sum(c.completion_tokens for c in costs),
            latency_s=round(sum(c.latency_s for c in costs), 6),
            trace_errors=sum(c.trace_errors for c in costs),
            tokens_per_record=merge_distributions(c.tokens_per_record for c in costs),
            calls_per_record=merge_distributions(c.calls_per_record for c in costs),
            latency_per_record_s=merge_distributions(c.latency_per_record_s for c in costs),
        )
    groups = [g for p in parts for g in p.near_duplicates.groups]
    near = NearDuplicates(
        exact_groups=sum(p.near_duplicates.exact_groups for p in parts),
        near_groups=sum(p.near_duplicates.near_groups for p in parts),
        records_in_groups=sum(p.near_duplicates.records_in_groups for p in parts),
        groups=groups[:MAX_LISTED_GROUPS],
    )
    near.share = round(near.records_in_groups / records, 6) if records else 0.0
    return {
        "records": records,
        "ok": ok,
        "errors": records - ok,
        "error_rate": round((records - ok) / records, 6) if records else 0.0,
        "videos": sum(p.videos for p in parts),
        "errors_by_stage": _stage_errors(stage_errors, records),
        "errors_by_reason": _reason_errors(reasons, examples, records, reason_classes),
        "errors_by_class": _class_errors(by_class),
        "frames_per_qa": merge_distributions(p.frames_per_qa for p in parts),
        "clips_per_qa": merge_distributions(p.clips_per_qa for p in parts),
        "instruction_types": dict(sorted(types.items())),
        "retrieval": retrieval,
        "captions": CaptionStats(
            captions=sum(p.captions.captions for p in parts),
            empty=sum(p.captions.empty for p in parts),
            words=merge_distributions(p.captions.words for p in parts),
        ),
        "stages": stages,
        "tokens_per_record": merge_distributions(p.tokens_per_record for p in parts),
        "latency_per_record_s": merge_distributions(p.latency_per_record_s for p in parts),
        "near_duplicates": near,
    }


# --------------------------------------------------------------------------- drift


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


# --------------------------------------------------------------------------- runs


def shard_folder(run_dir: Path) -> Path:
    """Where a run keeps its shards: `<run>/shards/`, or the folder itself when it holds parquet files."""
    return run_dir / "shards" if (run_dir / "shards").is_dir() else run_dir


def shard_paths(run_dir: str | Path) -> list[Path]:
    """A run's record shards in a stable order (dot- and underscore-prefixed files skipped)."""
    folder = shard_folder(Path(run_dir))
    if not folder.is_dir():
        raise SchemaError(f"{run_dir}: no such run folder")
    return sorted(p for p in folder.rglob("*.parquet")
                  if not p.name.startswith((".", "_")) and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts[:-1]))


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / "shards").is_dir() and any((path / "shards").rglob("*.parquet"))


def find_runs(root: str | Path) -> list[Path]:
    """The runs under `root` (or `[root]` when it is one run), oldest first."""
    root = Path(root)
    if is_run_dir(root):
        return [root]
    if not root.is_dir():
        raise SchemaError(f"{root}: no such folder")
    runs = [p for p in sorted(root.iterdir()) if is_run_dir(p)]
    runs += [p for child in sorted(root.iterdir()) if child.is_dir() and not is_run_dir(child)
             for p in sorted(child.iterdir()) if is_run_dir(p)]
    return sorted(runs, key=lambda p: (run_created_at(p) or dt.datetime.max.replace(tzinfo=dt.UTC), p.name))


def run_created_at(run_dir: Path) -> dt.datetime | None:
    """Earliest record creation time of a run (stored quality, else one projected column of each shard)."""
    stored = load_run_quality(run_dir)
    if stored is not None and stored.created_at is not None:
        return stored.created_at
    earliest = None
    for path in shard_paths(run_dir):
        for batch in iter_shard_batches(path, ["provenance.created_at"]):
            value = pc.min(_field(batch.column("provenance"), "created_at")).as_py()
            if value is not None and (earliest is None or value < earliest):
                earliest = value
    return earliest


def previous_runs(run_dir: str | Path, limit: int = 5) -> list[Path]:
    """The sibling runs created before `run_dir`, newest last, at most `limit` (drift baseline)."""
    run_dir = Path(run_dir).resolve()
    mine = run_created_at(run_dir)
    siblings = [p for p in find_runs(run_dir.parent) if p.resolve() != run_dir]
    if mine is not None:
        siblings = [p for p in siblings if (run_created_at(p) or mine) < mine]
    return siblings[-limit:] if limit else []


def quality_dir(run_dir: Path) -> Path:
    return Path(run_dir) / QUALITY_DIR


def shard_quality_path(run_dir: Path, shard: Path) -> Path:
    rel = shard.relative_to(shard_folder(run_dir)).with_suffix("")
    return quality_dir(run_dir) / ("__".join(rel.parts) + ".json")


def load_run_quality(run_dir: str | Path) -> RunQuality | None:
    path = quality_dir(Path(run_dir)) / RUN_FILE
    if not path.is_file():
        return None
    try:
        quality = RunQuality.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None
    return quality if quality.version == QUALITY_VERSION else None


def fresh_run_quality(run_dir: str | Path) -> RunQuality | None:
    """The stored `quality/run.json` if it still describes the run's shards (same shard files, none
    written after it), else None."""
    run_dir = Path(run_dir)
    stored = load_run_quality(run_dir)
    if stored is None:
        return None
    paths = shard_paths(run_dir)
    names = {p.relative_to(shard_folder(run_dir)).as_posix() for p in paths}
    if {s.shard for s in stored.shards} != names or not paths:
        return None
    written = (quality_dir(run_dir) / RUN_FILE).stat().st_mtime_ns
    return stored if all(p.stat().st_mtime_ns <= written for p in paths) else None


def _load_shard_quality(path: Path, shard: Path) -> ShardQuality | None:
    """Stored figures of a shard, if they still describe it: same file (size, mtime) and, when the shard
    has a manifest, the same content hash (which leaves out latencies, so it alone is not enough)."""
    if not path.is_file():
        return None
    try:
        stored = ShardQuality.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None
    if stored.version != QUALITY_VERSION:
        return None
    stat = shard.stat()
    if (stored.file_size, stored.file_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        return None
    manifest = _shard_manifest(shard)
    if manifest and manifest.get("content_hash") != stored.content_hash:
        return None
    return stored


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; normal mode under the umask
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _find_manifest(run_dir: Path, first_video: str | None) -> Path | None:
    """A ground-truth manifest for the run: `<run>/manifest.jsonl`, or the synthetic set's manifest that
    sits beside the videos' folder (`<set>/videos/*.mp4` → `<set>/manifest.jsonl`)."""
    for name in ("manifest.jsonl", "manifest.parquet"):
        if (run_dir / name).is_file():
            return run_dir / name
    if first_video and "://" not in first_video:
        video = Path(first_video)
        if video.parent.name == "videos" and (video.parent.parent / "manifest.jsonl").is_file():
            return video.parent.parent / "manifest.jsonl"
    return None


def _resolve_manifest(manifest: str | Path | Sequence[ManifestRow] | None, run_dir: Path, paths: Sequence[Path]
                      ) -> tuple[list[ManifestRow] | None, str | None]:
    from vidthinker.formats import read_manifest

    if manifest is not None and not isinstance(manifest, (str, Path)):
        return list(manifest), "<rows>"
    if manifest is None:
        first_video = None
        for path in paths:
            for batch in iter_shard_batches(path, ["video"], batch_size=1):
                first_video = batch.column("video")[0].as_py() if batch.num_rows else None
                break
            if first_video:
                break
        manifest = _find_manifest(run_dir, first_video)
        if manifest is None:
            return None, None
    rows = read_manifest(manifest)
    if not any(qa.ground_truth for row in rows for qa in row.qa):
        return None, str(manifest)
    return rows, str(manifest)


def question_hash(key: str) -> int:
    """64-bit hash of a normalised question (blake2b): distinct questions are counted by hash, so the run
    pass holds 20 bytes per distinct question in numpy arrays rather than a dict and a set of videos."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


_QUESTIONS_SCHEMA = pa.schema([("hash", pa.uint64()), ("records", pa.int64()), ("videos", pa.int64()),
                               ("question", pa.string())])
_PROVENANCE_MODELS = (("caption", "caption_model"), ("retrieve", "retrieval_model"),
                      ("localize", "embedding_model"), ("verify", "verify_model"))


def questions_path(run_dir: Path, shard: Path) -> Path:
    return shard_quality_path(run_dir, shard).with_suffix(".questions.parquet")


def _questions_key(figures: ShardQuality) -> str:
    return f"{figures.file_size}:{figures.file_mtime_ns}:{figures.content_hash or ''}"


def compute_shard_run_pass(path: Path) -> tuple[ShardRunPass, pa.Table]:
    """One shard's part of the run pass: provenance figures, and its distinct questions (hash, records,
    videos, the first wording) as a table. A video is in one shard, so per-shard video counts add up."""
    counts: Counter[str] = Counter()
    videos_of: dict[str, set[str]] = defaultdict(set)
    shown: dict[str, str] = {}
    run_ids: Counter[str] = Counter()
    versions: set[str] = set()
    models: dict[str, set[str]] = defaultdict(set)
    earliest = None
    for batch in iter_shard_batches(path, ["video_id", "question", "provenance"]):
        prov = batch.column("provenance")
        value = pc.min(_field(prov, "created_at")).as_py()
        if value is not None and (earliest is None or value < earliest):
            earliest = value
        run_ids.update(_field(prov, "run_id").drop_null().to_pylist())
        versions.update(pc.unique(_field(prov, "pipeline_version").drop_null()).to_pylist())
        for stage, name in _PROVENANCE_MODELS:
            models[stage].update(pc.unique(_field(prov, name).drop_null()).to_pylist())
        for video_id, question in zip(batch.column("video_id").to_pylist(), batch.column("question").to_pylist()):
            key = normalise_question(question)
            counts[key] += 1
            videos_of[key].add(video_id)
            shown.setdefault(key, question)
    keys = list(counts)
    table = pa.Table.from_arrays([
        pa.array([question_hash(k) for k in keys], pa.uint64()), pa.array([counts[k] for k in keys], pa.int64()),
        pa.array([len(videos_of[k]) for k in keys], pa.int64()), pa.array([shown[k] for k in keys], pa.string())],
        schema=_QUESTIONS_SCHEMA)
    part = ShardRunPass(created_at=earliest, run_ids=dict(sorted(run_ids.items())), pipeline_versions=sorted(versions),
                        models={stage: sorted(ids) for stage, ids in models.items() if ids})
    return part, table


def _stored_questions(path: Path, key: str) -> pa.Table | None:
    if not path.is_file():
        return None
    try:
        handle = pq.ParquetFile(path)
        if (handle.schema_arrow.metadata or {}).get(b"key", b"").decode() != key:
            return None
        return handle.read(columns=["hash", "records", "videos"])
    except (OSError, ValueError, pa.ArrowException):
        return None


def _agreement_pass(paths: Sequence[Path], agreement: _AgreementAccumulator) -> None:
    columns = ["video_id", "qa_id", "error", "frame_num", "clip_num", "instruction_type"]
    for path in paths:
        for batch in iter_shard_batches(path, columns):
            ok = batch.column("error").is_null().to_pylist()
            for video_id, qa_id, good, frames, clips, kind in zip(
                batch.column("video_id").to_pylist(), batch.column("qa_id").to_pylist(), ok,
                batch.column("frame_num").to_pylist(), batch.column("clip_num").to_pylist(),
                batch.column("instruction_type").to_pylist(),
            ):
                agreement.add(video_id, qa_id, good, frames, clips, kind)


def _run_pass(run_dir: Path, paths: Sequence[Path], parts: Sequence[ShardQuality], *, write: bool) -> dict:
    """The run-level figures that do not merge from shards, from each shard's cached part (`run_pass` in its
    figures, its questions file); only shards without a current part are read (provenance and questions)."""
    earliest = None
    run_ids: Counter[str] = Counter()
    versions: set[str] = set()
    models: dict[str, set[str]] = defaultdict(set)
    hashes, records, videos, owner = [], [], [], []
    for index, (shard, figures) in enumerate(zip(paths, parts)):
        key = _questions_key(figures)
        target = questions_path(run_dir, shard)
        table = _stored_questions(target, key) if figures.run_pass and figures.run_pass.questions_key == key else None
        if table is None:
            part, full = compute_shard_run_pass(shard)
            part.questions_key = key
            figures.run_pass = part
            if write:
                try:
                    _atomic_write_parquet(target, full.replace_schema_metadata({"key": key}))
                    _atomic_write(shard_quality_path(run_dir, shard), figures.model_dump_json(indent=1))
                except OSError:
                    pass  # a read-only run folder: computed again next time
            table = full
        part = figures.run_pass
        if part.created_at is not None and (earliest is None or part.created_at < earliest):
            earliest = part.created_at
        run_ids.update(part.run_ids)
        versions.update(part.pipeline_versions)
        for stage, ids in part.models.items():
            models[stage].update(ids)
        hashes.append(table.column("hash").combine_chunks().to_numpy(zero_copy_only=False))
        records.append(table.column("records").combine_chunks().to_numpy(zero_copy_only=False))
        videos.append(table.column("videos").combine_chunks().to_numpy(zero_copy_only=False))
        owner.append(np.full(table.num_rows, index, dtype=np.int32))
    repeated = RepeatedQuestions()
    if hashes:
        h, n, v, o = (np.concatenate(x) for x in (hashes, records, videos, owner))
        order = np.argsort(h, kind="stable")  # stable: a question's first shard (in path order) comes first
        h, n, v, o = h[order], n[order], v[order], o[order]
        starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
        total_n, total_v, first = np.add.reduceat(n, starts), np.add.reduceat(v, starts), o[starts]
        total = int(n.sum())
        repeated = RepeatedQuestions(distinct=len(starts), records=total,
                                     distinct_share=round(len(starts) / total, 6) if total else 0.0)
        many = np.flatnonzero(total_v > 1)
        if len(many):
            # candidates: the top by (records, videos), ties at the cut included; wordings read for these only
            ranked = many[np.lexsort((-total_v[many], -total_n[many]))]
            cut = ranked[min(TOP_REPEATED, len(ranked)) - 1]
            keep = ranked[(total_n[ranked] > total_n[cut]) | ((total_n[ranked] == total_n[cut]) & (total_v[ranked] >= total_v[cut]))]
            wanted: dict[int, set[int]] = defaultdict(set)
            for i in keep:
                wanted[int(first[i])].add(int(h[starts[i]]))
            text: dict[int, str] = {}
            for shard_index, want in wanted.items():
                table = pq.read_table(questions_path(run_dir, paths[shard_index]), columns=["hash", "question"]) \
                    if questions_path(run_dir, paths[shard_index]).is_file() else compute_shard_run_pass(paths[shard_index])[1]
                for qh, question in zip(table.column("hash").to_pylist(), table.column("question").to_pylist()):
                    if qh in want:
                        text.setdefault(qh, question)
            rows = sorted(((int(total_n[i]), int(total_v[i]), normalise_question(text[int(h[starts[i]])]),
                            text[int(h[starts[i]])]) for i in keep), reverse=True)
            repeated.top = [RepeatedQuestion(question=q, records=a, videos=b) for a, b, _, q in rows[:TOP_REPEATED]]
    return {
        "created_at": earliest,
        "run_ids": sorted(run_ids),
        "pipeline_versions": sorted(versions),
        "models": {stage: sorted(models[stage]) for stage, _ in _PROVENANCE_MODELS if models.get(stage)},
        "repeated_questions": repeated,
    }


def _atomic_write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run_id_from_summary(run_dir: Path) -> str | None:
    summary = run_dir / "summary.json"
    try:
        return json.loads(summary.read_text()).get("run_id") if summary.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def compute_run_quality(
    run_dir: str | Path,
    manifest: str | Path | Sequence[ManifestRow] | None = None,
    previous_runs: Sequence[str | Path | RunQuality] = (),
    *,
    write: bool = True,
) -> RunQuality:
    """A run's quality figures, written to `<run>/quality/run.json` (and one file per shard).

    `manifest`: a manifest file or rows with ground truth for the agreement figures; None looks for
    `<run>/manifest.jsonl` or the synthetic set's manifest beside the records' video folder.
    `previous_runs`: run folders (their stored `quality/run.json`, computed when missing) or RunQuality
    objects, the drift baseline (pooled). Stored shard figures are reused while a shard file is unchanged
    (size, mtime and manifest content hash), so rerunning after new shards only reads the new ones.
    """
    run_dir = Path(run_dir)
    paths = shard_paths(run_dir)
    if not paths:
        raise SchemaError(f"{run_dir}: no parquet shards found")
    parts = shard_figures(run_dir, write=write)
    rows, manifest_name = _resolve_manifest(manifest, run_dir, paths)
    agreement = _AgreementAccumulator(rows) if rows else None
    if agreement is not None:  # ground truth (synthetic sets): read the columns it compares
        _agreement_pass(paths, agreement)
    run_level = _run_pass(run_dir, paths, parts, write=write)
    merged = merge_figures(parts)
    run_ids = run_level["run_ids"]
    quality = RunQuality(
        run_dir=str(run_dir),
        run_id=_run_id_from_summary(run_dir) or (run_ids[0] if len(run_ids) == 1 else None),
        shards=[ShardRef(shard=p.shard, records=p.records, errors=p.errors, error_rate=p.error_rate, videos=p.videos,
                         content_hash=p.content_hash, errors_by_stage={k: v.errors for k, v in p.errors_by_stage.items()},
                         errors_by_class=dict(p.errors_by_class),
                         instruction_types=dict(p.instruction_types)) for p in parts],
        agreement=agreement.result() if agreement else None,
        ground_truth_manifest=manifest_name,
        **run_level,
        **merged,
    )
    baseline = [_as_run_quality(p) for p in previous_runs]
    quality.drift = drift_report(quality, [b for b in baseline if b is not None])
    if write:
        _atomic_write(quality_dir(run_dir) / RUN_FILE, quality.model_dump_json(indent=1))
    return quality


def _as_run_quality(run: str | Path | RunQuality) -> RunQuality | None:
    if isinstance(run, RunQuality):
        return run
    stored = load_run_quality(run)
    if stored is not None:
        return stored
    try:
        return compute_run_quality(run, previous_runs=())
    except SchemaError:
        return None


def shard_figures(run_dir: str | Path, *, write: bool = True) -> list[ShardQuality]:
    """Every shard's figures (stored ones reused, missing or stale ones computed and stored)."""
    run_dir = Path(run_dir)
    out = []
    for shard in shard_paths(run_dir):
        target = shard_quality_path(run_dir, shard)
        figures = _load_shard_quality(target, shard)
        if figures is None:
            figures = compute_shard_quality(shard, shard_name=shard.relative_to(shard_folder(run_dir)).as_posix())
            if write:
                _atomic_write(target, figures.model_dump_json(indent=1))
        out.append(figures)
    return out


def shard_drift(run_dir: str | Path, new_shards: Sequence[str | Path]) -> DriftReport | None:
    """Drift of some shards of a folder (e.g. the ones an annotate DAG run just added) against all the
    other shards of the same folder; None when either side is empty."""
    run_dir = Path(run_dir)
    wanted = {Path(s).name for s in new_shards}
    parts = shard_figures(run_dir)
    new = [p for p in parts if Path(p.shard).name in wanted]
    old = [p for p in parts if Path(p.shard).name not in wanted]
    if not new or not old:
        return None
    return drift_report(QualityFigures(**merge_figures(new)), old)


def quality_hash(quality: RunQuality) -> str:
    """A stable digest of a run's figures (what a published dataset card was made from)."""
    data = quality.model_dump(mode="json", exclude={"run_dir", "drift"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- command


def quality_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (with shards/) to measure.")],
    manifest: Annotated[Path | None, typer.Option("--manifest", "-m", help="Manifest with ground truth (default: found beside the run or its synthetic videos).")] = None,
    previous: Annotated[int, typer.Option(help="Compare with up to this many earlier sibling runs (drift).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full RunQuality JSON instead of a summary.")] = False,
) -> None:
    """Compute a run's quality figures and store them in RUN/quality/ (run.json and one file per shard).

    Figures: error rate by stage, reason and class (transient / permanent), frames and clips per QA, instruction-type mix, none/all
    retrievals, caption length, tokens/calls/latency per stage, near-duplicate questions, agreement
    with ground truth where the manifest has it, and drift (PSI / JS) against earlier runs.
    """
    from rich.console import Console
    from rich.table import Table

    from vidthinker.shards import MOVE_REMEDY, DuplicateRecordsError, check_duplicate_ids

    console = Console()
    try:
        check_duplicate_ids(shard_paths(out), remedy=MOVE_REMEDY)  # figures over duplicated records would be wrong
        result = compute_run_quality(out, manifest=manifest, previous_runs=previous_runs(out, previous) if previous else ())
    except (SchemaError, OSError, DuplicateRecordsError) as error:
        Console(stderr=True).print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        console.print_json(result.model_dump_json())
        return
    console.print(f"run {result.name}: {result.records} records ({result.ok} ok, {result.errors} errors, "
                  f"{100 * result.error_rate:.1f}%) over {result.videos} videos in {len(result.shards)} shards")
    console.print(f"frames/QA p50 {result.frames_per_qa.quantiles.get('p50', 0):g} · clips/QA p50 "
                  f"{result.clips_per_qa.quantiles.get('p50', 0):g} · none {100 * result.retrieval.none_share:.1f}% · "
                  f"all {100 * result.retrieval.all_share:.1f}% · tokens/record {result.tokens_per_record.mean or 0:.0f}")
    table = Table("stage", "calls", "prompt tok", "completion tok", "model s", "errors")
    for stage, cost in result.stages.items():
        errors = result.errors_by_stage.get(stage)
        table.add_row(stage, str(cost.calls), str(cost.prompt_tokens), str(cost.completion_tokens),
                      f"{cost.latency_s:.1f}", str(errors.errors if errors else 0))
    console.print(table)
    if result.errors_by_class:
        console.print("errors by class: " + ", ".join(f"{k} {n}" for k, n in result.errors_by_class.items()))
    if result.agreement and "all" in result.agreement:
        a = result.agreement["all"]
        console.print(f"ground truth ({a.records}): frame P {a.frame_precision:.2f} R {a.frame_recall:.2f} · "
                      f"clip P {a.clip_precision:.2f} R {a.clip_recall:.2f} · type acc {a.type_accuracy:.2f}")
    if result.drift:
        flagged = [f"{c.metric} {c.level}" for c in result.drift.checks if c.level != "ok"]
        console.print(f"drift vs {', '.join(result.drift.baseline_runs)}: {result.drift.level}"
                      + (f" ({'; '.join(flagged)})" if flagged else ""))
    console.print(f"→ {quality_dir(Path(out)) / RUN_FILE}")
