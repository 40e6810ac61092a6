"""Every DAG under a real Airflow: api-server, dag-processor and scheduler as separate processes
(LocalExecutor, SQLite, all on 127.0.0.1), runs triggered through the REST API with a JWT, every process
stopped by PID — the stack `vidthinker airflow up` starts and `down` stops. One end-to-end story on two small synthetic videos:

1. annotate (Ray engine, embedded Ray) one video against the strict stub model server: a shard, the
   ledger, the `vidthinker_shards` asset event, a task log an operator can follow;
2. that event triggers train-and-evaluate (tiny CPU preset, bundled-style synthetic evaluation set) through
   promotion and the `vidthinker_selector` event, and publish against the hub stand-in (a tagged version);
3. annotate (local engine) the other video: the decode worker starts inside the task process (whose
   `__main__` is the `airflow` script and whose environment holds Airflow's blocked database URL).

Under the real scheduler a task runs in a process forked by the executor's supervisor: that is where the
spawn-based decode worker died and where Ray fails to unpickle anything that lives in the dags folder.
"""

from __future__ import annotations

import json

import pytest

from tests.airflow.conftest import API_KEY, conn_json
from tests.airflow.live import AirflowStack, StackError, _ts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ANNOTATE, TRAIN_EVAL, PUBLISH = "vidthinker_annotate", "vidthinker_train_eval", "vidthinker_publish"
HF_TOKEN = "hf_LiveSchedulerWriteToken0123456789"
REPO_ID = "tester/vidthinker-live"


def task_log(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict]:
    """The task's log lines (Airflow 3 writes JSON lines), every attempt."""
    folder = stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder = folder / f"map_index={map_index}"
    lines = []
    for path in sorted(folder.glob("attempt=*.log")):
        for raw in path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                lines.append({"level": "raw", "event": raw})
    return lines


