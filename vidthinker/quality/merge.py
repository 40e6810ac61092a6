"""Shard figures merged into a run's: counts add, distributions merge (`merge_distributions`), errors
by stage, reason and class are tabulated the same way for one shard and for many (stage order, error
classes and reasons come from `vidthinker.figures`; a failed record's class is "unknown" when its shard
predates the `error_class` column or the record has none)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from vidthinker.figures import error_class_sort_key, stage_sort_key
from vidthinker.quality.distributions import merge_distributions
from vidthinker.quality.models import (
    MAX_LISTED_GROUPS,
    TRACE_STAGES,
    CaptionStats,
    NearDuplicates,
    QualityFigures,
    ReasonErrors,
    RetrievalShares,
    StageCost,
    StageErrors,
)


def tabulate_stage_errors(counts: Mapping[str, int], records: int) -> dict[str, StageErrors]:
    """Failed records by stage with their rate, in pipeline order (`vidthinker.figures.stage_sort_key`)."""
    return {
        stage: StageErrors(errors=n, rate=round(n / records, 6) if records else 0.0)
        for stage, n in sorted(counts.items(), key=lambda item: stage_sort_key(item[0]))
    }


def tabulate_class_errors(counts: Mapping[str, int]) -> dict[str, int]:
    """Failed records by class (`vidthinker.figures.error_class_sort_key` order), zero counts left out."""
    return {k: n for k, n in sorted(counts.items(), key=lambda item: error_class_sort_key(item[0])) if n}


def tabulate_reason_errors(counts: Mapping[tuple[str, str], int], examples: Mapping[tuple[str, str], str], records: int,
                           classes: Mapping[tuple[str, str], Mapping[str, int]] | None = None) -> list[ReasonErrors]:
    """Failed records by (stage, reason), most frequent first, each with an example message and its classes."""
    return [
        ReasonErrors(stage=stage, reason=reason, count=n, rate=round(n / records, 6) if records else 0.0,
                     example=examples.get((stage, reason), ""),
                     classes=tabulate_class_errors((classes or {}).get((stage, reason), {})))
        for (stage, reason), n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


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
        "errors_by_stage": tabulate_stage_errors(stage_errors, records),
        "errors_by_reason": tabulate_reason_errors(reasons, examples, records, reason_classes),
        "errors_by_class": tabulate_class_errors(by_class),
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
