"""VidThinker retrain-and-evaluate: new shards → frozen dataset version → train → select → evaluate →
promote only if better → `vidthinker_selector`.

Runs after every annotate run that added shards (the `vidthinker_shards` Asset) and by hand with params
(train config file + overrides, model preset, an existing dataset version, evaluation sets, promotion
policy). `train` and `select` take a slot of the `vidthinker_gpu` pool (create it with the number of GPUs
the selector may use at once: `airflow pools set vidthinker_gpu 1 "VidThinker selector training"`).
The registry (`<root>/registry/registry.json`, one folder per promoted model with its checkpoint,
metadata.json and evaluation-set predictions) keeps the current best and every decision with its reason;
each run's reports are in `<root>/runs/<run_key>/eval/<set>/report.md`. All logic lives in
`vidthinker.orchestration.train_eval`; this file only wires tasks and must parse fast.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from vidthinker.orchestration.assets import SELECTOR, SHARDS
from vidthinker.orchestration.train_eval import DAG_ID, GPU_POOL, param_defaults

D = param_defaults()

PARAMS = {
    "root": Param(D["root"], type="string", minLength=1, description="registry/, datasets/ and runs/ go here"),
    "shards_dir": Param(D["shards_dir"], type=["null", "string"], description="record shards (null: <out_dir>/shards)"),
    "eval_sets": Param(D["eval_sets"], type="array", items={"type": "string"}, description="evaluation manifests / benchmark files; the first decides promotion"),
    "config": Param(D["config"], type=["null", "string"], description="trainer config file (.yaml/.json: TrainConfig fields)"),
    "preset": Param(D["preset"], type=["null", "string"], description="model preset: tiny, offline, qwen2-1.5b, qwen2-7b"),
    "config_overrides": Param(D["config_overrides"], type="object", description='TrainConfig overrides, e.g. {"max_steps": 2000, "lr": 2e-5}'),
    "dataset_version": Param(D["dataset_version"], type=["null", "string"], description="retrain on this frozen version (null: freeze the current shards)"),
    "primary": Param(D["primary"], type="string", description="metric promotion is decided on, e.g. recall@8, f1_tol@8, ap"),
    "ks": Param(",".join(map(str, D["ks"])), type="string", description="K values evaluated"),
    "baselines": Param(",".join(D["baselines"]), type="string", description="baselines in the reports"),
    "promotion": Param(D["promotion"], enum=["auto", "always", "never"], description="auto: only if significantly better"),
    "device": Param(D["device"], type=["null", "string"], description="null: CUDA when available"),
    "nproc_per_node": Param(D["nproc_per_node"], type="integer", minimum=1, description="training processes (GPUs) under torchrun; 1: in the task"),
    "num_frames": Param(D["num_frames"], type="integer", minimum=1, description="frames scored per video"),
    "n_boot": Param(D["n_boot"], type="integer", minimum=100, description="bootstrap resamples"),
}


@dag(
    dag_id=DAG_ID,
    schedule=[SHARDS],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # runs share the registry
    params=PARAMS,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2)},
    tags=["vidthinker", "selector"],
    doc_md=__doc__,
)
def vidthinker_train_eval():
    @task
    def freeze(params=None, run_id=None, triggering_asset_events=None) -> dict:
        from vidthinker.orchestration import train_eval

        # asset-triggered: the annotate runs' events name their shards; by hand: none
        extras = [dict(e.extra or {}) for evs in (triggering_asset_events or {}).values() for e in evs]
        return train_eval.freeze(dict(params), run_id, extras)

    @task(pool=GPU_POOL, pool_slots=int(D["nproc_per_node"]), retries=0)  # one slot per GPU it trains on
    def train(frozen: dict, params=None, run_id=None) -> dict:
        from vidthinker.orchestration import train_eval

        return train_eval.train_model(frozen, dict(params), run_id)

    @task(pool=GPU_POOL)
    def select(trained: dict, params=None, run_id=None) -> dict:
        from vidthinker.orchestration import train_eval

        return train_eval.select_sets(trained, dict(params), run_id)

    @task
    def evaluate(selected: dict, params=None, run_id=None) -> dict:
        from vidthinker.orchestration import train_eval

        return train_eval.evaluate_sets(selected, dict(params), run_id)

    @task(retries=0)
    def promote(trained: dict, frozen: dict, selected: dict, evaluation: dict, params=None, run_id=None) -> dict:
        from vidthinker.orchestration import train_eval

        return train_eval.promote(trained, frozen, selected, evaluation, dict(params), run_id)

    @task(outlets=[SELECTOR])
    def emit(decision: dict, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from vidthinker.orchestration import train_eval

        extra = train_eval.asset_extra(decision)
        if extra is None:
            raise AirflowSkipException(f"not promoted: {decision['reason']}")
        outlet_events[SELECTOR].extra = extra
        return extra

    frozen = freeze()
    trained = train(frozen)
    selected = select(trained)
    evaluation = evaluate(selected)
    emit(promote(trained, frozen, selected, evaluation))


vidthinker_train_eval()
