"""Quality figures: what the column-wise shard pass computes equals the record-level truth; shards merge
into the run; stored figures are reused until a shard changes; drift flags a shifted run."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter

import numpy as np
import pytest

from tests.demo_support import copy_run, demo_root
from vidthinker import quality as Q
from vidthinker.worker.summary import summarise
from vidthinker.formats import iter_records, read_manifest
from vidthinker.quality import (
    compute_run_quality,
    compute_shard_quality,
    find_runs,
    ground_truth_agreement,
    js_divergence,
    load_run_quality,
    merge_distributions,
    previous_runs,
    psi,
    shard_paths,
)
from vidthinker.shards import write_shard


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_root(tmp_path_factory)


@pytest.fixture(scope="module")
def runs(demo):
    return find_runs(demo / "runs")


def test_runs_are_found_oldest_first(demo, runs):
    assert len(runs) == 3
    assert find_runs(runs[1]) == [runs[1]]
    assert previous_runs(runs[2]) == runs[:2]
    assert previous_runs(runs[0]) == []


def test_shard_figures_match_the_records(runs, monkeypatch):
    monkeypatch.setattr(Q, "BATCH_ROWS", 7)  # several batches per shard
    run = runs[1]
    for path in shard_paths(run):
        figures = compute_shard_quality(path)
        records = list(iter_records(path))
        good = [r for r in records if r.ok]
        assert figures.records == len(records) and figures.ok == len(good)
        assert figures.videos == len({r.video_id for r in records})
        assert figures.frames_per_qa.values == dict(sorted(Counter(len(r.frame_num) for r in good).items()))
        assert figures.clips_per_qa.values == dict(sorted(Counter(len(r.clip_num) for r in good).items()))
        assert figures.instruction_types == dict(sorted(Counter(r.instruction_type or "unknown" for r in good).items()))
        summary = summarise("x", records, 0.0, {})
        assert {k: v.errors for k, v in figures.errors_by_stage.items()} == summary.errors_by_stage
        assert {f"{r.stage}:{r.reason}": r.count for r in figures.errors_by_reason} == summary.errors_by_reason
        for stage, stats in summary.stages.items():
            cost = figures.stages[stage]
            assert (cost.calls, cost.prompt_tokens, cost.completion_tokens) == (
                stats.calls, stats.prompt_tokens, stats.completion_tokens)
            assert cost.latency_s == pytest.approx(stats.model_latency_s, abs=1e-6)
        words = [len(c.caption.split()) for r in records for c in r.captions]
        assert figures.captions.captions == len(words) and figures.captions.words.values == dict(sorted(Counter(words).items()))
        none = sum(1 for r in good if r.captions and not r.clip_num)
        every = sum(1 for r in good if r.captions and r.clip_num and len(r.clip_num) >= len(r.captions))
        assert (figures.retrieval.none, figures.retrieval.all) == (none, every)
        tokens = [sum(t.usage.prompt_tokens + t.usage.completion_tokens for t in
                      [c.trace for c in r.captions] + [x.trace for x in (r.retrieval, r.localization) if x])
                  for r in records]
        assert figures.tokens_per_record.sum == sum(tokens)
        if good:
            assert figures.frames_per_qa.quantiles["p50"] == pytest.approx(np.quantile([len(r.frame_num) for r in good], 0.5))
        else:  # the shard of the broken upload: every record failed at probe
            assert figures.frames_per_qa.count == 0 and figures.errors_by_stage["probe"].errors == len(records)


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


def test_drift_flags_the_shifted_run_and_not_a_copy(runs, tmp_path):
    base = [compute_run_quality(r, write=False) for r in runs[:2]]
    drifted = compute_run_quality(runs[2], previous_runs=base, write=False)
    assert drifted.drift.level == "alert"
    levels = {c.metric: c.level for c in drifted.drift.checks}
    assert levels["retrieval_all_share"] == "alert" and levels["frames_per_qa"] == "alert"
    same = compute_run_quality(runs[1], previous_runs=[runs[1]], write=False)
    assert same.drift.level == "ok"
    assert all((c.psi or 0) < 1e-9 and (c.js or 0) < 1e-9 and not c.delta_pp for c in same.drift.checks)
    assert compute_run_quality(runs[0], write=False).drift is None


def test_psi_and_js():
    p = np.array([0.5, 0.3, 0.2])
    assert psi(p, p) == pytest.approx(0) and js_divergence(p, p) == pytest.approx(0)
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    q = np.array([0.2, 0.3, 0.5])
    assert psi(p, q) == pytest.approx(float(np.sum((p - q) * np.log(p / q))), rel=1e-3)
    assert 0 < js_divergence(p, q) < 1


def test_distributions_merge_and_quantiles():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 30, 500), rng.integers(5, 60, 300)
    da, db = Q._Dist(), Q._Dist()
    da.add_many(a)
    db.add_many(b)
    merged = merge_distributions([da.model(), db.model()])
    both = np.concatenate([a, b])
    assert merged.count == len(both) and merged.sum == both.sum()
    for q in Q.QUANTILES:
        assert merged.quantiles[Q._q_name(q)] == pytest.approx(np.quantile(both, q))
    lat = rng.gamma(2.0, 1.0, 2000)
    dl = Q._Dist(Q.LATENCY_EDGES)
    dl.add_many(lat)
    model = dl.model()
    assert model.quantiles["p50"] == pytest.approx(np.quantile(lat, 0.5), rel=0.25)
    assert sum(model.histogram.counts) == 2000
    # JSON round trip (edges stay finite, integer keys come back as ints)
    again = Q.Distribution.model_validate_json(model.model_dump_json())
    assert again == model and all(math.isfinite(e) for e in again.histogram.edges)
    counts = Q.Distribution.model_validate_json(merged.model_dump_json())
    assert counts == merged
    assert json.loads(merged.model_dump_json())["values"]


def test_unreadable_inputs_are_clear_errors(tmp_path):
    (tmp_path / "empty" / "shards").mkdir(parents=True)
    with pytest.raises(Q.SchemaError, match="no parquet shards"):
        compute_run_quality(tmp_path / "empty")
    bad = tmp_path / "bad" / "shards" / "shard-00000.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet")
    with pytest.raises(Q.SchemaError, match="not a readable parquet shard"):
        compute_run_quality(tmp_path / "bad")


def test_quality_command(runs, tmp_path):
    import typer
    from typer.testing import CliRunner

    from vidthinker.quality import quality_command

    app = typer.Typer()
    app.command("quality")(quality_command)
    app.command("noop")(lambda: None)
    run = copy_run(runs[2], tmp_path / "runs" / runs[2].name)
    copy_run(runs[0], tmp_path / "runs" / runs[0].name)
    shutil.rmtree(run / "quality", ignore_errors=True)
    done = CliRunner().invoke(app, ["quality", "--out", str(run)])
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "36 records" in text and "drift vs run-01" in text and (run / "quality" / "run.json").is_file()
    by_class = load_run_quality(run).errors_by_class
    assert by_class and "errors by class: " + ", ".join(f"{k} {n}" for k, n in by_class.items()) in text
    missing = CliRunner().invoke(app, ["quality", "--out", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such run folder" in " ".join(missing.output.split())


def test_shard_drift_compares_new_shards_with_the_rest(runs, tmp_path):
    from vidthinker.quality import shard_drift

    folder = tmp_path / "out"
    (folder / "shards").mkdir(parents=True)
    for i, run in enumerate(runs):  # three "DAG runs" worth of shards in one out_dir
        for shard in shard_paths(run)[:2]:
            shutil.copy2(shard, folder / "shards" / f"r{i}-{shard.name}")
    new = [p for p in shard_paths(folder) if p.name.startswith("r2-")]
    report = shard_drift(folder, new)
    assert report is not None and report.level == "alert"
    assert sorted(report.baseline_runs) == sorted(p.name for p in shard_paths(folder) if not p.name.startswith("r2-"))
    assert shard_drift(folder, []) is None
