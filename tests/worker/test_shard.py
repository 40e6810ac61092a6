"""vidthinker.worker.shard: why a shard fails, the errors of its previous attempt, where the cache goes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from vidthinker.config import load_settings
from vidthinker.schema import ManifestRow, Provenance, QAPair, VideoITGRecord
from vidthinker.shards import failed_path, write_shard
from vidthinker.worker.shard import default_cache_dir, previous_errors, shard_failure

PROVENANCE = Provenance(pipeline_version="t", clip_seconds=5, grid_fps=1, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def record(i: int, error: str | None = None, cls: str | None = None) -> VideoITGRecord:
    return VideoITGRecord(id=f"v/{i}", video="v.mp4", video_id="v", qa_id=str(i), question="?", answer="",
                          error=error, error_stage="retrieve" if error else None, error_class=cls, provenance=PROVENANCE)


def row(video_id: str) -> ManifestRow:
    return ManifestRow(video_id=video_id, video=f"/nowhere/{video_id}.mp4", qa=[QAPair(qa_id="q", question="?")])


def test_a_shard_fails_only_on_transient_errors_over_the_share_or_an_endpoint_down():
    permanent = [record(0), record(1, "ModelReplyError: bad", "permanent"), record(2, "ModelReplyError: bad", "permanent")]
    assert shard_failure(permanent, [], 1, 0.2) == ""  # permanent errors never fail a shard
    transient = [record(0), record(1, "Timeout: slow", "transient"), record(2, "Timeout: slow", "transient")]
    why = shard_failure(transient, [], 1, 0.5)
    assert why.startswith("2 of 3 record(s) failed transiently (67% > annotate.max_transient_error_share 50%)")
    assert why.endswith("; top reason: Timeout")
    assert shard_failure(transient, [], 1, 0.7) == ""
    down = shard_failure([record(0, "EndpointDown: circuit open", "transient")], [row("b"), row("c")], 3, 0.9)
    assert down == "endpoint down: 2 of 3 video(s) not started, 1 record(s) with transient errors; top reason: EndpointDown"


def test_previous_errors_prefer_the_failed_attempt_and_default_to_permanent(tmp_path):
    shard = tmp_path / "shards" / "s.parquet"
    assert previous_errors(shard) == {}
    write_shard([record(0), record(1, "ModelReplyError: bad", "permanent")], shard)
    assert previous_errors(shard) == {"v/1": "permanent"}
    write_shard([record(0, "Timeout: slow", "transient"), record(1)], shard, failure="too many transient errors")
    assert failed_path(shard).is_file()
    assert previous_errors(shard) == {"v/0": "transient"}


def test_the_request_cache_is_the_setting_or_beside_the_shards(tmp_path):
    assert default_cache_dir(load_settings(None), tmp_path) == tmp_path / "cache"
    elsewhere = load_settings(None, [f"annotate.cache_dir={tmp_path / 'c'}"])
    assert Path(default_cache_dir(elsewhere, tmp_path / "out")) == tmp_path / "c"
