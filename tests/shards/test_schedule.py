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
    ShardManifest,
    ShardSpec,
    StaleShardsError,
    finished_shard,
    finished_shards,
    manifest_path,
    plan_run,
    plan_shards,
    records_hash,
    shard_file,
    write_shard,
)

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
    assert finished_shard(tmp_path, spec, fingerprint=FP) is None
    manifest = write_shard([record("a"), record("b")], path, shard_id="shard-x", video_ids=["b", "a"], settings_fingerprint=FP)
    assert manifest.video_ids == ["a", "b"] and manifest.records == 2 and manifest.settings_fingerprint == FP
    assert finished_shard(tmp_path, spec, fingerprint=FP) == manifest
    assert finished_shard(tmp_path, spec, fingerprint=None) == manifest  # made with any settings
    assert finished_shard(tmp_path, spec, fingerprint=OLD) is None  # made with other settings: stale
    assert finished_shard(tmp_path, ShardSpec(shard_id="shard-x", video_ids=["a"]), fingerprint=FP) is None
    # a manifest whose counts do not match the parquet (e.g. a parquet from another write) is not trusted
    data = json.loads(manifest_path(path).read_text())
    manifest_path(path).write_text(json.dumps({**data, "records": 3}))
    assert finished_shard(tmp_path, spec, fingerprint=FP) is None
    manifest_path(path).write_text(json.dumps(data))
    path.write_bytes(path.read_bytes()[:100])  # truncated parquet
    assert finished_shard(tmp_path, spec, fingerprint=FP) is None
    path.unlink()
    assert finished_shard(tmp_path, spec, fingerprint=FP) is None
    with pytest.raises(ValueError):
        shard_file(tmp_path, "../escape")


def test_incremental_plan_keeps_finished_shards_and_plans_only_new_videos(tmp_path):
    first = plan_run([row("a"), row("b"), row("c")], tmp_path, 2, fingerprint=FP)
    assert [s.video_ids for s in first] == [["a", "b"], ["c"]]
    write_shard([record("a"), record("b")], shard_file(tmp_path, first[0].shard_id), shard_id=first[0].shard_id,
                video_ids=["a", "b"], settings_fingerprint=FP)
    # the manifest grew (a video sorted before the finished ones, and one after); shard size changed too
    second = plan_run([row("a"), row("b"), row("c"), row("0"), row("d")], tmp_path, 3, fingerprint=FP)
    assert second[0] == first[0]  # the finished shard, as it is
    assert [s.video_ids for s in second[1:]] == [["0", "c", "d"]]
    assert second[1].shard_id not in {s.shard_id for s in first}
    assert sorted(v for s in second for v in s.video_ids) == ["0", "a", "b", "c", "d"]
    # the rerun of an interrupted run finds the very same unfinished shards
    assert plan_run([row("a"), row("b"), row("c")], tmp_path, 2, fingerprint=FP) == first


def write_finished(out, video_ids, fingerprint):
    spec = plan_shards([row(v) for v in video_ids], len(video_ids))[0]
    write_shard([record(v) for v in video_ids], shard_file(out, spec.shard_id), shard_id=spec.shard_id,
                video_ids=video_ids, settings_fingerprint=fingerprint)
    return spec


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_shards_made_with_other_settings_are_stale_not_finished(tmp_path):
    rows = [row("a"), row("b"), row("c"), row("d")]
    kept = write_finished(tmp_path, ["a", "b"], OLD)
    other = write_finished(tmp_path, ["c"], OLD)
    before = snapshot(tmp_path)
    with pytest.raises(StaleShardsError) as caught:
        plan_run(rows, tmp_path, 2, fingerprint=FP)
    error = caught.value
    assert isinstance(error, ValueError) and error.fingerprint == FP
    assert sorted(m.shard_id for m in error.stale) == sorted([kept.shard_id, other.shard_id])
    message = str(error)
    assert f"run folder {tmp_path} holds 2 finished shard(s) made with other annotation settings" in message
    assert str(shard_file(tmp_path, min(kept.shard_id, other.shard_id))) in message  # an example shard file
    assert f"settings fingerprint there: {OLD}\n" in message and f"settings fingerprint now:   {FP}\n" in message
    assert "new --out folder" in message and "--redo-stale" in message and "engine.redo_stale=true" in message
    assert snapshot(tmp_path) == before  # nothing planned, nothing written
    assert finished_shards(tmp_path, fingerprint=FP) == []
    assert len(finished_shards(tmp_path, fingerprint=None)) == 2
    # opt-in: the stale shards are planned again as they are (same ids and videos), then the new videos
    redo = plan_run(rows, tmp_path, 2, fingerprint=FP, redo_stale=True)
    by_id = lambda specs: sorted(specs, key=lambda s: s.shard_id)
    assert by_id(redo[:2]) == by_id([kept, other])
    assert [s.video_ids for s in redo[2:]] == [["d"]]
    # once rewritten with this run's settings they are finished again
    write_finished(tmp_path, ["a", "b"], FP)
    write_finished(tmp_path, ["c"], FP)
    assert by_id(plan_run(rows, tmp_path, 2, fingerprint=FP)[:2]) == by_id([kept, other])
    # stale shards of videos the run does not plan are none of its business
    assert plan_run([row("x")], tmp_path, 2, fingerprint=OLD) == plan_shards([row("x")], 2)


