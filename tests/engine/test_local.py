"""The local engine: resume, incremental runs, and a `vidthinker annotate` killed mid-shard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import vidthinker.worker.stage_models
from tests.engine.conftest import cached_replies, cli_sets, dataset_hash, read_dataset, settings_for
from tests.servers.openai_stub import StubServer
from tests.test_pipeline import scripted_model
from vidthinker.cli import app
from vidthinker.engine import run_annotation
from vidthinker.fingerprint import annotation_fingerprint
from vidthinker.shards import (
    LOCK_NAME,
    StaleShardsError,
    assign_shards,
    finished_shard,
    finished_shards,
    shard_file,
    shards_dir,
)


def counting_opens(monkeypatch) -> list:
    opened = []
    real = vidthinker.worker.stage_models.open_stage_models

    def counting(*args, **kwargs):
        opened.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(vidthinker.worker.stage_models, "open_stage_models", counting)
    return opened


def test_rerun_skips_finished_shards_and_calls_no_model(baseline, stub, tmp_path, monkeypatch):
    opened = counting_opens(monkeypatch)
    out = tmp_path / "run"
    settings = settings_for(stub.base_url)
    first = run_annotation(baseline.rows, out, settings)
    assert len(first.shards) == 3 and len(opened) == 1  # three shards, the models opened once
    opened.clear()
    stamps = {p.name: p.stat().st_mtime_ns for p in shards_dir(out).iterdir()}
    before = stub.count
    shards = []
    summary = run_annotation(baseline.rows, out, settings, on_shard_done=shards.append)
    assert stub.count == before and not opened  # no model call at all, no model even opened
    assert {r.status for r in shards} == {"skipped"} and len(shards) == len(baseline.rows)
    assert sorted(summary.skipped_shards) == sorted(s.shard_id for s in assign_shards(baseline.rows, 1))
    assert summary.records == len(baseline.ids) and summary.calls == 0
    assert {p.name: p.stat().st_mtime_ns for p in shards_dir(out).iterdir()} == stamps  # nothing rewritten
    assert dataset_hash(out) == baseline.hash
    assert json.loads((out / "summary.json").read_text())["skipped_shards"] == summary.skipped_shards


def files_of(folder) -> dict:
    """Every file a run wrote, but the writer lock (taken and released by every run)."""
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


def test_rerun_with_other_settings_stops_before_any_work_and_redo_stale_rewrites(baseline, stub, tmp_path, monkeypatch):
    out = tmp_path / "run"
    settings = settings_for(stub.base_url)
    old = annotation_fingerprint(settings)
    first = run_annotation(baseline.rows, out, settings)
    assert first.settings_fingerprint == old and {m.settings_fingerprint for m in first.shards} == {old}
    assert json.loads((out / "summary.json").read_text())["settings_fingerprint"] == old

    # the same models at another endpoint, other timeouts, concurrency and shard size: still finished
    opened = counting_opens(monkeypatch)
    elsewhere = settings_for("http://127.0.0.1:9/v1", "models.max_in_flight=3", "models.timeout_s=30",
                             "engine.shard_size=5", "annotate.videos_in_flight=1")
    assert annotation_fingerprint(elsewhere) == old
    assert len(run_annotation(baseline.rows, out, elsewhere).skipped_shards) == 3 and not opened

    # a content setting changed: the run stops before any model call or write, naming the folder
    changed = settings_for(stub.base_url, "annotate.uniform_frames=6")
    new = annotation_fingerprint(changed)
    assert new != old
    before, calls = files_of(out), stub.count
    with pytest.raises(StaleShardsError) as caught:
        run_annotation(baseline.rows, out, changed)
    message = str(caught.value)
    assert f"run folder {out} holds 3 finished shard(s) made with other annotation settings" in message
    assert f"there: {old}" in message and f"now:   {new}" in message and "--redo-stale" in message
    assert files_of(out) == before and stub.count == calls and not opened
    # the engine refuses them too when handed the shards directly
    from vidthinker.engine import run_shards

    with pytest.raises(StaleShardsError):
        run_shards(assign_shards(baseline.rows, 1), baseline.rows, out, changed)
    assert files_of(out) == before and not opened

    # opt-in: the same shards (same ids) are annotated again and carry the new fingerprint
    redo = run_annotation(baseline.rows, out, settings_for(stub.base_url, "annotate.uniform_frames=6",
                                                            "engine.redo_stale=true"))
    assert not redo.skipped_shards and not redo.failed_shards and redo.settings_fingerprint == new
    assert sorted(m.shard_id for m in redo.shards) == sorted(m.shard_id for m in first.shards)
    assert len(list(shards_dir(out).glob("*.parquet"))) == 3
    assert {m.settings_fingerprint for m in finished_shards(out, fingerprint=None)} == {new}
    assert all(files_of(out)[p] != before[p] for p in before if p.parent == shards_dir(out))  # every shard rewritten
    assert [r.id for r in read_dataset(out)] == baseline.ids
    # and a rerun with the new settings finds them finished
    assert len(run_annotation(baseline.rows, out, changed).skipped_shards) == 3


def test_cli_annotate_names_stale_shards_and_redoes_them_with_redo_stale(baseline, stub, synthetic_set, tmp_path):
    out = tmp_path / "run"
    base = [arg for assignment in cli_sets(stub.base_url) for arg in ("--set", assignment)]
    annotate = ["annotate", "--manifest", str(synthetic_set), "--out", str(out), "--engine", "local"]
    runner = CliRunner()
    done = runner.invoke(app, [*base, *annotate])
    assert done.exit_code == 0, done.output
    before = files_of(out)
    changed = [*base, "--set", "video.jpeg_quality=70"]
    stopped = runner.invoke(app, [*changed, *annotate])
    text = " ".join(stopped.output.split())
    assert stopped.exit_code == 2, stopped.output
    assert "holds 3 finished shard(s) made with other annotation settings than this run's (stale)" in text
    assert "new --out folder, or pass --redo-stale" in text
    assert files_of(out) == before
    redone = runner.invoke(app, [*changed, *annotate, "--redo-stale"])
    assert redone.exit_code == 0, redone.output
    assert "3 written, 0 already finished (skipped), 0 failed" in " ".join(redone.output.split())
    again = runner.invoke(app, [*changed, *annotate])
    assert again.exit_code == 0 and "0 written, 3 already finished" in " ".join(again.output.split())


def test_incremental_run_adds_new_shards_only(baseline, stub, tmp_path):
    out = tmp_path / "run"
    settings = settings_for(stub.base_url, "engine.shard_size=2")
    old = run_annotation(baseline.rows[:2], out, settings)
    assert len(old.shards) == 1
    before = stub.count
    new = run_annotation(baseline.rows, out, settings)
    assert new.skipped_shards == [old.shards[0].shard_id]
    assert new.calls == stub.count - before == len(baseline.rows[2].qa)  # only the new video's questions
    assert {m.shard_id for m in new.shards} - {old.shards[0].shard_id}  # a new shard id
    assert len(list(shards_dir(out).glob("*.parquet"))) == 2
    assert dataset_hash(out) == baseline.hash


def test_rerun_over_fewer_rows_skips_a_finished_shard_holding_more_videos(baseline, stub, tmp_path):
    """A rerun with a smaller --limit: the finished shard holds a video the rows leave out; it is
    skipped as it is (it needs no rows), nothing is called or rewritten."""
    out = tmp_path / "run"
    settings = settings_for(stub.base_url, "engine.shard_size=2")
    first = run_annotation(baseline.rows[:2], out, settings)
    assert len(first.shards) == 1 and len(first.shards[0].video_ids) == 2
    stamps = {p.name: p.stat().st_mtime_ns for p in shards_dir(out).iterdir()}
    before = stub.count
    again = run_annotation(baseline.rows[:1], out, settings)
    assert again.skipped_shards == [first.shards[0].shard_id] and not again.failed_shards
    assert stub.count == before and again.calls == 0
    assert {p.name: p.stat().st_mtime_ns for p in shards_dir(out).iterdir()} == stamps


@pytest.mark.timeout(300)
def test_annotate_killed_mid_shard_then_rerun_loses_nothing_and_pays_no_call_twice(baseline, synthetic_set, tmp_path):
    specs = assign_shards(baseline.rows, 1)
    by_id = {r.video_id: r for r in baseline.rows}
    first_calls = len(by_id[specs[0].video_ids[0]].qa)
    out = tmp_path / "run"
    # a slow server (one request at a time, 0.25 s each) so the kill lands inside the second shard
    with StubServer(models=["scripted"], latency_s=0.25, capacity=1) as slow:
        slow.state.responder = scripted_model
        cmd = [sys.executable, "-m", "vidthinker.cli"]
        for assignment in cli_sets(slow.base_url):
            cmd += ["--set", assignment]
        cmd += ["annotate", "--manifest", str(synthetic_set), "--out", str(out), "--engine", "local", "--shard-size", "1"]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            while cached_replies(out / "cache") < first_calls + 2:  # first shard done, second one started
                assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
                assert time.monotonic() < deadline, "the run never reached the second shard"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        paid_before_kill = cached_replies(out / "cache")
        fingerprint = annotation_fingerprint(settings_for(slow.base_url))
        assert finished_shard(out, specs[0], fingerprint=fingerprint) is not None  # the CLI wrote this fingerprint
        assert finished_shard(out, specs[1], fingerprint=None) is None and finished_shard(out, specs[2], fingerprint=None) is None
        assert paid_before_kill < baseline.calls

        before = slow.count
        summary = run_annotation(baseline.rows, out, settings_for(slow.base_url))
        rerun_calls = slow.count - before
    assert summary.skipped_shards == [specs[0].shard_id] and not summary.failed_shards
    records = read_dataset(out)
    assert [r.id for r in records] == baseline.ids  # nothing lost, nothing twice
    assert dataset_hash(out) == baseline.hash  # the same records as an uninterrupted run
    assert rerun_calls == baseline.calls - paid_before_kill < baseline.calls  # replies paid before the kill are replayed
    assert summary.calls == rerun_calls
    replayed = [r for r in records if r.video_id == specs[1].video_ids[0] and r.retrieval.trace.usage.calls == 0]
    assert len(replayed) >= 2
    assert all(finished_shard(out, spec, fingerprint=fingerprint) is not None for spec in specs)
    assert shard_file(out, specs[1].shard_id).exists()
