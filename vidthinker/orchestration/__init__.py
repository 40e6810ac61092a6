"""Airflow orchestration of the annotation pipeline: everything the DAG files do, importable and testable.

The DAG file (`dags/vidthinker_annotate.py`) only wires tasks; each task calls one plain function of
`vidthinker.orchestration.tasks`, which touches no Airflow object (the Airflow-facing bits — reading
the model connection, skipping, emitting asset events — live in the DAG file or in `endpoint.py` and
are imported lazily). Ray code stays in the installed package, so Ray workers never need to unpickle
anything defined in the dags folder.

State beside the shards (`<out_dir>/`)::

    shards/<shard_id>.parquet (+ .manifest.json)   the records (written by the engine, atomically)
    ledger.json                                      videos already annotated: the watermark
    airflow/runs/<run_key>/                           per DAG run: pending.jsonl, plan.json,
        results/<shard_id>.json, validation.json, quality.json
"""

from __future__ import annotations

DAG_ID = "vidthinker_annotate"
POOL = "vidthinker_models"
CONN_ID = "vidthinker_model_endpoint"
SHARDS_ASSET_NAME = "vidthinker_shards"
QUALITY_ASSET_NAME = "vidthinker_quality"
SELECTOR_ASSET_NAME = "vidthinker_selector"  # the train-eval DAG's promoted selector

__all__ = ["CONN_ID", "DAG_ID", "POOL", "QUALITY_ASSET_NAME", "SELECTOR_ASSET_NAME", "SHARDS_ASSET_NAME"]