def test_legacy_manifests_without_a_fingerprint_are_stale(tmp_path):
    spec = write_finished(tmp_path, ["a"], FP)
    path = manifest_path(shard_file(tmp_path, spec.shard_id))
    data = json.loads(path.read_text())
    del data["settings_fingerprint"]  # as written before fingerprints
    path.write_text(json.dumps(data))
    assert ShardManifest.model_validate_json(path.read_text()).settings_fingerprint == ""  # still loads
    assert finished_shard(tmp_path, spec, fingerprint=None) is not None
    assert finished_shard(tmp_path, spec, fingerprint=FP) is None
    with pytest.raises(StaleShardsError, match=r"settings fingerprint there: unknown \(written before fingerprints\)"):
        plan_run([row("a")], tmp_path, 1, fingerprint=FP)
    assert plan_run([row("a")], tmp_path, 1, fingerprint=FP, redo_stale=True) == [spec]
    # write_shard without a fingerprint writes an unknown one: stale for every run
    write_shard([record("b")], shard_file(tmp_path, "shard-b"), video_ids=["b"])
    with pytest.raises(StaleShardsError, match="2 finished shard"):
        plan_run([row("a"), row("b")], tmp_path, 1, fingerprint=FP)


def test_several_old_fingerprints_are_counted(tmp_path):
    write_finished(tmp_path, ["a"], OLD)
    write_finished(tmp_path, ["b"], OLD)
    write_finished(tmp_path, ["c"], "")
    with pytest.raises(StaleShardsError) as caught:
        plan_run([row("a"), row("b"), row("c")], tmp_path, 1, fingerprint=FP)
    assert f"there: {OLD} (2 shards), unknown (written before fingerprints) (1 shards)" in str(caught.value)


def test_a_stale_shard_holding_videos_outside_the_run_cannot_be_redone(tmp_path):
    write_finished(tmp_path, ["a", "b"], OLD)
    with pytest.raises(StaleShardsError, match=r"--redo-stale cannot annotate them again: .* holds \['b'\]"):
        plan_run([row("a")], tmp_path, 1, fingerprint=FP, redo_stale=True)


def test_a_finished_shard_with_these_settings_wins_over_an_overlapping_stale_one(tmp_path):
    fresh = write_finished(tmp_path, ["b", "c"], FP)
    write_finished(tmp_path, ["a", "b"], OLD)
    # the stale shard overlaps the fresh one: it is not taken (as before), so it is not reported either
    assert plan_run([row("b"), row("c")], tmp_path, 2, fingerprint=FP) == [fresh]


def test_records_hash_ignores_run_timing_and_cache_replays_not_content():
    a = [record("a"), record("b")]
    replayed = [record("a", run_id="r2", latency=0.0, calls=0, when=dt.datetime(2027, 1, 1, tzinfo=dt.UTC)), record("b", run_id="r3")]
    assert records_hash(a) == records_hash(replayed)
    changed = [record("a"), record("b").model_copy(update={"clip_num": [2]})]
    assert records_hash(a) != records_hash(changed)
    assert records_hash(a) != records_hash(list(reversed(a)))
