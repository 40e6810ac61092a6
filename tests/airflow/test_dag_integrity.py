"""Every DAG file imports cleanly and fast, and the annotate DAG has the shape production relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.airflow.conftest import DAGS, TEST_ENV

EXPECTED_TASKS = {"discover", "plan_shards", "run_shard", "validate", "quality", "update_ledger", "emit_shards", "finish"}
PARSE_LIMIT_S = 2.0

_PARSE_SCRIPT = r"""
import json, sys, time
import airflow.sdk  # the dag processor has Airflow loaded before it parses a file
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()},
       "stats": [[s.file, s.duration.total_seconds(), s.dag_num] for s in bag.dagbag_stats], "dags": {}}
for dag_id, dag in bag.dags.items():
    DagSerialization.serialize_dag(dag)  # what the dag processor stores; raises if not serialisable
    out["dags"][dag_id] = {"timetable": type(dag.timetable).__name__, "cron": getattr(dag.timetable, "expression", None)}
print("RESULT" + json.dumps(out))
"""


def parse_in_fresh_process(extra_env=None, drop=()):
    env = {**os.environ, **TEST_ENV, **(extra_env or {})}
    for name in drop:
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", _PARSE_SCRIPT, str(DAGS)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports_without_errors_and_parses_fast():
    result = parse_in_fresh_process()
    assert result["errors"] == {}
    files = {p.name for p in DAGS.glob("*.py") if not p.name.startswith("_")}
    parsed = {os.path.basename(file) for file, _, _ in result["stats"]}
    assert files <= parsed, files - parsed
    for file, seconds, dags in result["stats"]:
        assert seconds < PARSE_LIMIT_S, f"{file} took {seconds:.2f} s to parse (limit {PARSE_LIMIT_S} s)"
    assert "vidthinker_annotate" in result["dags"]


def test_schedule_comes_from_the_environment_daily_by_default():
    default = parse_in_fresh_process(drop=("VIDTHINKER_AIRFLOW__SCHEDULE",))["dags"]["vidthinker_annotate"]
    assert default["cron"] == "0 0 * * *", default
    custom = parse_in_fresh_process({"VIDTHINKER_AIRFLOW__SCHEDULE": "30 2 * * *"})["dags"]["vidthinker_annotate"]
    assert custom["cron"] == "30 2 * * *", custom
    off = parse_in_fresh_process({"VIDTHINKER_AIRFLOW__SCHEDULE": "none"})["dags"]["vidthinker_annotate"]
    assert off["timetable"] == "NullTimetable", off


def test_a_bad_setting_of_another_section_does_not_hide_the_dags():
    result = parse_in_fresh_process({"VIDTHINKER_VIDEO__GRID_FPS": "-1", "VIDTHINKER_TRAIN_EVAL__KS": "4,16",
                                     "VIDTHINKER_PUBLISH__REPO_ID": "org/name"})
    assert result["errors"] == {}
    assert {"vidthinker_annotate", "vidthinker_train_eval", "vidthinker_publish"} <= set(result["dags"])
    bad = parse_in_fresh_process({"VIDTHINKER_AIRFLOW__RETRIES": "many"})  # a DAG's own section: named at parse
    assert any("VIDTHINKER_AIRFLOW__RETRIES" in error for error in bad["errors"].values()), bad["errors"]


def _topological(dag) -> list[str]:
    indegree = {t.task_id: len(t.upstream_task_ids) for t in dag.tasks}
    ready = [t for t, n in indegree.items() if n == 0]
    order = []
    while ready:
        task_id = ready.pop()
        order.append(task_id)
        for child in dag.get_task(task_id).downstream_task_ids:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return order


def test_annotate_dag_shape(dagbag):
    from airflow.sdk import TriggerRule

    from vidthinker.orchestration.assets import QUALITY, SHARDS

    assert dagbag.import_errors == {}
    dag = dagbag.dags["vidthinker_annotate"]
    assert set(dag.task_ids) == EXPECTED_TASKS
    assert len(_topological(dag)) == len(dag.tasks), "cycle"
    assert dag.max_active_runs == 1 and not dag.catchup
    assert set(dag.params) == {"manifest", "out_dir", "engine", "ray_address", "shard_size", "oracle", "limit", "config"}

    shard = dag.get_task("run_shard")
    assert type(shard).__name__.endswith("MappedOperator")
    assert shard.pool == "vidthinker_models"
    assert shard.retries >= 1 and shard.retry_exponential_backoff >= 2 and shard.max_retry_delay is not None

    for task_id in ("validate", "finish"):
        assert dag.get_task(task_id).trigger_rule == TriggerRule.ALL_DONE
    assert "run_shard" in dag.get_task("validate").upstream_task_ids
    assert dag.get_task("emit_shards").outlets == [SHARDS]
    assert dag.get_task("quality").outlets == [QUALITY]
    assert SHARDS.name == "vidthinker_shards" and SHARDS.uri.startswith("file://")
    assert {"update_ledger"} <= dag.get_task("emit_shards").upstream_task_ids
    assert dag.get_task("finish").downstream_task_ids == set()  # the one leaf: it decides the run's state
