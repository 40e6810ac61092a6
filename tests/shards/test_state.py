"""Whether a shard is finished: parquet, manifest, same videos, same settings."""

from __future__ import annotations

import json

import pytest

from tests.shards.shard_records import FP, OLD, record
from vidthinker.shards import ShardSpec, finished_shard, manifest_path, shard_file, write_shard


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
