"""The Airflow Assets VidThinker's DAGs exchange. Import these objects (never re-declare them):

    from vidthinker.orchestration.assets import SHARDS, QUALITY
    @dag(schedule=[SHARDS], ...)            # the train-eval and publish DAGs

`SHARDS` gets an event each time the annotate DAG adds valid shards; the event's `extra` says which:
{"run_key", "out_dir", "shards": [paths], "records", "ok", "errors", "ledger"}. A run that adds nothing
emits no event. `QUALITY` gets an event with the run's quality summary (its `path` is the full report).
The URIs are fixed at parse time from the setting airflow.out_dir (`VIDTHINKER_AIRFLOW__OUT_DIR`); a run with
another `out_dir` param still updates the same Asset and names its real folder in `extra["out_dir"]`.
"""

from __future__ import annotations

from airflow.sdk import Asset

from vidthinker.orchestration import QUALITY_ASSET_NAME, SELECTOR_ASSET_NAME, SHARDS_ASSET_NAME
from vidthinker.orchestration.settings import airflow_settings

_OUT = airflow_settings().out_dir.expanduser().absolute()

SHARDS = Asset(name=SHARDS_ASSET_NAME, uri=(_OUT / "shards").as_uri(), group="vidthinker")
QUALITY = Asset(name=QUALITY_ASSET_NAME, uri=(_OUT / "airflow" / "runs").as_uri(), group="vidthinker")
# A promoted selector checkpoint (the train-eval DAG's registry).
SELECTOR = Asset(name=SELECTOR_ASSET_NAME, uri=(_OUT / "train_eval" / "registry").as_uri(), group="vidthinker")

__all__ = ["QUALITY", "SELECTOR", "SHARDS"]
