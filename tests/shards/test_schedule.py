"""Which videos go into which shard, and resuming a run folder: assign_shards / schedule_run (no models)."""

from __future__ import annotations

import json

import pytest

from tests.shards.shard_records import FP, OLD, record, row, snapshot, write_finished
from vidthinker.shards import (
    ShardManifest,
    StaleShardsError,
    assign_shards,
    finished_shard,
    finished_shards,
    manifest_path,
    schedule_run,
    shard_file,
    write_shard,
)


def test_assign_shards_is_deterministic_sorted_and_content_addressed():
    rows = [row(f"v{i:02d}") for i in (7, 3, 9, 1, 5)]
    specs = assign_shards(rows, 2)
    assert [s.video_ids for s in specs] == [["v01", "v03"], ["v05", "v07"], ["v09"]]
    assert assign_shards(list(reversed(rows)), 2) == specs  # input order does not matter
    assert all(s.shard_id.startswith("shard-") and len(s.shard_id) == len("shard-") + 16 for s in specs)
    assert len({s.shard_id for s in specs}) == 3
    # the id names the videos, not the position: the same chunk in another plan has the same id
    assert assign_shards([row("v05"), row("v07")], 2, prefix="shard")[0].shard_id == specs[1].shard_id
    assert assign_shards(rows, 2, prefix="nightly")[0].shard_id.startswith("nightly-")
    with pytest.raises(ValueError, match="repeated video_id"):
        assign_shards([row("a"), row("a")], 2)
    with pytest.raises(ValueError):
        assign_shards(rows, 0)


def test_incremental_schedule_keeps_finished_shards_and_assigns_only_new_videos(tmp_path):
    first = schedule_run([row("a"), row("b"), row("c")], tmp_path, 2, fingerprint=FP)
    assert [s.video_ids for s in first] == [["a", "b"], ["c"]]
    write_shard([record("a"), record("b")], shard_file(tmp_path, first[0].shard_id), shard_id=first[0].shard_id,
                video_ids=["a", "b"], settings_fingerprint=FP)
    # the manifest grew (a video sorted before the finished ones, and one after); shard size changed too
    second = schedule_run([row("a"), row("b"), row("c"), row("0"), row("d")], tmp_path, 3, fingerprint=FP)
    assert second[0] == first[0]  # the finished shard, as it is
    assert [s.video_ids for s in second[1:]] == [["0", "c", "d"]]
    assert second[1].shard_id not in {s.shard_id for s in first}
    assert sorted(v for s in second for v in s.video_ids) == ["0", "a", "b", "c", "d"]
    # the rerun of an interrupted run finds the very same unfinished shards
    assert schedule_run([row("a"), row("b"), row("c")], tmp_path, 2, fingerprint=FP) == first


def test_shards_made_with_other_settings_are_stale_not_finished(tmp_path):
    rows = [row("a"), row("b"), row("c"), row("d")]
    kept = write_finished(tmp_path, ["a", "b"], OLD)
    other = write_finished(tmp_path, ["c"], OLD)
    before = snapshot(tmp_path)
    with pytest.raises(StaleShardsError) as caught:
        schedule_run(rows, tmp_path, 2, fingerprint=FP)
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
    redo = schedule_run(rows, tmp_path, 2, fingerprint=FP, redo_stale=True)
    by_id = lambda specs: sorted(specs, key=lambda s: s.shard_id)
    assert by_id(redo[:2]) == by_id([kept, other])
    assert [s.video_ids for s in redo[2:]] == [["d"]]
    # once rewritten with this run's settings they are finished again
    write_finished(tmp_path, ["a", "b"], FP)
    write_finished(tmp_path, ["c"], FP)
    assert by_id(schedule_run(rows, tmp_path, 2, fingerprint=FP)[:2]) == by_id([kept, other])
    # stale shards of videos the run does not plan are none of its business
    assert schedule_run([row("x")], tmp_path, 2, fingerprint=OLD) == assign_shards([row("x")], 2)


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
        schedule_run([row("a")], tmp_path, 1, fingerprint=FP)
    assert schedule_run([row("a")], tmp_path, 1, fingerprint=FP, redo_stale=True) == [spec]
    # write_shard without a fingerprint writes an unknown one: stale for every run
    write_shard([record("b")], shard_file(tmp_path, "shard-b"), video_ids=["b"])
    with pytest.raises(StaleShardsError, match="2 finished shard"):
        schedule_run([row("a"), row("b")], tmp_path, 1, fingerprint=FP)


def test_several_old_fingerprints_are_counted(tmp_path):
    write_finished(tmp_path, ["a"], OLD)
    write_finished(tmp_path, ["b"], OLD)
    write_finished(tmp_path, ["c"], "")
    with pytest.raises(StaleShardsError) as caught:
        schedule_run([row("a"), row("b"), row("c")], tmp_path, 1, fingerprint=FP)
    assert f"there: {OLD} (2 shards), unknown (written before fingerprints) (1 shards)" in str(caught.value)


def test_a_stale_shard_holding_videos_outside_the_run_cannot_be_redone(tmp_path):
    write_finished(tmp_path, ["a", "b"], OLD)
    with pytest.raises(StaleShardsError, match=r"--redo-stale cannot annotate them again: .* holds \['b'\]"):
        schedule_run([row("a")], tmp_path, 1, fingerprint=FP, redo_stale=True)


def test_a_finished_shard_with_these_settings_wins_over_an_overlapping_stale_one(tmp_path):
    fresh = write_finished(tmp_path, ["b", "c"], FP)
    write_finished(tmp_path, ["a", "b"], OLD)
    # the stale shard overlaps the fresh one: it is not taken (as before), so it is not reported either
    assert schedule_run([row("b"), row("c")], tmp_path, 2, fingerprint=FP) == [fresh]