def test_every_dag_under_a_real_scheduler(two_videos, stub, tmp_path):
    from tests.publish.hub_stub import HubStub
    from vidthinker.formats import read_manifest
    from vidthinker.schema import VideoITGRecord, read_parquet
    from vidthinker.synth import generate_synthetic_set

    eval_set = generate_synthetic_set(tmp_path / "eval-set", 1, seed=32, min_seconds=10, max_seconds=12)
    out, te_root = tmp_path / "out", tmp_path / "train_eval"
    env = {
        "AIRFLOW_CONN_VIDTHINKER_MODEL_ENDPOINT": conn_json(stub.base_url),
        "VIDTHINKER_AIRFLOW__SCHEDULE": "none",
        "VIDTHINKER_AIRFLOW__RETRIES": "1",
        "VIDTHINKER_AIRFLOW__RETRY_DELAY_S": "2",
        "VIDTHINKER_AIRFLOW__OUT_DIR": str(out),
        "VIDTHINKER_ENGINE__LOCAL_NUM_CPUS": "1",
        # train-and-evaluate: the tiny CPU preset, two steps, one small evaluation set
        "VIDTHINKER_TRAIN_EVAL__ROOT": str(te_root),
        "VIDTHINKER_TRAIN_EVAL__EVAL_SETS": str(eval_set),
        "VIDTHINKER_TRAIN_EVAL__PRESET": "tiny",
        "VIDTHINKER_TRAIN_EVAL__DEVICE": "cpu",
        "VIDTHINKER_TRAIN_EVAL__CONFIG_OVERRIDES": json.dumps({"max_steps": 2, "lr": 2e-3, "head_lr": 2e-2,
                                                               "budget_range": [64, 256], "seed": 0}),
        "VIDTHINKER_TRAIN_EVAL__KS": "4,8",
        "VIDTHINKER_TRAIN_EVAL__N_BOOT": "200",
        "VIDTHINKER_TRAIN_EVAL__NUM_FRAMES": "32",
        "VIDTHINKER_TRAIN_EVAL__PROMOTION": "always",  # the first model bootstraps the registry
        # publish: the hub stand-in (legacy LFS protocol, no token file in reach)
        "VIDTHINKER_PUBLISH__REPO_ID": REPO_ID,
        "HF_TOKEN": HF_TOKEN,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    rows = read_manifest(two_videos)
    running_names: set[str] = set()

    def watch_shards(instances: list[dict]) -> None:
        running_names.update(t["rendered_map_index"] or "" for t in instances
                             if t["task_id"] == "run_shard" and t["state"] == "running")

    tokens = {HF_TOKEN: {"name": "tester", "orgs": [], "role": "write"}}
    with HubStub(tokens) as hub:
        env["HF_ENDPOINT"] = hub.url
        stack = AirflowStack(tmp_path / "home", env, parallelism=3, pools={"vidthinker_gpu": 1})
        try:
            with stack:
                for dag_id in (ANNOTATE, TRAIN_EVAL, PUBLISH):
                    assert stack.wait_for_dag(dag_id)["is_paused"] is True  # new DAGs start paused
                stack.set_paused(TRAIN_EVAL, False)
                stack.set_paused(PUBLISH, False)

                # 1. annotate one video on the Ray engine
                conf = {"manifest": str(two_videos), "out_dir": str(out), "engine": "ray", "shard_size": 1,
                        "oracle": True, "limit": 1}
                first = stack.trigger(ANNOTATE, conf)
                run1 = stack.wait_for_run(ANNOTATE, first, on_poll=watch_shards)
                tis1 = stack.task_instances(ANNOTATE, first)
                assert run1["state"] == "success", f"{[(t['task_id'], t['state']) for t in tis1]}\n{stack.diagnostics()}"
                shard_log = task_log(stack, ANNOTATE, first, "run_shard", 0)

                # 2. the asset event runs train-and-evaluate and publish
                te_run = stack.wait_for_triggered_run(TRAIN_EVAL, set())
                pub_run = stack.wait_for_triggered_run(PUBLISH, set())
                te = stack.wait_for_run(TRAIN_EVAL, te_run)
                te_tis = {t["task_id"]: t["state"] for t in stack.task_instances(TRAIN_EVAL, te_run)}
                assert te["state"] == "success", f"{te_tis}\n{stack.diagnostics()}"
                pub = stack.wait_for_run(PUBLISH, pub_run)
                assert pub["state"] == "success", stack.diagnostics()
                train_log = task_log(stack, TRAIN_EVAL, te_run, "train")

                # 3. the other video on the local engine (no asset consumers this time)
                stack.set_paused(TRAIN_EVAL, True)
                stack.set_paused(PUBLISH, True)
                second = stack.trigger(ANNOTATE, {**conf, "engine": "local", "limit": None})
                run2 = stack.wait_for_run(ANNOTATE, second, on_poll=watch_shards)
                tis2 = stack.task_instances(ANNOTATE, second)
                assert run2["state"] == "success", f"{[(t['task_id'], t['state']) for t in tis2]}\n{stack.diagnostics()}"
                local_log = task_log(stack, ANNOTATE, second, "run_shard", 0)
                logs = stack.all_logs()
        except StackError as error:
            pytest.fail(str(error))
        repo = hub.state.repos[("dataset", REPO_ID)]

    # annotate: two shards (one per run), every record good, the ledger with per-video error counts
    shards = sorted((out / "shards").glob("*.parquet"))
    assert len(shards) == 2
    records = [r for s in shards for r in read_parquet(s, VideoITGRecord)]
    assert len(records) == sum(len(r.qa) for r in rows) and all(r.ok for r in records)
    ledger = json.loads((out / "ledger.json").read_text())["videos"]
    assert ledger.keys() == {r.video_id for r in rows} and all(v["errors"] == 0 for v in ledger.values())
    assert stub.count > 0 and API_KEY not in logs and HF_TOKEN not in logs
    results = {json.loads(p.read_text())["engine"] for p in out.glob("airflow/runs/*/results/*.json")}
    assert results == {"ray", "local"}

    # mapped shard tasks are named by shard id while they run (the task runner renders the name before
    # executing; only the second or so between the process start and that may still show "0")
    shard_ids = {p.stem for p in shards}
    assert shard_ids <= running_names, running_names
    assert {t["rendered_map_index"] for t in tis1 + tis2 if t["task_id"] == "run_shard"} == shard_ids

    # the operator's log: a line per video with endpoint/model names, no ERROR lines, from both engines
    for log, engine in ((shard_log, "ray"), (local_log, "local")):
        events = [str(line.get("event", "")) for line in log]
        assert any("video 1/1" in e and "questions" in e and "model call time" in e for e in events), (engine, events)
        assert any(f"engine={engine}" in e and f"endpoint {stub.base_url}" in e and "caption=scripted" in e
                   for e in events), (engine, events)
        errors = [line for line in log if str(line.get("level", "")).lower() in ("error", "critical")]
        assert errors == [], (engine, errors)

    # train-and-evaluate: the tiny model trained on the new shard, was promoted and announced
    assert te_tis == {"freeze": "success", "train": "success", "select": "success", "evaluate": "success",
                      "promote": "success", "emit": "success"}
    registry = json.loads((te_root / "registry" / "registry.json").read_text())
    assert registry["best"] and registry["history"][-1]["promoted"] is True
    assert not any("decode worker died" in str(line.get("event", "")) for line in train_log)

    # publish: the records went to the hub stand-in as a tagged version
    assert repo.tags and any(path.startswith("data/") for path in repo.resolve("main").files)

    wall = _ts(run1["end_date"]) - _ts(run1["start_date"])
    print(f"\n[live] annotate(ray) {wall:.1f} s, train-eval {_ts(te['end_date']) - _ts(te['start_date']):.1f} s, "
          f"publish {_ts(pub['end_date']) - _ts(pub['start_date']):.1f} s, "
          f"annotate(local) {_ts(run2['end_date']) - _ts(run2['start_date']):.1f} s")
