"""The quality report models: the figures a shard and a run share (`QualityFigures`), one shard's
stored figures (`ShardQuality`), a run's (`RunQuality`) and the drift report, as stored in `<run>/quality/`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from vidthinker.quality.agreement import Agreement
from vidthinker.quality.distributions import Distribution

QUALITY_VERSION = "2"  # 2: errors by class (stored figures of another version are recomputed)
TRACE_STAGES = ("caption", "retrieve", "localize")  # the stages whose records carry model-call traces
NEAR_DUPLICATE_JACCARD = 0.8
MAX_LISTED_GROUPS = 50
MAX_GROUP_MEMBERS = 10
PSI_WARN, PSI_ALERT = 0.1, 0.25
ERROR_RATE_WARN_PP, ERROR_RATE_ALERT_PP = 5.0, 10.0
SHARE_WARN_PP, SHARE_ALERT_PP = 10.0, 20.0
MIN_DRIFT_RECORDS = 20


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
