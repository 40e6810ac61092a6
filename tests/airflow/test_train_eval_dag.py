"""The retrain-and-evaluate DAG end to end with `dag.test()` on the CPU: ground-truth record shards of a
synthetic set, a tiny selector config, a synthetic evaluation set; the registry, the promotion rule and the
`vidthinker_selector` asset event."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.airflow.conftest import AIRFLOW_BIN, DAGS, TEST_ENV

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gpu_pool(airflow_db):
    env = {**os.environ, **TEST_ENV}
    done = subprocess.run([str(AIRFLOW_BIN), "pools", "set", "vidthinker_gpu", "1", "selector training"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from vidthinker.formats import read_manifest, records_from_ground_truth
    from vidthinker.schema import VideoITGRecord, write_parquet
    from vidthinker.synth import generate_synthetic_set

    root = tmp_path_factory.mktemp("train-eval")
    train_set = generate_synthetic_set(root / "train-set", 2, seed=31, min_seconds=10, max_seconds=14)
    eval_set = generate_synthetic_set(root / "eval-set", 2, seed=32, min_seconds=10, max_seconds=14)
    records = records_from_ground_truth(read_manifest(train_set))
    write_parquet(records[: len(records) // 2], VideoITGRecord, root / "shards" / "part-a.parquet")
    write_parquet(records[len(records) // 2 :], VideoITGRecord, root / "shards" / "part-b.parquet")
    return root, eval_set


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "vidthinker_train_eval.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["vidthinker_train_eval"]


def selector_events():
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                               .where(AssetModel.name == "vidthinker_selector").order_by(AssetEvent.id)).scalars().all()
        return [dict(e.extra or {}) for e in rows]


def states(run):
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_dag_shape():
    dag = load_dag()
    assert {t.task_id for t in dag.tasks} == {"freeze", "train", "select", "evaluate", "promote", "emit"}
    assert dag.get_task("train").pool == dag.get_task("select").pool == "vidthinker_gpu"
    assert "vidthinker_shards" in str(dag.timetable.asset_condition)


def test_train_eval_dag_promotes_the_first_model_then_only_a_better_one(airflow_db, gpu_pool, data):
    root, eval_set = data
    conf = {
        "root": str(root / "te"),
        "shards_dir": str(root / "shards"),
        "eval_sets": [str(eval_set)],
        "preset": "tiny",
        "config_overrides": {"max_steps": 2, "lr": 2e-3, "head_lr": 2e-2, "budget_range": [64, 256], "seed": 0},
        "ks": "4,8",
        "n_boot": 200,
        "device": "cpu",
        "promotion": "always",  # bootstrap the registry with the first model
    }
    dag = load_dag()
    before = len(selector_events())
    run = dag.test(run_conf=conf)
    assert run.state == "success", states(run)
    registry = json.loads((root / "te" / "registry" / "registry.json").read_text())
    best = registry["best"]
    assert best and registry["models"][best]["data_version"].startswith("sha256:")
    model_dir = root / "te" / "registry" / "models" / best
    assert (model_dir / "checkpoint" / "config.json").is_file() and (model_dir / "metadata.json").is_file()
    assert not (model_dir / "checkpoint" / "feature_cache").exists()
    (pred_set,) = (model_dir / "predictions").iterdir()
    assert (pred_set / "results.jsonl").is_file() and (pred_set / "frame_indices.jsonl").is_file()
    (version,) = (root / "te" / "datasets").iterdir()
    assert json.loads((version / "dataset.json").read_text())["records"]["total"] > 0
    (run_dir,) = (root / "te" / "runs").iterdir()
    report = (run_dir / "eval" / pred_set.name / "report.md").read_text()
    assert "| candidate |" in report and "| uniform |" in report
    events = selector_events()
    assert len(events) == before + 1 and events[-1]["model_id"] == best
    assert events[-1]["checkpoint"] == str(model_dir / "checkpoint")

    # same data, same seed: the same model again, so not significantly better than the best → kept out
    again = dag.test(run_conf={**conf, "promotion": "auto"})
    assert again.state == "success", states(again)
    assert states(again)["emit"] == "skipped"
    registry = json.loads((root / "te" / "registry" / "registry.json").read_text())
    assert registry["best"] == best and len(registry["models"]) == 1
    last = registry["history"][-1]
    assert last["promoted"] is False and last["previous_best"] == best
    assert last["reason"].startswith("not significantly better than the current best")
    assert len(list((root / "te" / "datasets").iterdir())) == 1  # the frozen version was reused
    assert len(selector_events()) == before + 1
    new_run = next(d for d in (root / "te" / "runs").iterdir() if d != run_dir)
    decision = json.loads((new_run / "decision.json").read_text())
    assert decision["evaluation"][pred_set.name]["vs_previous_best"]["verdict"] == "no significant difference"


def test_asset_triggered_freeze_takes_the_events_shards(data, tmp_path):
    """The freeze task as the scheduler calls it after an annotate run whose out_dir is elsewhere."""
    import datetime as dt
    import shutil

    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    from vidthinker.orchestration.assets import SHARDS

    root, eval_set = data
    elsewhere = tmp_path / "annotate-out"
    (elsewhere / "shards").mkdir(parents=True)
    shard = shutil.copy(root / "shards" / "part-a.parquet", elsewhere / "shards" / "new-part.parquet")
    event = AssetEventDagRunReferenceResult(
        asset={"name": SHARDS.name, "uri": SHARDS.uri, "extra": {}},
        extra={"run_key": "r1", "out_dir": str(elsewhere), "shards": [str(shard)]},
        source_task_id="emit_shards", source_dag_id="vidthinker_annotate", source_run_id="manual__1", source_map_index=-1,
        source_aliases=[], timestamp=dt.datetime.now(dt.UTC),
    )
    params = {"root": str(tmp_path / "te"), "shards_dir": str(root / "shards"), "eval_sets": [str(eval_set)]}
    task = load_dag().get_task("freeze")
    frozen = task.python_callable(params=params, run_id="asset_triggered__1",
                                  triggering_asset_events=TriggeringAssetEventsAccessor.build([event]))
    assert sorted(s["name"] for s in frozen["shards"]) == ["new-part.parquet", "part-a.parquet", "part-b.parquet"]
    by_hand = task.python_callable(params=params, run_id="manual__2", triggering_asset_events=None)
    assert sorted(s["name"] for s in by_hand["shards"]) == ["part-a.parquet", "part-b.parquet"]
    assert by_hand["version"] != frozen["version"]


def test_train_task_runs_torchrun_on_several_processes(data, tmp_path):
    """`nproc_per_node > 1`: the train task runs `vidthinker train` under torchrun (here 2 gloo processes on
    the CPU, FSDP) with the config it resolved; a failing run surfaces torchrun's exit and last lines."""

    root, eval_set = data
    params = {"root": str(tmp_path / "te"), "shards_dir": str(root / "shards"), "eval_sets": [str(eval_set)],
              "preset": "tiny", "device": "cpu", "nproc_per_node": 2,
              "config_overrides": {"max_steps": 2, "strategy": "fsdp", "budget_range": [64, 128], "batch_size": 2}}
    train = load_dag().get_task("train")
    assert train.pool_slots == 1  # the environment's default nproc_per_node
    trained = train.python_callable(frozen={"dir": str(root / "shards")}, params=params, run_id="manual__torchrun")
    assert trained["world_size"] == 2 and trained["steps"] == 2 and trained["samples"] > 0
    model_dir = tmp_path / "te" / "runs"
    meta = json.loads((next(model_dir.rglob("model/config.json"))).read_text())["metadata"]
    assert meta["strategy"] == "fsdp" and meta["world_size"] == 2
    sent = json.loads(next(model_dir.rglob("train_config.json")).read_text())
    assert sent["max_steps"] == 2 and sent["strategy"] == "fsdp" and sent["model"]["text"]["config"]["hidden_size"] == 32

    empty = tmp_path / "no-shards"
    empty.mkdir()
    with pytest.raises(RuntimeError, match=r"torchrun training exited with 1 \(rank 0: FileNotFoundError: .*no-shards: no parquet shards"):
        train.python_callable(frozen={"dir": str(empty)}, params=params, run_id="manual__torchrun_fails")
