"""One shard's figures (`compute_shard_quality`), read batch by batch with column projection: only the
columns the figures need are decoded, and only failed rows and question texts go to Python."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vidthinker.figures import error_class_name, error_reason, error_stage_name
from vidthinker.quality.distributions import LATENCY_EDGES, TOKEN_EDGES, _Dist
from vidthinker.quality.merge import tabulate_class_errors, tabulate_reason_errors, tabulate_stage_errors
from vidthinker.quality.models import (
    MAX_LISTED_GROUPS,
    TRACE_STAGES,
    CaptionStats,
    NearDuplicates,
    RetrievalShares,
    ShardQuality,
    StageCost,
)
from vidthinker.quality.questions import near_duplicate_groups
from vidthinker.schema import SchemaError

BATCH_ROWS = 2048

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


def iter_shard_batches(path: Path, columns: Sequence[str], batch_size: int | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of a shard (`batch_size` rows, default `BATCH_ROWS`) with only `columns` decoded
    (dotted paths select nested fields)."""
    try:
        handle = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise SchemaError(f"{path}: not a readable parquet shard: {error}") from None
    with handle:
        yield from handle.iter_batches(batch_size=batch_size or BATCH_ROWS, columns=list(columns))


def _shard_columns(path: Path) -> list[str]:
    """SHARD_COLUMNS, plus `error_class` when the shard has it (shards written before error classes do not)."""
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowInvalid):
        return SHARD_COLUMNS  # iter_shard_batches names the unreadable shard
    return [*SHARD_COLUMNS, "error_class"] if "error_class" in names else SHARD_COLUMNS


def _np(array: pa.Array, fill: float = 0) -> np.ndarray:
    return array.fill_null(fill).to_numpy(zero_copy_only=False)


def struct_field(array: pa.Array, *names: str) -> pa.Array:
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
                stage, kind = error_stage_name(stage), error_class_name(kind)  # the rules of vidthinker.figures
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
            text = struct_field(flat, "caption")
            w = _np(pc.count_substring_regex(text, r"\S+"))
            captions.captions += len(flat)
            captions.empty += int((w == 0).sum())
            words.add_many(w)

        def per_record(values: np.ndarray, parents: np.ndarray = parents, n: int = n) -> np.ndarray:
            return np.bincount(parents, weights=values, minlength=n) if len(values) else np.zeros(n)

        if len(flat):
            usage = struct_field(flat, "trace", "usage")
            c_prompt = per_record(_np(struct_field(usage, "prompt_tokens")).astype(float))
            c_completion = per_record(_np(struct_field(usage, "completion_tokens")).astype(float))
            c_calls_each = _np(struct_field(usage, "calls")).astype(float)
            c_calls = per_record(c_calls_each)
            c_latency = per_record(_np(struct_field(flat, "trace", "latency_s")).astype(float))
            trace_error = struct_field(flat, "trace", "error")
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
            usage = struct_field(struct, "trace", "usage")
            prompt = np.where(present, _np(struct_field(usage, "prompt_tokens")), 0).astype(float)
            completion = np.where(present, _np(struct_field(usage, "completion_tokens")), 0).astype(float)
            calls = np.where(present, _np(struct_field(usage, "calls")), 0).astype(float)
            latency = np.where(present, _np(struct_field(struct, "trace", "latency_s")), 0).astype(float)
            errors = int((present & _np(struct_field(struct, "trace", "error").is_valid(), False).astype(bool)).sum())
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
        found, n = near_duplicate_groups(video_id, items)
        groups += found
        involved += n
    near = NearDuplicates(
        exact_groups=sum(g.kind == "exact" for g in groups),
        near_groups=sum(g.kind == "near" for g in groups),
        records_in_groups=involved,
        groups=groups[:MAX_LISTED_GROUPS],
    )
    near.share = round(near.records_in_groups / records, 6) if records else 0.0
    manifest = shard_manifest_json(path)
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
        errors_by_stage=tabulate_stage_errors(stage_errors, records),
        errors_by_reason=tabulate_reason_errors(reason_errors, reason_example, records, reason_classes),
        errors_by_class=tabulate_class_errors(class_errors),
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


def shard_manifest_json(path: Path) -> dict | None:
    from vidthinker.shards import manifest_path

    mpath = manifest_path(path)
    try:
        return json.loads(mpath.read_text()) if mpath.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None
