"""vidthinker.figures: error reasons, error counts by stage / reason / class, and per-stage costs."""

from __future__ import annotations

import datetime as dt

from vidthinker.figures import (
    STAGE_ORDER,
    StageStats,
    error_reason,
    errors_by_class,
    errors_by_reason,
    errors_by_stage,
    merge_stage_stats,
    ordered_stages,
    stage_stats,
    transient_reasons,
)
from vidthinker.schema import ClipRetrieval, Provenance, StageTrace, Usage, VideoITGRecord

PROVENANCE = Provenance(pipeline_version="t", clip_seconds=5, grid_fps=1, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def record(i: int, error: str | None = None, stage: str | None = None, cls: str | None = None, **extra) -> VideoITGRecord:
    return VideoITGRecord(id=f"v/{i}", video="v.mp4", video_id="v", qa_id=str(i), question="?", answer="",
                          error=error, error_stage=stage, error_class=cls, provenance=PROVENANCE, **extra)


def test_error_reason_is_the_short_identifier_before_the_colon():
    assert error_reason("CorruptVideo: moov atom not found") == "CorruptVideo"
    assert error_reason("model_reply: bad json") == "model_reply"
    assert error_reason("a sentence, not a name: detail") == "other"
    assert error_reason("X" * 40 + ": too long to be a name") == "other"
    # no error text: "unknown", the rule the quality files and the dashboard show (issue 13: one rule;
    # before it, record-wise counting said "other" for an empty text; the pipeline never writes one)
    assert error_reason("") == "unknown"
    assert error_reason(None) == "unknown"


def test_error_counts_by_stage_reason_and_class_count_only_error_records():
    records = [
        record(0),
        record(1, "CorruptVideo: bad", "decode", "permanent"),
        record(2, "EndpointDown: gone", "retrieve", "transient"),
        record(3, "EndpointDown: gone", "retrieve", "transient"),
        record(4, "ModelReplyError: x", None, None),  # written before stages and classes
    ]
    assert errors_by_stage(records) == {"decode": 1, "retrieve": 2, "unknown": 1}
    # a record that names no stage / no class counts as "unknown" everywhere (before issue 13 settled it,
    # the manifests' counting wrote "None:..." and counted an unclassified error as "permanent")
    assert errors_by_reason(records) == {"decode:CorruptVideo": 1, "retrieve:EndpointDown": 2, "unknown:ModelReplyError": 1}
    assert errors_by_class(records) == {"permanent": 1, "transient": 2, "unknown": 1}
    assert transient_reasons(records) == {"retrieve:EndpointDown": 2}
    assert errors_by_stage([record(0)]) == errors_by_class([]) == {}


def test_stage_stats_sum_traces_in_pipeline_order_and_merge():
    def retrieval(calls: int, prompt: int, latency: float) -> ClipRetrieval:
        usage = Usage(calls=calls, prompt_tokens=prompt, completion_tokens=1)
        return ClipRetrieval(video_id="v", qa_id="q", trace=StageTrace(model="m", latency_s=latency, usage=usage))

    records = [record(0, retrieval=retrieval(1, 10, 0.25)), record(1, retrieval=retrieval(0, 10, 0.0))]
    stats = stage_stats(records, {"retrieve": 2.00049, "probe": 0.1})
    assert list(stats) == ["probe", "retrieve"]  # pipeline order, not the clock's
    assert stats["retrieve"] == StageStats(calls=1, cached_or_free=1, prompt_tokens=20, completion_tokens=2,
                                           model_latency_s=0.25, wall_s=2.0)
    merged = merge_stage_stats([stats, {"retrieve": StageStats(calls=2, wall_s=1.0), "extra": StageStats(calls=5)}])
    assert list(merged) == ["probe", "retrieve", "extra"]
    assert merged["retrieve"].calls == 3 and merged["retrieve"].wall_s == 3.0 and merged["extra"].calls == 5
    assert list(ordered_stages({name: StageStats() for name in reversed(STAGE_ORDER)})) == list(STAGE_ORDER)


def test_record_wise_and_column_wise_counts_follow_the_same_rules(tmp_path):
    # the shard manifests count records (vidthinker.figures), the quality files count columns
    # (vidthinker.quality.shard): on records that name no stage, no class or no error text, and on
    # stages outside the pipeline, both give the same stages, reasons, classes and stage order
    from vidthinker.quality.merge import tabulate_stage_errors
    from vidthinker.quality.shard import compute_shard_quality
    from vidthinker.schema import write_parquet

    records = [
        record(0),
        record(1, "CorruptVideo: bad", "decode", "permanent"),
        record(2, "EndpointDown: gone", "retrieve", "transient"),
        record(3, "ModelReplyError: x", None, None),
        record(4, "", "zeta", None),
        record(5, "a sentence, not a name: detail", "verify", "permanent"),
        record(6, "Boom: y", "alpha", "transient"),
    ]
    path = write_parquet(records, VideoITGRecord, tmp_path / "shard.parquet")
    figures = compute_shard_quality(path)
    assert {k: v.errors for k, v in figures.errors_by_stage.items()} == errors_by_stage(records)
    assert {f"{r.stage}:{r.reason}": r.count for r in figures.errors_by_reason} == errors_by_reason(records)
    assert figures.errors_by_class == errors_by_class(records) == {"transient": 2, "permanent": 2, "unknown": 2}
    assert errors_by_reason(records)["zeta:unknown"] == 1 and errors_by_reason(records)["unknown:ModelReplyError"] == 1
    # one stage order: pipeline stages first, then the others by name, for stage costs and error tables
    expected = ["decode", "retrieve", "alpha", "unknown", "verify", "zeta"]
    assert list(figures.errors_by_stage) == expected
    assert list(ordered_stages({name: StageStats() for name in reversed(expected)})) == expected
    assert list(tabulate_stage_errors(dict.fromkeys(reversed(expected), 1), 6)) == expected


def test_the_pipeline_names_the_stage_and_class_of_every_error_record():
    # so the "unknown" stage / class rule never applies to what the pipeline writes: its shard manifests
    # (errors_by_reason, errors_by_class) are the same as under the earlier "None:" / "permanent" rule
    from vidthinker.pipeline import VideoAnnotator
    from vidthinker.schema import ManifestRow, QAPair

    annotator = object.__new__(VideoAnnotator)  # _record reads only the provenance
    annotator.provenance = PROVENANCE
    row = ManifestRow(video_id="v", video="v.mp4", qa=[QAPair(qa_id="0", question="?", answer="")])
    failed = [annotator._record(row, row.qa[0], error="CorruptVideo: bad", error_stage="probe"),
              annotator._record(row, row.qa[0], error="EndpointDown: gone", error_stage="retrieve", transient=True)]
    assert [(r.error_stage, r.error_class) for r in failed] == [("probe", "permanent"), ("retrieve", "transient")]
    assert errors_by_class(failed) == {"permanent": 1, "transient": 1}
    assert errors_by_reason(failed) == {"probe:CorruptVideo": 1, "retrieve:EndpointDown": 1}
