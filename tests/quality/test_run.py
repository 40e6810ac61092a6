"""A run's figures: shards merge into the run, agreement with ground truth, errors by class, repeated
questions by hash, stored figures reused until a shard changes, clear errors for unreadable inputs."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from tests.demo_support import copy_run
from vidthinker.formats import iter_records, read_manifest
from vidthinker.quality import run as Q
from vidthinker.quality.agreement import ground_truth_agreement
from vidthinker.quality.run import compute_run_quality
from vidthinker.quality.runs import load_run_quality, shard_paths
from vidthinker.quality.shard import compute_shard_quality
from vidthinker.shards import write_shard


def test_run_figures_merge_shards_and_agree_with_ground_truth(demo, runs, tmp_path):
    run = runs[0]
    quality = compute_run_quality(run, write=False)
    records = list(iter_records(run / "shards"))
    # one shard holding every record gives the same merged figures
    single = tmp_path / "single"
    write_shard(records, single / "shards" / "all.parquet")
    whole = compute_run_quality(single, write=False)
    for field in ("records", "ok", "errors", "videos", "errors_by_stage", "errors_by_reason", "errors_by_class", "frames_per_qa",
                  "clips_per_qa", "instruction_types", "retrieval", "captions", "stages", "near_duplicates",
                  "repeated_questions", "agreement"):
        assert getattr(quality, field) == getattr(whole, field), field
    manifest = read_manifest(demo / "synth" / "manifest.jsonl")
    assert quality.agreement == ground_truth_agreement(records, manifest)
    assert quality.ground_truth_manifest == str(demo / "synth" / "manifest.jsonl")
    assert quality.run_id == records[0].provenance.run_id and quality.created_at == records[0].provenance.created_at
    assert quality.models["caption"] == [records[0].provenance.caption_model]


def test_errors_by_class_and_shards_without_the_column(runs, tmp_path):
    import pyarrow.parquet as pq

    good = [r for r in iter_records(runs[0] / "shards") if r.ok][:4]

    def failed(record, kind, stage="caption", error="ModelTimeout: caption call timed out"):
        return record.model_copy(update={"error": error, "error_stage": stage, "error_class": kind})

    records = [good[0], failed(good[1], "transient"), failed(good[2], "permanent"),
               failed(good[3], "permanent", "retrieve", "ModelReplyError: not JSON")]
    new = tmp_path / "run" / "shards" / "new.parquet"
    write_shard(records, new)
    figures = compute_shard_quality(new)
    assert figures.errors_by_class == {"transient": 1, "permanent": 2}
    timeouts = next(r for r in figures.errors_by_reason if r.reason == "ModelTimeout")
    assert timeouts.count == 2 and timeouts.classes == {"transient": 1, "permanent": 1}
    # a shard written before error classes: no error_class column; its failed records count as unknown
    old = tmp_path / "run" / "shards" / "old.parquet"
    pq.write_table(pq.read_table(new).drop_columns(["error_class"]), old)
    assert "error_class" not in pq.read_schema(old).names
    assert compute_shard_quality(old).errors_by_class == {"unknown": 3}
    quality = compute_run_quality(tmp_path / "run", write=False)
    assert quality.errors_by_class == {"transient": 1, "permanent": 2, "unknown": 3}
    assert {s.shard: s.errors_by_class for s in quality.shards}["old.parquet"] == {"unknown": 3}
    # figures stored before error classes still load, with empty classes
    legacy = json.loads(quality.model_dump_json())
    legacy.pop("errors_by_class")
    for row in legacy["errors_by_reason"]:
        row.pop("classes")
    assert Q.RunQuality.model_validate(legacy).errors_by_class == {}


def test_near_duplicates_and_repeated_questions(runs):
    quality = compute_run_quality(runs[0], write=False)
    kinds = Counter(g.kind for g in quality.near_duplicates.groups)
    assert kinds == {"exact": 1, "near": 1}
    exact = next(g for g in quality.near_duplicates.groups if g.kind == "exact")
    assert exact.size == 2 and exact.qa_ids[1].endswith("-dup")
    assert quality.near_duplicates.records_in_groups == 4
    top = quality.repeated_questions.top
    assert top and all(t.videos >= 2 for t in top)
    assert quality.repeated_questions.records == quality.records


def test_repeated_questions_by_hash_equal_the_record_level_count(runs, tmp_path, monkeypatch):
    from collections import defaultdict

    run = copy_run(runs[2], tmp_path / "run")
    shutil.rmtree(run / "quality", ignore_errors=True)
    monkeypatch.setattr(Q, "TOP_REPEATED", 3)
    first = compute_run_quality(run, manifest=[])
    records = [r for p in shard_paths(run) for r in iter_records(p)]
    counts, videos, shown = Counter(), defaultdict(set), {}
    for r in records:
        key = Q.normalise_question(r.question)
        counts[key] += 1
        videos[key].add(r.video_id)
        shown.setdefault(key, r.question)
    expected = sorted(((n, len(videos[k]), k) for k, n in counts.items() if len(videos[k]) > 1), reverse=True)[:3]
    repeated = first.repeated_questions
    assert repeated.distinct == len(counts) and repeated.records == len(records)
    assert [(t.records, t.videos, t.question) for t in repeated.top] == [(n, v, shown[k]) for n, v, k in expected]
    assert first.run_ids == sorted({r.provenance.run_id for r in records})

    # a rerun merges the stored per-shard parts: no shard is read for figures or the run pass
    monkeypatch.setattr(Q, "compute_shard_quality", lambda *a, **k: pytest.fail("shard figures computed again"))
    monkeypatch.setattr(Q, "compute_shard_run_pass", lambda *a, **k: pytest.fail("run pass computed again"))
    again = compute_run_quality(run, manifest=[])
    assert again.repeated_questions == repeated and again.models == first.models
    assert again.created_at == first.created_at and again.pipeline_versions == first.pipeline_versions


def test_stored_figures_are_reused_until_a_shard_changes(runs, tmp_path):
    run = copy_run(runs[1], tmp_path / "run")
    shutil.rmtree(run / "quality", ignore_errors=True)
    first = compute_run_quality(run)
    stored = {p.name: p.stat().st_mtime_ns for p in (run / "quality").glob("shard-*.json")}
    assert len(stored) == len(shard_paths(run)) and (run / "quality" / "run.json").is_file()
    assert load_run_quality(run) == first
    # rewrite one shard with fewer records: only its figures are recomputed
    victim = shard_paths(run)[0]
    records = list(iter_records(victim))[:-1]
    write_shard(records, victim)
    second = compute_run_quality(run)
    again = {p.name: p.stat().st_mtime_ns for p in (run / "quality").glob("shard-*.json")}
    changed = {name for name in stored if stored[name] != again[name]}
    assert changed == {"shard-00000.json"}
    assert second.records == first.records - 1


def test_unreadable_inputs_are_clear_errors(tmp_path):
    (tmp_path / "empty" / "shards").mkdir(parents=True)
    with pytest.raises(Q.SchemaError, match="no parquet shards"):
        compute_run_quality(tmp_path / "empty")
    bad = tmp_path / "bad" / "shards" / "shard-00000.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet")
    with pytest.raises(Q.SchemaError, match="not a readable parquet shard"):
        compute_run_quality(tmp_path / "bad")


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_stored_figures_and_caches_get_the_umask_mode(runs, tmp_path, mask):
    import os

    run = copy_run(runs[0], tmp_path / "run")
    shutil.rmtree(run / "quality", ignore_errors=True)
    old = os.umask(mask)
    try:
        compute_run_quality(run)
    finally:
        os.umask(old)
    written = sorted((run / "quality").iterdir())
    assert {p.suffix for p in written} == {".json", ".parquet"} and len(written) == 2 * len(shard_paths(run)) + 1
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: oct(0o666 & ~mask) for p in written}
