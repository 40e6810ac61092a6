"""vidthinker.worker.summary: a shard's summary from its records, and a run's from its shards."""

from __future__ import annotations

from tests.worker.test_shard import record
from vidthinker.figures import StageStats
from vidthinker.shards import write_shard
from vidthinker.worker.summary import merge_summaries, summarise


def test_a_run_summary_adds_written_shards_and_skipped_manifests(tmp_path):
    written = summarise("r", [record(0), record(1, "Timeout: slow", "transient")], 1.5, {"retrieve": 1.25})
    assert (written.records, written.ok, written.errors, written.videos) == (2, 1, 1, 1)
    assert written.errors_by_reason == {"retrieve:Timeout": 1} and written.transient_by_reason == {"retrieve:Timeout": 1}
    assert written.stages == {"retrieve": StageStats(wall_s=1.25)}
    written.repaired = {"permanent": 1}
    skipped = write_shard([record(2, "ModelReplyError: bad", "permanent")], tmp_path / "s.parquet")

    run = merge_summaries("run", [written, written], [skipped], 9.0, engine="ray", workers=2,
                          failed={"x": "why"}, transient_failed=["x"])
    assert (run.records, run.ok, run.errors, run.videos) == (5, 2, 3, 3)
    assert run.errors_by_stage == {"retrieve": 3}
    assert run.errors_by_reason == {"retrieve:Timeout": 2, "retrieve:ModelReplyError": 1}
    assert run.errors_by_class == {"transient": 2, "permanent": 1} and run.repaired == {"permanent": 2}
    assert run.stages["retrieve"].wall_s == 2.5
    assert run.skipped_shards == ["s"] and run.failed_shards == {"x": "why"} and run.transient_failures == ["x"]
    assert (run.engine, run.workers, run.wall_s) == ("ray", 2, 9.0)
