"""VidThinker publish: annotation shards → a Hugging Face dataset (only changed files uploaded, version tagged).

Runs when the annotate DAG announces new shards on the `vidthinker_shards` asset (the event's
`extra["out_dir"]` says which folder), or by hand with params. The repository comes from the `repo_id`
param or the setting publish.repo_id (`VIDTHINKER_PUBLISH__REPO_ID`); the token from `HF_TOKEN` on the
worker (or huggingface-hub's login file), never from params. All logic is
`vidthinker.orchestration.publish.publish_for_airflow`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from vidthinker.orchestration.assets import SHARDS
from vidthinker.orchestration.publish import default_repo_id

PARAMS = {
    "out_dir": Param(None, type=["null", "string"], description="folder with shards/ (null: the triggering asset event's out_dir)"),
    "repo_id": Param(default_repo_id(), type=["null", "string"],
                     description="dataset repository, owner/name"),
    "revision": Param(None, type=["null", "string"], description="branch to publish to (null: main)"),
    "private": Param(True, type="boolean", description="visibility if the repository is created"),
    "dry_run": Param(False, type="boolean", description="build the layout and report what would change; upload nothing"),
    "tag": Param(None, type=["null", "string"], description="version tag (null: v<N+1>)"),
}


@dag(
    dag_id="vidthinker_publish",
    schedule=[SHARDS],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # publishes of one repository must not interleave
    params=PARAMS,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True},
    tags=["vidthinker", "publish"],
    doc_md=__doc__,
)
def vidthinker_publish():
    @task
    def publish(params=None, triggering_asset_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from vidthinker.orchestration.publish import PublishError, publish_for_airflow

        events = [dict(e.extra or {}) for evs in (triggering_asset_events or {}).values() for e in evs]
        try:
            return publish_for_airflow(dict(params), events)
        except PublishError as error:
            if error.retryable:
                raise
            raise AirflowFailException(str(error)) from None  # bad input or credentials: retrying cannot help

    publish()


vidthinker_publish()
