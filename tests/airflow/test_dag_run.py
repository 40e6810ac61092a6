"""The annotate DAG end to end with `dag.test()`: synthetic videos, oracle stage 1, the strict OpenAI stub
for stage 2 through the Airflow connection, real shards, ledger, quality report and asset events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.airflow.conftest import API_KEY, DAGS, conn_json

pytestmark = pytest.mark.slow


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "vidthinker_annotate.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["vidthinker_annotate"]


def asset_events(name="vidthinker_shards"):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                               .where(AssetModel.name == name).order_by(AssetEvent.id)).scalars().all()
        return [dict(e.extra or {}) for e in rows]


def task_states(run):
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def run_dag(conf, **kw):
    dag = load_dag()
    return dag.test(run_conf=conf, **kw)


@pytest.fixture
def conf(two_videos, tmp_path, stub, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_VIDTHINKER_MODEL_ENDPOINT", conn_json(stub.base_url))
    return {"manifest": str(two_videos), "out_dir": str(tmp_path / "out"), "engine": "local", "shard_size": 1,
            "oracle": True}


def test_dag_test_end_to_end_then_no_new_work(airflow_db, conf, stub, capfd):
    from vidthinker.formats import read_manifest
    from vidthinker.schema import VideoITGRecord, read_parquet

    out = Path(conf["out_dir"])
    before = len(asset_events())
    run = run_dag(conf)
    assert run.state == "success", task_states(run)
    states = task_states(run)
    assert states[("run_shard", 0)] == states[("run_shard", 1)] == "success"

    rows = read_manifest(conf["manifest"])
    shards = sorted((out / "shards").glob("*.parquet"))
    assert len(shards) == 2
    records = [r for s in shards for r in read_parquet(s, VideoITGRecord)]
    assert len(records) == sum(len(r.qa) for r in rows) and all(r.ok for r in records), [r.error for r in records if not r.ok]
    assert {r.video_id for r in records} == {r.video_id for r in rows}

    ledger = json.loads((out / "ledger.json").read_text())
    assert set(ledger["videos"]) == {r.video_id for r in rows} and len(ledger["shards"]) == 2

    (run_dir,) = (out / "airflow" / "runs").iterdir()
    quality = json.loads((run_dir / "quality.json").read_text())
    assert quality["records"] == len(records) and quality["error_rate"] == 0.0 and quality["coverage"] == 1.0
    assert quality["ground_truth"]["all"]["records"] == len(records)
    assert 0.0 < quality["ground_truth"]["all"]["clip_recall"] <= 1.0
    assert "out_dir_quality_error" not in quality, quality["out_dir_quality_error"]
    assert quality["out_dir_totals"]["records"] == len(records) and Path(quality["out_dir_quality"]).is_file()

    events = asset_events()
    assert len(events) == before + 1
    assert sorted(events[-1]["shards"]) == [str(s) for s in shards] and events[-1]["records"] == len(records)
    assert len(asset_events("vidthinker_quality")) >= 1

    # every model request carried the connection's key; the key is in no file, XCom or log line
    assert stub.count > 0 and all(r["authorization"] == f"Bearer {API_KEY}" for r in stub.requests)
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl"):
            assert API_KEY not in path.read_text(), path
    captured = capfd.readouterr()
    assert API_KEY not in captured.out + captured.err

    # a second run finds nothing new: no model call, no shard, no asset event, still success
    calls = stub.count
    again = run_dag(conf)
    assert again.state == "success", task_states(again)
    assert stub.count == calls
    assert sorted((out / "shards").glob("*.parquet")) == shards
    assert len(asset_events()) == before + 1
    assert task_states(again)[("emit_shards", -1)] == task_states(again)[("quality", -1)] == "skipped"


def test_a_failing_shard_spares_its_siblings_and_is_redone_next_run(airflow_db, conf, stub, monkeypatch):
    from vidthinker.formats import read_manifest
    from vidthinker.orchestration import tasks

    out = Path(conf["out_dir"])
    real = tasks.run_one_shard
    attempts = []
    victim = sorted(r.video_id for r in read_manifest(conf["manifest"]))[1]  # shards are planned in id order

    def flaky(spec, *args, **kwargs):
        if victim in spec.video_ids:
            attempts.append(spec.shard_id)
            raise ConnectionError("model server went away")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(tasks, "run_one_shard", flaky)
    before = len(asset_events())
    run = run_dag(conf)
    states = task_states(run)
    assert run.state == "failed"
    assert states[("run_shard", 0)] == "success" and states[("run_shard", 1)] == "failed"
    assert len(attempts) == 2  # retried once (VIDTHINKER_AIRFLOW__RETRIES=1 in these tests)
    assert states[("validate", -1)] == states[("update_ledger", -1)] == states[("emit_shards", -1)] == "success"
    assert states[("quality", -1)] == "success" and states[("finish", -1)] == "failed"
    assert len(json.loads((out / "ledger.json").read_text())["videos"]) == 1
    events = asset_events()
    assert len(events) == before + 1 and len(events[-1]["shards"]) == 1

    monkeypatch.setattr(tasks, "run_one_shard", real)
    again = run_dag(conf)
    assert again.state == "success", task_states(again)
    assert len(json.loads((out / "ledger.json").read_text())["videos"]) == 2
    assert len(list((out / "shards").glob("*.parquet"))) == 2
    assert len(asset_events()) == before + 2


def test_changed_annotation_settings_fail_the_planning_task(airflow_db, conf, stub, monkeypatch, capfd):
    out = Path(conf["out_dir"])
    run = run_dag(conf)
    assert run.state == "success", task_states(run)
    shards = {p: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    calls = stub.count
    capfd.readouterr()
    monkeypatch.setenv("VIDTHINKER_VIDEO__JPEG_QUALITY", "70")  # what the models see changes
    again = run_dag(conf)
    states = task_states(again)
    assert again.state == "failed" and states[("plan_shards", -1)] == "failed", states
    assert states.get(("run_shard", -1)) != "success" and stub.count == calls
    assert {p: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == shards
    logs = " ".join("".join(capfd.readouterr()).split())
    assert "StaleShardsError" in logs and "holds 2 finished shard(s) made with other annotation settings" in logs
    assert "point the DAG at a new out_dir" in logs


def test_records_failed_by_the_endpoint_fail_the_run_and_are_repaired_next_run(airflow_db, conf, stub, monkeypatch):
    """Issue 11/15: a shard whose records failed for infrastructure reasons (the endpoint answers 500 to
    one video's requests) is not green: its task fails (after its retry), the ledger does not take its
    video, the asset event names only the good shard, no failed record reaches shards/, and the run
    fails. Once the endpoint is healthy, the next run repairs exactly that video and pays only for it."""
    from tests.test_pipeline import scripted_model
    from vidthinker.formats import read_manifest
    from vidthinker.schema import VideoITGRecord, read_parquet

    monkeypatch.setenv("VIDTHINKER_MODELS__MAX_RETRIES", "0")
    out = Path(conf["out_dir"])
    rows = sorted(read_manifest(conf["manifest"]), key=lambda r: r.video_id)
    victim = rows[1]
    # the synthetic templates repeat some questions across videos: fail only those of the victim alone
    questions = [qa.question for qa in victim.qa if qa.question not in {q.question for q in rows[0].qa}]
    assert questions

    def failing_for_victim(body):
        text = json.dumps(body)
        if any(json.dumps(q)[1:-1] in text for q in questions):
            # an unhandled error in the stub's handler: aiohttp answers 500 (a transient server error)
            raise RuntimeError("inference engine crashed")
        return scripted_model(body)

    stub.state.responder = failing_for_victim
    before = len(asset_events())
    run = run_dag(conf)
    states = task_states(run)
    assert run.state == "failed", states
    assert states[("run_shard", 0)] == "success" and states[("run_shard", 1)] == "failed", states
    assert states[("finish", -1)] == "failed"
    ledger = json.loads((out / "ledger.json").read_text())
    assert set(ledger["videos"]) == {rows[0].video_id}
    events = asset_events()
    assert len(events) == before + 1 and len(events[-1]["shards"]) == 1
    finished = sorted((out / "shards").glob("*.parquet"))
    assert len(finished) == 1
    assert {r.video_id for r in read_parquet(finished[0], VideoITGRecord)} == {rows[0].video_id}
    kept = [r for p in (out / "shards" / "_failed").glob("*.parquet") for r in read_parquet(p, VideoITGRecord)]
    assert kept and all(r.error_class == "transient" for r in kept if not r.ok), [r.error for r in kept]
    assert any(not r.ok for r in kept)

    # the endpoint recovers: only the victim's questions are asked again (plus start-up probes)
    stub.state.responder = scripted_model
    calls = stub.count
    again = run_dag(conf)
    assert again.state == "success", task_states(again)
    ledger = json.loads((out / "ledger.json").read_text())
    assert set(ledger["videos"]) == {r.video_id for r in rows}
    records = [r for p in (out / "shards").glob("*.parquet") for r in read_parquet(p, VideoITGRecord)]
    assert len(records) == sum(len(r.qa) for r in rows) and all(r.ok for r in records)
    asked = [json.dumps(r["body"]) for r in stub.requests[calls:]]
    # every question request of the rerun is one of the failed records (the rest replay from the cache)
    asked_questions = [text for text in asked if "Question:" in text]
    assert len(asked_questions) == len(questions)
    assert all(any(json.dumps(q)[1:-1] in text for q in questions) for text in asked_questions)
    assert len(asset_events()) == before + 2
