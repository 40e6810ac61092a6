"""`RunSummary`: what a shard or a whole run did, as `summary.json` stores it, and its merge.

A worker returns one summary per shard (`summarise` over the shard's records); the engine merges the
summaries of the shards it ran with the manifests of the shards it skipped (`merge_summaries`). The
counts come from `vidthinker.figures`. The model sits here, not in `vidthinker.figures`, because it
holds the shards' manifests (`vidthinker.shards.ShardManifest`), a layer above the figures.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from vidthinker.figures import (
    StageStats,
    errors_by_class,
    errors_by_reason,
    errors_by_stage,
    merge_stage_stats,
    stage_stats,
    sum_counts,
    transient_reasons,
)
from vidthinker.schema import VideoITGRecord
from vidthinker.shards import ShardManifest

__all__ = ["RunSummary", "merge_summaries", "summarise"]


class RunSummary(BaseModel):
    """What a run did. Record counts cover every shard of the schedule (annotated now or skipped as already
    finished); `stages` (calls, tokens, seconds) covers only the work done in this run."""

    run_id: str
    videos: int
    records: int
    ok: int
    errors: int
    errors_by_stage: dict[str, int] = Field(default_factory=dict)
    errors_by_reason: dict[str, int] = Field(default_factory=dict)
    errors_by_class: dict[str, int] = Field(default_factory=dict, description="error records: transient / permanent / unknown")
    transient_by_reason: dict[str, int] = Field(default_factory=dict, description="transient error records by stage:reason")
    repaired: dict[str, int] = Field(
        default_factory=dict,
        description="records that had an error in the shard's previous attempt and are ok now, by that error's class",
    )
    stages: dict[str, StageStats] = Field(default_factory=dict)
    wall_s: float = 0.0
    shards: list[ShardManifest] = Field(default_factory=list, description="manifests of written and skipped shards")
    engine: str = "local"
    workers: int = 1
    skipped_shards: list[str] = Field(default_factory=list, description="already finished, not run again")
    failed_shards: dict[str, str] = Field(default_factory=dict, description="shard id → why it is not finished")
    transient_failures: list[str] = Field(
        default_factory=list,
        description="failed shards whose failure is transient (too many transient errors, endpoint down): a rerun redoes them",
    )
    shard_workers: dict[str, str] = Field(default_factory=dict, description="shard id → the worker that wrote it")
    settings_fingerprint: str = Field("", description="annotation fingerprint of the run's settings (vidthinker.fingerprint)")

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.stages.values())

    @property
    def tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.stages.values())

    def transient_failure_line(self) -> str | None:
        """One line on the shards that failed transiently (None when none did)."""
        if not self.transient_failures:
            return None
        records = sum(m.errors_by_class.get("transient", 0) for m in self.shards if m.shard_id in set(self.transient_failures))
        top = max(self.transient_by_reason.items(), key=lambda kv: (kv[1], kv[0]))[0] if self.transient_by_reason else None
        reason = top or next(iter(self.failed_shards.get(s, "") for s in self.transient_failures), "")
        return (f"{len(self.transient_failures)} shard(s) failed transiently ({records} record(s) with transient "
                f"errors); top reason: {reason}; rerun the same command to repair them")


def summarise(run_id: str, records: Sequence[VideoITGRecord], wall_s: float, clock: dict[str, float]) -> RunSummary:
    """The summary of records annotated in `wall_s` seconds (`clock`: wall seconds per stage)."""
    failed = [r for r in records if not r.ok]
    return RunSummary(
        run_id=run_id,
        videos=len({r.video_id for r in records}),
        records=len(records),
        ok=len(records) - len(failed),
        errors=len(failed),
        errors_by_stage=errors_by_stage(failed),
        errors_by_reason=errors_by_reason(failed),
        errors_by_class=errors_by_class(failed),
        transient_by_reason=transient_reasons(failed),
        stages=stage_stats(records, clock),
        wall_s=round(wall_s, 3),
    )


def merge_summaries(
    run_id: str,
    written: Sequence[RunSummary],
    skipped: Sequence[ShardManifest],
    wall_s: float,
    *,
    engine: str = "local",
    workers: int = 1,
    failed: dict[str, str] | None = None,
    shard_workers: dict[str, str] | None = None,
    settings_fingerprint: str = "",
    transient_failed: Sequence[str] = (),
) -> RunSummary:
    """One summary over the shards of a run: those annotated now (their summaries) and those skipped."""
    parts: list[RunSummary | ShardManifest] = [*written, *skipped]  # the error counts of both, summed (figures)
    transient_failures = [shard for summary in written for shard in summary.transient_failures]
    manifests = [m for summary in written for m in summary.shards] + list(skipped)
    return RunSummary(
        run_id=run_id, videos=sum(p.videos for p in parts), records=sum(p.records for p in parts),
        ok=sum(p.ok for p in parts), errors=sum(p.errors for p in parts),
        errors_by_stage=sum_counts(p.errors_by_stage for p in parts),
        errors_by_reason=sum_counts(p.errors_by_reason for p in parts),
        errors_by_class=sum_counts(p.errors_by_class for p in parts),
        transient_by_reason=sum_counts(s.transient_by_reason for s in written),
        repaired=sum_counts(s.repaired for s in written),
        stages=merge_stage_stats(s.stages for s in written),
        wall_s=round(wall_s, 3), shards=manifests, engine=engine, workers=workers,
        skipped_shards=[m.shard_id for m in skipped], failed_shards=dict(failed or {}),
        transient_failures=sorted(set(transient_failures) | set(transient_failed or ())),
        shard_workers=dict(shard_workers or {}), settings_fingerprint=settings_fingerprint,
    )
