"""Once under a real Airflow: api-server, dag-processor and scheduler as separate processes (LocalExecutor,
SQLite), a run triggered through the REST API with a JWT, shards checked, every process stopped by PID.

The shard task uses the Ray engine (embedded local Ray) when it is available: under the real scheduler a
task runs in a fresh process forked by the executor, which is where Ray fails to unpickle anything that
lives in the dags folder — everything Ray touches must come from the installed package.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.airflow.conftest import API_KEY, conn_json
from tests.airflow.live import AirflowStack, StackError, _ts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DAG_ID = "vidthinker_annotate"


def test_triggered_run_under_a_real_scheduler(two_videos, stub, tmp_path):
    from vidthinker.formats import read_manifest
    from vidthinker.schema import VideoITGRecord, read_parquet

    engine = "ray" if importlib.util.find_spec("vidthinker.engine.ray_engine") else "local"
    out = tmp_path / "out"
    env = {
        "AIRFLOW_CONN_VIDTHINKER_MODEL_ENDPOINT": conn_json(stub.base_url),
        "VIDTHINKER_AIRFLOW__SCHEDULE": "none",
        "VIDTHINKER_AIRFLOW__RETRIES": "1",
        "VIDTHINKER_AIRFLOW__RETRY_DELAY_S": "2",
        "VIDTHINKER_AIRFLOW__OUT_DIR": str(out),
        "VIDTHINKER_ENGINE__LOCAL_NUM_CPUS": "2",
    }
    conf = {"manifest": str(two_videos), "out_dir": str(out), "engine": engine, "shard_size": 1, "oracle": True}
    stack = AirflowStack(tmp_path / "home", env)
    try:
        with stack:
            dag = stack.wait_for_dag(DAG_ID)
            assert dag["is_paused"] is True  # new DAGs start paused; trigger() unpauses through the API
            run_id = stack.trigger(DAG_ID, conf)
            run = stack.wait_for_run(DAG_ID, run_id)
            instances = stack.task_instances(DAG_ID, run_id)
            tis = {(t["task_id"], t["map_index"]): t["state"] for t in instances}
            assert run["state"] == "success", f"{run['state']}: {tis}\n{stack.diagnostics()}"
            logs = stack.all_logs()
    except StackError as error:
        pytest.fail(str(error))

    assert tis[("run_shard", 0)] == tis[("run_shard", 1)] == "success"
    rows = read_manifest(two_videos)
    shards = sorted((out / "shards").glob("*.parquet"))
    assert len(shards) == 2
    records = [r for s in shards for r in read_parquet(s, VideoITGRecord)]
    assert len(records) == sum(len(r.qa) for r in rows) and all(r.ok for r in records)
    assert json.loads((out / "ledger.json").read_text())["videos"].keys() == {r.video_id for r in rows}
    assert stub.count > 0 and API_KEY not in logs

    results = [json.loads(p.read_text()) for p in out.glob("airflow/runs/*/results/*.json")]
    # mapped instances are named by their shard in the UI
    assert sorted(t["rendered_map_index"] for t in instances if t["task_id"] == "run_shard") == sorted(p.stem for p in shards)
    assert {r["engine"] for r in results} == {engine}
    wall = _ts(run["end_date"]) - _ts(run["start_date"])
    engine_s = sum(r["engine_s"] for r in results)
    print(f"\n[airflow overhead] engine={engine} shards={len(results)} run wall {wall:.1f} s, engine inside tasks "
          f"{engine_s:.1f} s → {(wall - engine_s) / len(results):.1f} s/shard outside the engine")
