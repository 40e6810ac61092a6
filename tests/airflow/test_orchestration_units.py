"""The orchestration helpers on their own: connection → endpoint, the ledger, settings, run keys."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from vidthinker.config import AirflowSettings
from vidthinker.orchestration.endpoint import base_url_of, endpoint_from_connection
from vidthinker.orchestration.ledger import Ledger, VideoEntry, load_ledger, locked_ledger, qa_hash
from vidthinker.orchestration.settings import airflow_settings
from vidthinker.orchestration.tasks import run_key, run_params
from vidthinker.schema import ManifestRow


def conn(**kw):
    base = {"conn_id": "vidthinker_model_endpoint", "host": "vllm", "schema": None, "port": 8000, "password": None,
            "extra_dejson": {}}
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize(("host", "schema", "port", "want"), [
    ("vllm", None, 8000, "http://vllm:8000"),
    ("vllm", "https", None, "https://vllm"),
    ("http://vllm:8000/v1", None, None, "http://vllm:8000/v1"),
    ("http://vllm/v1", None, 8001, "http://vllm:8001/v1"),
    ("https://api.example.com/v1", "ignored", None, "https://api.example.com/v1"),
])
def test_base_url_from_connection_fields(host, schema, port, want):
    assert base_url_of(host, schema, port) == want


def test_connection_gives_model_overrides_and_hides_the_key():
    endpoint = endpoint_from_connection(conn(password="sk-SECRET", extra_dejson={"model": "Qwen/Qwen2.5-VL-7B-Instruct",
                                                                                 "retrieval_model": "qwen-text"}))
    assert endpoint.overrides == {"backend": "openai", "base_url": "http://vllm:8000",
                                  "caption_model": "Qwen/Qwen2.5-VL-7B-Instruct", "retrieval_model": "qwen-text"}
    assert "SECRET" not in repr(endpoint) and "SECRET" not in json.dumps(endpoint.overrides)
    before = os.environ.get("VIDTHINKER_API_KEY")
    with endpoint.api_key_in_environment():
        assert os.environ["VIDTHINKER_API_KEY"] == "sk-SECRET"
    assert os.environ.get("VIDTHINKER_API_KEY") == before
    # the overrides validate as the settings' models section
    from vidthinker.config import load_settings, with_overrides

    settings = with_overrides(load_settings(), {"models": endpoint.overrides})
    assert settings.models.backend == "openai" and settings.models.retrieval_model == "qwen-text"


def test_connection_errors_are_clear():
    with pytest.raises(ValueError, match="unknown extra key"):
        endpoint_from_connection(conn(extra_dejson={"temperature": 0}))
    with pytest.raises(ValueError, match="no host"):
        endpoint_from_connection(conn(host=""))


def _row(video_id, question="What colour is the circle?"):
    return ManifestRow(video_id=video_id, video=f"/v/{video_id}.mp4", qa=[{"qa_id": "q1", "question": question}])


def test_ledger_splits_pending_done_and_changed(tmp_path):
    a, b, c = _row("a"), _row("b"), _row("c")
    with locked_ledger(tmp_path) as ledger:
        for row in (a, b):
            ledger.videos[row.video_id] = VideoEntry(shard="s1", run="r1", fingerprint=qa_hash(row), records=1)
    ledger = load_ledger(tmp_path)
    pending, done, changed = ledger.split([a, _row("b", "Where does it go?"), c])
    assert [r.video_id for r in pending] == ["c"] and [r.video_id for r in done] == ["a"]
    assert [r.video_id for r in changed] == ["b"]
    mtime = (tmp_path / "ledger.json").stat().st_mtime_ns
    with locked_ledger(tmp_path):
        pass  # unchanged → not rewritten
    assert (tmp_path / "ledger.json").stat().st_mtime_ns == mtime
    assert load_ledger(tmp_path / "nowhere") == Ledger()


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("VIDTHINKER_AIRFLOW__SCHEDULE", "none")
    monkeypatch.setenv("VIDTHINKER_AIRFLOW__RETRIES", "5")
    got = airflow_settings()
    assert got.schedule is None and got.retries == 5
    assert AirflowSettings().schedule == "@daily" and AirflowSettings().engine == "ray"
    monkeypatch.setenv("VIDTHINKER_AIRFLOW__RETRIES", "many")
    with pytest.raises(ValueError, match="VIDTHINKER_AIRFLOW__RETRIES"):
        airflow_settings()


def test_run_key_and_params():
    key = run_key("scheduled__2026-11-23T00:00:00+00:00")
    assert key == run_key("scheduled__2026-11-23T00:00:00+00:00") and key.startswith("20261123T000000-")
    assert key != run_key("manual__2026-11-23T00:00:00+00:00")
    with pytest.raises(ValueError, match="no manifest"):
        run_params({"manifest": "", "out_dir": "/tmp/x"})
    p = run_params({"manifest": "m.jsonl", "out_dir": "out", "ray_address": "none", "oracle": None})
    assert p.manifest.is_absolute() and p.ray_address is None and p.engine == "ray"


def test_plan_fails_when_out_dir_holds_shards_made_with_other_settings(tmp_path):
    """The DAG adds to one dataset: its planning task stops on a stale shard instead of counting it as done."""
    from tests.shards.shard_records import record, row
    from vidthinker.fingerprint import annotation_fingerprint
    from vidthinker.formats import write_manifest
    from vidthinker.orchestration import tasks
    from vidthinker.orchestration.endpoint import Endpoint
    from vidthinker.shards import StaleShardsError, assign_shards, shard_file, write_shard

    rows = [row("a"), row("b")]
    manifest = tmp_path / "manifest.jsonl"
    write_manifest(rows, manifest)
    out = tmp_path / "out"
    params = {"manifest": str(manifest), "out_dir": str(out), "engine": "local", "shard_size": 1, "oracle": True}
    current = annotation_fingerprint(tasks.settings_for_run(tasks.run_params(params)))
    done = assign_shards(rows[:1], 1)[0]  # e.g. written by `vidthinker annotate` with other settings

    def write(spec, fingerprint):
        write_shard([record(v) for v in spec.video_ids], shard_file(out, spec.shard_id), shard_id=spec.shard_id,
                    video_ids=spec.video_ids, settings_fingerprint=fingerprint)

    write(done, "0" * 16)
    run_id = "manual__2026-01-01T00:00:00+00:00"
    assert tasks.discover(params, run_id)["pending"] == 1  # recovered into the ledger; b pending
    directory = tasks.run_dir(out, tasks.run_key(run_id))
    with pytest.raises(StaleShardsError) as caught:
        tasks.schedule_shards(params, run_id)
    message = str(caught.value)
    assert "holds 1 finished shard(s) made with other annotation settings" in message
    assert f"there: {'0' * 16}" in message and f"now:   {current}" in message
    assert "point the DAG at a new out_dir" in message and "--redo-stale" in message
    assert not (directory / "plan.json").exists()

    write(done, current)  # brought up to date: planning goes on
    (planned,) = tasks.schedule_shards(params, run_id)
    # the connection's models are part of the run's settings: another caption model makes the shard stale
    endpoint = Endpoint(overrides={"backend": "openai", "base_url": "http://vllm:8000/v1", "caption_model": "other"})
    with pytest.raises(StaleShardsError):
        tasks.schedule_shards(params, run_id, endpoint)

    # a planned shard finished with these settings is skipped; one made with others is not (and not redone)
    spec = next(s for s in tasks._read_schedule(directory) if s.shard_id == planned["shard_id"])
    write(spec, current)
    assert tasks.run_shard(planned, params, run_id)["skipped"] is True
    write(spec, "1" * 16)
    before = shard_file(out, spec.shard_id).stat().st_mtime_ns
    with pytest.raises(StaleShardsError):
        tasks.run_shard(planned, params, run_id)
    assert shard_file(out, spec.shard_id).stat().st_mtime_ns == before


def _record(vid: str, error: str | None = None, stage: str | None = None, caption_s: float = 0.5, caption: str = ""):
    trace = SimpleNamespace(latency_s=caption_s, raw_output=caption or f"{vid} {error}")
    return SimpleNamespace(video_id=vid, error=error, error_stage=stage, ok=error is None,
                           captions=[SimpleNamespace(clip_id=0, trace=trace)],
                           retrieval=SimpleNamespace(trace=SimpleNamespace(latency_s=0.25)), localization=None)


def test_shard_progress_logs_each_video_and_warns_with_failure_reasons(caplog, monkeypatch):
    import logging

    from vidthinker.orchestration.progress import ShardProgress

    key = "sk-progress-SECRET-123456"
    monkeypatch.setenv("VIDTHINKER_API_KEY", key)
    caplog.set_level(logging.INFO, logger="vidthinker.orchestration.tasks")
    progress = ShardProgress("s-0001", 2)
    a = SimpleNamespace(video_id="vid-a", qa=[1, 2])
    b = SimpleNamespace(video_id="vid-b", qa=[1])
    progress.video_done(a, [_record("vid-a"), _record("vid-a", "CorruptVideo: /v/a.mp4: truncated", "decode")])
    progress.video_done(b, [_record("vid-b", f"ModelUnavailable: 401 for key {key}", "caption")])
    progress.finish()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines[0][0] == "INFO" and "video 1/2 vid-a: 2 questions, 1 ok, 1 failed" in lines[0][1]
    assert "caption 1.0 s, retrieve 0.5 s" in lines[0][1] and "CorruptVideo in decode x1" in lines[0][1]
    assert "truncated" in lines[0][1]
    assert lines[1][0] == "INFO" and "video 2/2 vid-b: 1 questions, 0 ok, 1 failed" in lines[1][1]
    level, summary = lines[-1]
    assert level == "WARNING" and "shard s-0001: 2 of 3 records failed" in summary
    assert "CorruptVideo in decode x1" in summary and "ModelUnavailable in caption x1" in summary
    assert key not in caplog.text


def test_a_shared_caption_call_counts_once(caplog):
    import logging

    from vidthinker.orchestration.progress import ShardProgress

    caplog.set_level(logging.INFO, logger="vidthinker.orchestration.tasks")
    records = [_record("v", caption="a red circle", caption_s=2.0) for _ in range(3)]  # caption_mode=shared
    ShardProgress("s-3", 1).video_done(SimpleNamespace(video_id="v", qa=[1, 2, 3]), records)
    assert "model call time caption 2.0 s, retrieve 0.8 s" in caplog.text


def test_a_shard_without_failures_logs_no_warning(caplog):
    import logging

    from vidthinker.orchestration.progress import ShardProgress

    caplog.set_level(logging.INFO, logger="vidthinker.orchestration.tasks")
    progress = ShardProgress("s-0002", 1)
    progress.video_done(SimpleNamespace(video_id="v", qa=[1]), [_record("v")])
    progress.finish()
    assert [r.levelname for r in caplog.records] == ["INFO"]


def test_the_ledger_counts_each_videos_failed_records(tmp_path):
    from vidthinker.orchestration import tasks

    rows = {v: _row(v, "What happens?") for v in ("a", "b")}
    spec = SimpleNamespace(shard_id="s-1", video_ids=["a", "b"])
    check = {"path": str(tmp_path / "shards" / "s-1.parquet"), "videos": 2, "records": 2, "ok": 1, "errors": 1,
             "content_hash": "x", "errors_by_video": {"b": 1}}
    tasks._record_shards(tmp_path, "run1", [(spec, check)], rows)
    videos = load_ledger(tmp_path).videos
    assert (videos["a"].errors, videos["b"].errors) == (0, 1)


def test_quality_task_reads_the_stored_figures_of_the_runs_valid_shards(tmp_path):
    # the task merges per-shard quality figures (vidthinker.quality) of exactly the run's valid shards;
    # its figures equal the ones the task used to compute from every record of those shards
    import datetime as dt
    import statistics
    from collections import Counter

    from vidthinker.figures import errors_by_stage
    from vidthinker.formats import write_manifest
    from vidthinker.orchestration.tasks import quality, run_dir
    from vidthinker.quality import ground_truth_agreement
    from vidthinker.schema import (
        GroundTruth,
        InstructionType,
        Provenance,
        QAPair,
        VideoITGRecord,
        write_parquet,
    )

    prov = Provenance(pipeline_version="t", clip_seconds=5, grid_fps=1, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    kinds = [InstructionType.SEMANTIC_ONLY, None, InstructionType.NO_CLUES]
    rows, shards = [], {}
    for v in range(6):
        qa = [QAPair(qa_id=str(i), question=f"q{v}-{i}?", ground_truth=GroundTruth(
            instruction_type=InstructionType.SEMANTIC_ONLY, frame_ids=[1, 2, i], clip_ids=[0, i % 2])) for i in range(4)]
        rows.append(ManifestRow(video_id=f"v{v}", video=f"v{v}.mp4", qa=qa))
        records = [VideoITGRecord(id=f"v{v}/{q.qa_id}", video=f"v{v}.mp4", video_id=f"v{v}", qa_id=q.qa_id, question=q.question,
                                  answer="", provenance=prov, instruction_type=(kind := kinds[(i + v) % 3]),
                                  motion="yes" if kind and kind.motion else "no", existence="yes" if kind and kind.existence else "no",
                                  **({"error": "CorruptVideo: x", "error_stage": ["probe", "retrieve"][v % 2], "error_class": "permanent"}
                                     if (i + v) % 5 == 0 else {"frame_num": list(range(1, 2 + (i + v) % 4)), "clip_num": [0, 1][: i % 3]}))
                   for i, q in enumerate(qa)]
        shards.setdefault(f"run-{v // 2}", []).extend(records)
    out = tmp_path / "out"
    for shard_id, records in shards.items():
        write_parquet(records, VideoITGRecord, out / "shards" / f"{shard_id}.parquet")
    key = run_key("manual__2026-01-01T00:00:00")
    directory = run_dir(out, key)
    directory.mkdir(parents=True)
    manifest = write_manifest(rows, directory / "pending.jsonl")
    valid = ["run-0", "run-2"]  # run-1 failed validation: not counted
    summary = quality({"manifest": str(manifest), "out_dir": str(out)}, "manual__2026-01-01T00:00:00",
                      {"valid": valid, "planned": 3, "failed": {"run-1": "invalid"}})
    report = json.loads((directory / "quality.json").read_text())

    records = [r for shard_id in valid for r in shards[shard_id]]
    good = [r for r in records if r.ok]

    def spread(values):
        return {"mean": round(statistics.fmean(values), 3), "median": float(statistics.median(values)),
                "min": min(values), "max": max(values)}

    assert report["records"] == len(records) == 16 and report["ok"] == len(good) and report["errors"] == 16 - len(good)
    assert report["error_rate"] == round((16 - len(good)) / 16, 4) and report["coverage"] == round(len(good) / 24, 4)
    assert report["videos"] == 4 and report["videos_planned"] == 6 and report["questions_planned"] == 24
    assert report["errors_by_stage"] == errors_by_stage(records) and report["errors_by_stage"]
    assert report["frames_per_record"] == spread([len(r.frame_num) for r in good])
    assert report["clips_per_record"] == spread([len(r.clip_num) for r in good])
    # a good record without a type is "unknown" (as in the quality files), no longer "None"
    assert report["instruction_types"] == dict(Counter(str(r.instruction_type or "unknown") for r in good))
    assert report["ground_truth"] == {k: v.model_dump() for k, v in ground_truth_agreement(records, rows).items()}
    assert report["out_dir_totals"]["records"] == 24 and "out_dir_quality_error" not in report
    assert summary["records"] == 16 and summary["ground_truth"]["records"] == report["ground_truth"]["all"]["records"]
