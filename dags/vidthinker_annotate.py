"""VidThinker annotate: new manifest entries → parquet shards of VideoITG records → `vidthinker_shards`.

discover (rows not in the ledger) → plan_shards (fails when out_dir holds shards made with other
annotation settings: models, prompts, annotate/video settings) → run_shard ×N (mapped, pool `vidthinker_models`,
retries with exponential backoff; one failing shard leaves its siblings alone) → validate (always) →
quality + update_ledger → emit_shards (asset event, only when something new is valid) → finish (fails
the run if any shard failed, after the good ones were recorded and announced).

Scheduled by `VIDTHINKER_AIRFLOW__SCHEDULE` (default @daily; "none" for trigger-only) on the manifest
`VIDTHINKER_AIRFLOW__MANIFEST`; a triggered run can override every param. The model endpoint comes
from the Airflow connection `vidthinker_model_endpoint` (host → base URL, password → API key, extra →
model names); without it the pipeline's own settings (offline defaults) apply. All logic lives in
`vidthinker.orchestration`; this file only wires tasks and must parse fast.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, TriggerRule, dag, task

from vidthinker.orchestration import DAG_ID
from vidthinker.orchestration.assets import QUALITY, SHARDS
from vidthinker.orchestration.settings import dag_defaults

DEFAULTS = dag_defaults()
CFG = DEFAULTS.airflow

PARAMS = {
    "manifest": Param(str(CFG.manifest or ""), type="string", description="manifest (.jsonl/.parquet/LLaVA .json) on a path the workers see"),
    "out_dir": Param(str(CFG.out_dir), type="string", minLength=1, description="shards, ledger.json and airflow/runs/ go here"),
    "engine": Param(CFG.engine, enum=["ray", "local"], description="ray: Ray (embedded, or ray_address); local: in the task process"),
    "ray_address": Param(DEFAULTS.ray_address, type=["null", "string"], description="Ray cluster, e.g. ray://ray-head:10001 (null: engine.ray_address, RAY_ADDRESS, else embedded)"),
    "shard_size": Param(DEFAULTS.shard_size, type="integer", minimum=1, description="videos per shard (one mapped task each)"),
    "oracle": Param(None, type=["null", "boolean"], description="stage 1 from the manifest's clip_descriptions (null: settings)"),
    "limit": Param(None, type=["null", "integer"], minimum=1, description="annotate at most this many new videos"),
    "config": Param(None, type=["null", "string"], description="VidThinker config file (TOML/YAML) on the workers"),
}


@dag(
    dag_id=DAG_ID,
    schedule=CFG.schedule,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # runs share the ledger
    params=PARAMS,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["vidthinker", "annotation"],
    doc_md=__doc__,
)
def vidthinker_annotate():
    @task
    def discover(params=None, run_id=None) -> dict:
        from vidthinker.orchestration import tasks

        return tasks.discover(dict(params), run_id)

    @task
    def plan_shards(discovered: dict, params=None, run_id=None) -> list[dict]:
        from vidthinker.orchestration import tasks
        from vidthinker.orchestration.endpoint import resolve_endpoint

        # fails (StaleShardsError) when out_dir holds shards made with other annotation settings
        return tasks.schedule_shards(dict(params), run_id, resolve_endpoint(CFG.conn_id))

    @task(
        pool=CFG.pool,
        pool_slots=CFG.pool_slots,
        retries=CFG.retries,
        retry_delay=timedelta(seconds=CFG.retry_delay_s),
        retry_exponential_backoff=2.0,
        max_retry_delay=timedelta(seconds=CFG.max_retry_delay_s),
        execution_timeout=timedelta(seconds=CFG.shard_timeout_s) if CFG.shard_timeout_s else None,
        # rendered before the task runs (Airflow 3's task runner renders map_index_template once early, in
        # task_runner._prepare, from the unmapped task's arguments) and again at the end: the UI names a
        # running shard task by its shard id, not "0"
        map_index_template="{{ task.op_kwargs['shard']['shard_id'] }}",
    )
    def run_shard(shard: dict, params=None, run_id=None) -> dict:
        from vidthinker.orchestration import tasks
        from vidthinker.orchestration.endpoint import resolve_endpoint

        return tasks.run_shard(shard, dict(params), run_id, resolve_endpoint(CFG.conn_id))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def validate(params=None, run_id=None) -> dict:
        from vidthinker.orchestration import tasks

        return tasks.validate(dict(params), run_id)

    @task(outlets=[QUALITY], retries=0)
    def quality(validation: dict, params=None, run_id=None, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from vidthinker.orchestration import tasks

        summary = tasks.quality(dict(params), run_id, validation)
        if summary is None:
            raise AirflowSkipException("no new valid shard in this run: nothing to measure")
        outlet_events[QUALITY].extra = summary
        return summary

    @task
    def update_ledger(validation: dict, params=None, run_id=None) -> dict:
        from vidthinker.orchestration import tasks

        return tasks.update_ledger(dict(params), run_id, validation)

    @task(outlets=[SHARDS])
    def emit_shards(validation: dict, ledger: dict, params=None, run_id=None, outlet_events=None) -> dict | None:
        from airflow.sdk.exceptions import AirflowSkipException

        from vidthinker.orchestration import tasks

        extra = tasks.asset_extra(dict(params), run_id, validation)
        if extra is None:
            raise AirflowSkipException("no new valid shard in this run: no asset event")
        outlet_events[SHARDS].extra = extra
        return extra

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def finish(ti=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from vidthinker.orchestration import tasks

        validation = ti.xcom_pull(task_ids="validate")
        ledger = ti.xcom_pull(task_ids="update_ledger")
        found = tasks.problems(validation, ledger, ti.xcom_pull(task_ids="quality"))
        if found:
            raise AirflowFailException("run incomplete:\n  " + "\n  ".join(found))
        return {"shards": len(validation["valid"]), "records": validation["records"]}

    discovered = discover()
    planned = plan_shards(discovered)
    shards = run_shard.expand(shard=planned)
    checked = validate()
    shards >> checked
    planned >> checked
    ledger = update_ledger(checked)
    emitted = emit_shards(checked, ledger)
    [quality(checked), emitted] >> finish()


vidthinker_annotate()
