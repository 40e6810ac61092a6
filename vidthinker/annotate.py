"""`vidthinker annotate`: a manifest in, record shards and a run summary out (the local engine).

The same `annotate_shard` function is what the Ray engine and the Airflow DAG call per shard.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from vidthinker.backends import open_stage_models
from vidthinker.config import Settings
from vidthinker.pipeline import VideoAnnotator, annotate_rows
from vidthinker.schema import ManifestRow, VideoITGRecord
from vidthinker.shards import ShardManifest, write_shard

PIPELINE_ORDER = ("probe", "decode", "caption", "retrieve", "localize")


class StageStats(BaseModel):
    calls: int = 0
    cached_or_free: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_latency_s: float = 0.0
    wall_s: float = 0.0


class RunSummary(BaseModel):
    run_id: str
    videos: int
    records: int
    ok: int
    errors: int
    errors_by_stage: dict[str, int] = Field(default_factory=dict)
    errors_by_reason: dict[str, int] = Field(default_factory=dict)
    stages: dict[str, StageStats] = Field(default_factory=dict)
    wall_s: float = 0.0
    shards: list[ShardManifest] = Field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.stages.values())

    @property
    def tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.stages.values())


def _reason(error: str) -> str:
    """The error's class, e.g. 'CorruptVideo' or 'ModelReplyError', for grouping."""
    head = error.split(":", 1)[0].strip()
    return head if head.replace("_", "").isalnum() and len(head) < 40 else "other"


def summarise(run_id: str, records: Sequence[VideoITGRecord], wall_s: float, clock: dict[str, float]) -> RunSummary:
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
            stats.prompt_tokens += trace.usage.prompt_tokens
            stats.completion_tokens += trace.usage.completion_tokens
            stats.model_latency_s += trace.latency_s
    for stage, seconds in clock.items():
        stages[stage].wall_s = round(seconds, 3)
    order = {name: i for i, name in enumerate(PIPELINE_ORDER)}
    stages = dict(sorted(stages.items(), key=lambda item: order.get(item[0], len(order))))
    failed = [r for r in records if not r.ok]
    return RunSummary(
        run_id=run_id,
        videos=len({r.video_id for r in records}),
        records=len(records),
        ok=len(records) - len(failed),
        errors=len(failed),
        errors_by_stage=dict(Counter(r.error_stage or "unknown" for r in failed)),
        errors_by_reason=dict(Counter(f"{r.error_stage}:{_reason(r.error or '')}" for r in failed)),
        stages=stages,
        wall_s=round(wall_s, 3),
    )


async def annotate_shard(
    rows: Sequence[ManifestRow],
    shard_path: Path,
    settings: Settings,
    *,
    run_id: str | None = None,
    cache_dir: Path | None = None,
    on_video_done: Callable[[ManifestRow, list[VideoITGRecord]], None] | None = None,
) -> RunSummary:
    """Annotate rows into one shard file (atomic) and return its summary."""
    run_id = run_id or uuid.uuid4().hex[:12]
    a = settings.annotate
    cache_dir = cache_dir or a.cache_dir or shard_path.parent.parent / "cache"
    started = time.perf_counter()
    async with open_stage_models(
        settings.models, cache_dir, need_captioner=not a.oracle_captions, need_verifier=a.verify_frames
    ) as models:
        annotator = VideoAnnotator(models, settings, run_id=run_id, created_at=dt.datetime.now(dt.UTC))
        records = await annotate_rows(annotator, rows, videos_in_flight=a.videos_in_flight, on_video_done=on_video_done)
        clock = dict(annotator.clock.seconds)
    manifest = write_shard(records, shard_path)
    summary = summarise(run_id, records, time.perf_counter() - started, clock)
    summary.shards.append(manifest)
    return summary


def run_annotation(
    rows: Sequence[ManifestRow],
    out_dir: Path,
    settings: Settings,
    *,
    on_video_done: Callable[[ManifestRow, list[VideoITGRecord]], None] | None = None,
) -> RunSummary:
    """The local engine: all rows into `out_dir/shards/shard-00000.parquet`, summary in `summary.json`."""
    summary = asyncio.run(annotate_shard(rows, out_dir / "shards" / "shard-00000.parquet", settings,
                                         cache_dir=settings.annotate.cache_dir or out_dir / "cache", on_video_done=on_video_done))
    (out_dir / "summary.json").write_text(json.dumps(summary.model_dump(mode="json"), indent=1) + "\n")
    return summary
