"""Record figures, computed in one place: the stage order, an error's reason, error counts by stage,
reason and class, and the per-stage cost of a run (`StageStats`) with its merge.

Everything that counts records uses these functions: a shard manifest stores them
(`vidthinker.shards`), the run summary sums them (`vidthinker.worker.summary`), the Airflow tasks
(`vidthinker.orchestration.tasks`, `.progress`) and the quality figures read them. This is a bottom
layer: it imports only the record schema.

Two per-stage cost models exist on purpose: `StageStats` here is what `summary.json` stores (calls,
tokens, model latency and the stage's wall seconds of the run), `vidthinker.quality.StageCost` is what
the quality files store (per-record distributions, trace counts, no wall time). Their JSON differs, so
merging them into one model would change one of the two files.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel

from vidthinker.schema import VideoITGRecord

__all__ = [
    "ERROR_CLASSES", "STAGE_ORDER", "UNKNOWN", "StageStats", "error_class_name", "error_class_sort_key",
    "error_reason", "error_stage_name", "errors_by_class", "errors_by_reason", "errors_by_stage", "merge_stage_stats",
    "ordered_stages", "reason_key", "stage_sort_key", "stage_stats", "sum_counts", "transient_reasons",
]

STAGE_ORDER = ("probe", "decode", "caption", "retrieve", "localize")  # the pipeline's stages, in the order they run
ERROR_CLASSES = ("transient", "permanent", "unknown")
UNKNOWN = "unknown"  # the stage, reason or class of an error record that names none

# The rules below are the only ones: the record-wise counts here (shard manifests, run summaries) and the
# column-wise counts of `vidthinker.quality.shard` (quality files, dashboard, card) both use them.


def error_reason(error: str | None) -> str:
    """The error's reason for grouping, e.g. 'CorruptVideo' or 'ModelReplyError' (the text before the
    first ':' when it is a short identifier, else 'other'); 'unknown' when there is no error text."""
    if not error:
        return UNKNOWN
    head = error.split(":", 1)[0].strip()
    return head if head.replace("_", "").isalnum() and len(head) < 40 else "other"


def error_stage_name(stage: str | None) -> str:
    """The stage an error record is counted under: the stage it names, 'unknown' when it names none."""
    return stage or UNKNOWN


def error_class_name(error_class: str | None) -> str:
    """The class an error record is counted under: transient / permanent, 'unknown' when it has none
    (shards written before error classes; the pipeline classes every error it writes)."""
    return error_class or UNKNOWN


def reason_key(stage: str | None, error: str | None) -> str:
    """`stage:reason`, the key of `errors_by_reason` (`error_stage_name`, `error_reason`)."""
    return f"{error_stage_name(stage)}:{error_reason(error)}"


def stage_sort_key(stage: str) -> tuple[int, str]:
    """Sort key of a stage name: pipeline order (`STAGE_ORDER`), then other stages by name."""
    return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), stage)


def error_class_sort_key(error_class: str) -> tuple[int, str]:
    """Sort key of an error class: `ERROR_CLASSES` order, then others by name."""
    return (ERROR_CLASSES.index(error_class) if error_class in ERROR_CLASSES else len(ERROR_CLASSES), error_class)


def errors_by_stage(records: Iterable[VideoITGRecord]) -> dict[str, int]:
    """Error records by the stage that failed them (`error_stage_name`)."""
    return dict(Counter(error_stage_name(r.error_stage) for r in records if not r.ok))


def errors_by_reason(records: Iterable[VideoITGRecord]) -> dict[str, int]:
    """Error records by `stage:reason` (`reason_key`)."""
    return dict(Counter(reason_key(r.error_stage, r.error) for r in records if not r.ok))


def errors_by_class(records: Iterable[VideoITGRecord]) -> dict[str, int]:
    """Error records by class (`error_class_name`: transient / permanent / unknown)."""
    return dict(Counter(error_class_name(r.error_class) for r in records if not r.ok))


def transient_reasons(records: Iterable[VideoITGRecord]) -> dict[str, int]:
    """Records with transient errors by `stage:reason`."""
    return dict(Counter(reason_key(r.error_stage, r.error) for r in records if r.error_class == "transient"))


def sum_counts(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Counts by key (errors by stage, reason or class) of several shards added, keys in first-seen order."""
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    return dict(total)


class StageStats(BaseModel):
    """The cost of one stage in a run, as `summary.json` stores it."""

    calls: int = 0
    cached_or_free: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_latency_s: float = 0.0
    wall_s: float = 0.0


def ordered_stages(stages: Mapping[str, StageStats]) -> dict[str, StageStats]:
    """`stages` in pipeline order (`stage_sort_key`: other stages after, by name)."""
    return dict(sorted(stages.items(), key=lambda item: stage_sort_key(item[0])))


def stage_stats(records: Sequence[VideoITGRecord], clock: Mapping[str, float]) -> dict[str, StageStats]:
    """Calls, tokens and model latency per stage from the records' traces (a trace without a billable
    call, a cache hit or an embedding, counts as cached_or_free), and each stage's wall seconds from
    `clock` (stage → seconds)."""
    stages: dict[str, StageStats] = defaultdict(StageStats)
    for record in records:
        traces = [("caption", c.trace) for c in record.captions]
        if record.retrieval is not None:
            traces.append(("retrieve", record.retrieval.trace))
        if record.localization is not None:
            traces.append(("localize", record.localization.trace))
        for stage, trace in traces:
            stats = stages[stage]
            stats.calls += trace.usage.calls
            stats.cached_or_free += trace.usage.calls == 0
            stats.prompt_tokens += trace.usage.prompt_tokens
            stats.completion_tokens += trace.usage.completion_tokens
            stats.model_latency_s += trace.latency_s
    for stage, seconds in clock.items():
        stages[stage].wall_s = round(seconds, 3)
    return ordered_stages(stages)


def merge_stage_stats(parts: Iterable[Mapping[str, StageStats]]) -> dict[str, StageStats]:
    """The per-stage costs of several shards summed (seconds rounded to ms at each step)."""
    stages: dict[str, StageStats] = defaultdict(StageStats)
    for part in parts:
        for name, s in part.items():
            t = stages[name]
            t.calls += s.calls
            t.cached_or_free += s.cached_or_free
            t.prompt_tokens += s.prompt_tokens
            t.completion_tokens += s.completion_tokens
            t.model_latency_s = round(t.model_latency_s + s.model_latency_s, 3)
            t.wall_s = round(t.wall_s + s.wall_s, 3)
    return ordered_stages(stages)
