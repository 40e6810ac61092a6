"""Manifest rows and records for the shard tests (no models), and a finished shard written with them."""

from __future__ import annotations

import datetime as dt

from vidthinker.schema import (
    ClipRetrieval,
    ManifestRow,
    Provenance,
    QAPair,
    StageTrace,
    Usage,
    VideoITGRecord,
)
from vidthinker.shards import assign_shards, shard_file, write_shard

FP = "0123456789abcdef"  # the settings fingerprint of "this run"
OLD = "fedcba9876543210"  # another run's


def row(video_id: str) -> ManifestRow:
    return ManifestRow(video_id=video_id, video=f"/videos/{video_id}.mp4",
                       qa=[QAPair(qa_id="q0", question="What moves?", answer="a ball")])


def record(video_id: str, *, run_id="r1", latency=0.5, calls=1, when=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) -> VideoITGRecord:
    trace = StageTrace(model="m", raw_output='{"clips": [1]}', latency_s=latency, usage=Usage(prompt_tokens=10, completion_tokens=3, calls=calls))
    return VideoITGRecord(
        id=f"{video_id}/q0", video=f"/videos/{video_id}.mp4", question="What moves?", answer="a ball",
        clip_num=[1], video_id=video_id, qa_id="q0",
        provenance=Provenance(pipeline_version="0", run_id=run_id, clip_seconds=5, grid_fps=1, created_at=when),
        retrieval=ClipRetrieval(video_id=video_id, qa_id="q0", clip_ids=[1], trace=trace),
    )


def write_finished(out, video_ids, fingerprint):
    spec = assign_shards([row(v) for v in video_ids], len(video_ids))[0]
    write_shard([record(v) for v in video_ids], shard_file(out, spec.shard_id), shard_id=spec.shard_id,
                video_ids=video_ids, settings_fingerprint=fingerprint)
    return spec


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}
