"""The publish DAG: parses (asset-scheduled on the shards asset, params, one task) and publishes through
`dag.test()` to the stub hub; bad input fails the run without retrying; what a run publishes
(vidthinker.orchestration.publish)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.airflow.conftest import DAGS
from tests.demo_support import copy_run
from tests.publish.conftest import ORG
from vidthinker.orchestration.publish import publish_request
from vidthinker.publish.errors import PublishError
from vidthinker.quality.runs import find_runs

DAG_FILE = DAGS / "vidthinker_publish.py"


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["vidthinker_publish"]


def test_dag_parses_and_is_scheduled_on_the_shards_asset():
    from airflow.serialization.serialized_objects import DagSerialization

    from vidthinker.orchestration import SHARDS_ASSET_NAME

    dag = load_dag()
    assert set(dag.task_ids) == {"publish"}
    assets = [a.name for a in dag.timetable.asset_condition.iter_assets().values()] if hasattr(
        dag.timetable.asset_condition, "iter_assets") else []
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assert SHARDS_ASSET_NAME in assets or SHARDS_ASSET_NAME in str(dag.timetable.asset_condition)
    assert {"out_dir", "repo_id", "revision", "private", "dry_run", "tag"} <= set(dag.params.keys())
    assert dag.max_active_runs == 1
    DagSerialization.serialize_dag(dag)


def _states(run):
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_dag_test_publishes_to_the_stub_hub(airflow_db, hub, demo, tmp_path):
    run_dir = copy_run(find_runs(demo / "runs")[1], tmp_path / "run")
    repo = f"{ORG}/dag-dataset"
    run = load_dag().test(run_conf={"out_dir": str(run_dir), "repo_id": repo, "private": True})
    assert run.state == "success", _states(run)
    head = hub.state.head_files(repo)
    assert {p for p in head if p.startswith("data/")} == {"data/train-00000-of-00001.parquet"}  # repacked: one ~256 MB file
    assert hub.state.repos[("dataset", repo)].tags.keys() == {"v1"}
    (ti,) = run.get_task_instances()
    summary = ti.xcom_pull(task_ids="publish")
    assert summary["status"] == "published" and summary["tag"] == "v1" and summary["counts"] == {"upload": 3}
    assert Path(summary["layout"]).is_dir()


def test_dag_without_a_repository_fails_without_retrying(airflow_db, hub, demo, tmp_path, monkeypatch):
    monkeypatch.delenv("VIDTHINKER_PUBLISH__REPO_ID", raising=False)
    run = load_dag().test(run_conf={"out_dir": str(tmp_path / "nowhere"), "repo_id": None})
    assert run.state == "failed"
    (ti,) = run.get_task_instances()
    assert ti.state == "failed" and ti.try_number == 1
    assert hub.state.requests == []


def test_asset_triggered_task_publishes_the_events_out_dir(hub, demo, tmp_path):
    """The task as the scheduler calls it after an annotate run: params unset, out_dir from the event."""
    import datetime as dt

    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    from vidthinker.orchestration.assets import SHARDS

    run_dir = copy_run(find_runs(demo / "runs")[0], tmp_path / "out")
    event = AssetEventDagRunReferenceResult(
        asset={"name": SHARDS.name, "uri": SHARDS.uri, "extra": {}},
        extra={"run_key": "r1", "out_dir": str(run_dir), "shards": [str(p) for p in sorted((run_dir / "shards").glob("*.parquet"))]},
        source_task_id="emit_shards", source_dag_id="vidthinker_annotate", source_run_id="manual__1", source_map_index=-1,
        source_aliases=[], timestamp=dt.datetime.now(dt.UTC),
    )
    task = load_dag().get_task("publish")
    params = {"out_dir": None, "repo_id": f"{ORG}/from-asset", "revision": None, "private": True, "dry_run": False, "tag": None}
    summary = task.python_callable(params=params, triggering_asset_events=TriggeringAssetEventsAccessor.build([event]))
    assert summary["status"] == "published" and summary["layout"].startswith(str(run_dir))
    assert any(p.startswith("data/") for p in hub.state.head_files(f"{ORG}/from-asset"))


def test_publish_request_resolution(monkeypatch):
    monkeypatch.delenv("VIDTHINKER_PUBLISH__REPO_ID", raising=False)
    events = [{"out_dir": "/data/a"}, {"out_dir": "/data/b", "shards": ["x"]}]
    request = publish_request({"repo_id": "o/n", "private": False}, events)
    assert request["out"] == "/data/b" and request["repo_id"] == "o/n" and request["private"] is False
    assert publish_request({"repo_id": "o/n", "out_dir": "/x"}, events)["out"] == "/x"
    with pytest.raises(PublishError, match="no repository"):
        publish_request({"out_dir": "/x"})
    monkeypatch.setenv("VIDTHINKER_PUBLISH__REPO_ID", "env/repo")
    assert publish_request({"out_dir": "/x"})["repo_id"] == "env/repo"


def test_publish_request_reads_the_settings(monkeypatch):
    """The folder falls back to airflow.out_dir only when it is set (not to its built-in default); the
    repository to publish.repo_id; params win over both."""
    from vidthinker.config import load_settings

    for name in ("VIDTHINKER_AIRFLOW__OUT_DIR", "VIDTHINKER_PUBLISH__REPO_ID", "VIDTHINKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    configured = load_settings(overrides={"airflow": {"out_dir": "/cfg/out"}, "publish": {"repo_id": "cfg/repo"}})
    request = publish_request({}, (), configured)
    assert request["out"] == "/cfg/out" and request["repo_id"] == "cfg/repo"
    assert publish_request({"out_dir": "/p", "repo_id": "p/r"}, (), configured) == {
        "out": "/p", "repo_id": "p/r", "revision": None, "private": True, "dry_run": False, "tag": None}
    with pytest.raises(PublishError, match="nothing to publish"):
        publish_request({"repo_id": "o/n"}, (), load_settings())
    monkeypatch.setenv("VIDTHINKER_AIRFLOW__OUT_DIR", "/env/out")
    assert publish_request({"repo_id": "o/n"})["out"] == "/env/out"
