"""The local engine: resume, incremental runs, and a `vidthinker annotate` killed mid-shard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import vidthinker.backends
from tests.engine.conftest import cached_replies, cli_sets, dataset_hash, read_dataset, settings_for
from tests.servers.openai_stub import StubServer
from tests.test_pipeline import scripted_model
from vidthinker.annotate import run_annotation
from vidthinker.shards import finished_shard, plan_shards, shard_file, shards_dir


def counting_opens(monkeypatch) -> list:
    opened = []
    real = vidthinker.backends.open_stage_models

    def counting(*args, **kwargs):
        opened.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(vidthinker.backends, "open_stage_models", counting)
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
    assert sorted(summary.skipped_shards) == sorted(s.shard_id for s in plan_shards(baseline.rows, 1))
    assert summary.records == len(baseline.ids) and summary.calls == 0
    assert {p.name: p.stat().st_mtime_ns for p in shards_dir(out).iterdir()} == stamps  # nothing rewritten
    assert dataset_hash(out) == baseline.hash
    assert json.loads((out / "summary.json").read_text())["skipped_shards"] == summary.skipped_shards


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


@pytest.mark.timeout(300)
def test_annotate_killed_mid_shard_then_rerun_loses_nothing_and_pays_no_call_twice(baseline, synthetic_set, tmp_path):
    specs = plan_shards(baseline.rows, 1)
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
        assert finished_shard(out, specs[0]) is not None
        assert finished_shard(out, specs[1]) is None and finished_shard(out, specs[2]) is None
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
    assert all(finished_shard(out, spec) is not None for spec in specs)
    assert shard_file(out, specs[1].shard_id).exists()
