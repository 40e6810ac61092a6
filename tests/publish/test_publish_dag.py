"""The publish DAG: parses (asset-scheduled on the shards asset, params, one task) and publishes through
`dag.test()` to the stub hub; bad input fails the run without retrying."""

from __future__ import annotations

from pathlib import Path

from tests.airflow.conftest import DAGS
from tests.demo_support import copy_run
from tests.publish.conftest import ORG
from vidthinker.quality import find_runs

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
