"""Shard planning, resume rules and the content hash (no models)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from vidthinker.schema import (
    ClipRetrieval,
    ManifestRow,
    Provenance,
    QAPair,
    StageTrace,
    Usage,
    VideoITGRecord,
)
from vidthinker.shards import (
    ShardSpec,
    finished_shard,
    manifest_path,
    plan_run,
    plan_shards,
    records_hash,
    shard_file,
    write_shard,
)


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


def test_plan_is_deterministic_sorted_and_content_addressed():
    rows = [row(f"v{i:02d}") for i in (7, 3, 9, 1, 5)]
    specs = plan_shards(rows, 2)
    assert [s.video_ids for s in specs] == [["v01", "v03"], ["v05", "v07"], ["v09"]]
    assert plan_shards(list(reversed(rows)), 2) == specs  # input order does not matter
    assert all(s.shard_id.startswith("shard-") and len(s.shard_id) == len("shard-") + 16 for s in specs)
    assert len({s.shard_id for s in specs}) == 3
    # the id names the videos, not the position: the same chunk in another plan has the same id
    assert plan_shards([row("v05"), row("v07")], 2, prefix="shard")[0].shard_id == specs[1].shard_id
    assert plan_shards(rows, 2, prefix="nightly")[0].shard_id.startswith("nightly-")
    with pytest.raises(ValueError, match="repeated video_id"):
        plan_shards([row("a"), row("a")], 2)
    with pytest.raises(ValueError):
        plan_shards(rows, 0)


def test_finished_shard_needs_parquet_manifest_and_same_videos(tmp_path):
    spec = ShardSpec(shard_id="shard-x", video_ids=["a", "b"])
    path = shard_file(tmp_path, "shard-x")
    assert path == tmp_path / "shards" / "shard-x.parquet"
    assert finished_shard(tmp_path, spec) is None
    manifest = write_shard([record("a"), record("b")], path, shard_id="shard-x", video_ids=["b", "a"])
    assert manifest.video_ids == ["a", "b"] and manifest.records == 2
    assert finished_shard(tmp_path, spec) == manifest
    assert finished_shard(tmp_path, ShardSpec(shard_id="shard-x", video_ids=["a"])) is None
    # a manifest whose counts do not match the parquet (e.g. a parquet from another write) is not trusted
    data = json.loads(manifest_path(path).read_text())
    manifest_path(path).write_text(json.dumps({**data, "records": 3}))
    assert finished_shard(tmp_path, spec) is None
    manifest_path(path).write_text(json.dumps(data))
    path.write_bytes(path.read_bytes()[:100])  # truncated parquet
    assert finished_shard(tmp_path, spec) is None
    path.unlink()
    assert finished_shard(tmp_path, spec) is None
    with pytest.raises(ValueError):
        shard_file(tmp_path, "../escape")


def test_incremental_plan_keeps_finished_shards_and_plans_only_new_videos(tmp_path):
    first = plan_run([row("a"), row("b"), row("c")], tmp_path, 2)
    assert [s.video_ids for s in first] == [["a", "b"], ["c"]]
    write_shard([record("a"), record("b")], shard_file(tmp_path, first[0].shard_id), shard_id=first[0].shard_id, video_ids=["a", "b"])
    # the manifest grew (a video sorted before the finished ones, and one after); shard size changed too
    second = plan_run([row("a"), row("b"), row("c"), row("0"), row("d")], tmp_path, 3)
    assert second[0] == first[0]  # the finished shard, as it is
    assert [s.video_ids for s in second[1:]] == [["0", "c", "d"]]
    assert second[1].shard_id not in {s.shard_id for s in first}
    assert sorted(v for s in second for v in s.video_ids) == ["0", "a", "b", "c", "d"]
    # the rerun of an interrupted run finds the very same unfinished shards
    assert plan_run([row("a"), row("b"), row("c")], tmp_path, 2) == first


def test_records_hash_ignores_run_timing_and_cache_replays_not_content():
    a = [record("a"), record("b")]
    replayed = [record("a", run_id="r2", latency=0.0, calls=0, when=dt.datetime(2027, 1, 1, tzinfo=dt.UTC)), record("b", run_id="r3")]
    assert records_hash(a) == records_hash(replayed)
    changed = [record("a"), record("b").model_copy(update={"clip_num": [2]})]
    assert records_hash(a) != records_hash(changed)
    assert records_hash(a) != records_hash(list(reversed(a)))
