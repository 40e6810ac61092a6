"""The publish DAG's task (dags/vidthinker_publish.py): what one DAG run publishes, and the call of
`vidthinker.publish.upload.publish_dataset` with a JSON-able summary for XCom.

Settings: the repository defaults to publish.repo_id, the folder to airflow.out_dir when that is set
(config file or `VIDTHINKER_AIRFLOW__OUT_DIR`); the review gate is publish.min_reviewed_frame_precision and
the data file size publish.data_file_mb. The token is `HF_TOKEN` in the worker's environment (a secret,
never a setting or a param).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vidthinker.config import ConfigError, Settings, load_section, load_settings
from vidthinker.publish.errors import PublishError  # raised here and by publish_dataset; the DAG catches it
from vidthinker.redact import redacted_io

__all__ = ["PublishError", "default_repo_id", "publish_for_airflow", "publish_request"]


def default_repo_id() -> str | None:
    """The `repo_id` param's default when the DAG file is parsed: publish.repo_id (None when the section is
    bad: the DAG must still parse; its task then reports the bad setting)."""
    try:
        return load_section("publish").repo_id
    except ConfigError:
        return None


def publish_request(params: Mapping[str, Any], events: Sequence[Mapping[str, Any]] = (),
                    settings: Settings | None = None) -> dict[str, Any]:
    """What one publish DAG run publishes: its params, else the newest shards-asset event's `out_dir`,
    else airflow.out_dir when it is set; the repo from the `repo_id` param or publish.repo_id."""
    settings = settings if settings is not None else load_settings()
    out_dir = params.get("out_dir")
    if not out_dir:
        for extra in reversed(list(events)):
            if extra.get("out_dir"):
                out_dir = extra["out_dir"]
                break
    if not out_dir and "out_dir" in settings.airflow.model_fields_set:  # set, not the built-in default
        out_dir = str(settings.airflow.out_dir)
    repo_id = params.get("repo_id") or settings.publish.repo_id
    if not out_dir:
        raise PublishError("nothing to publish: give the `out_dir` param (or trigger from the shards asset)")
    if not repo_id:
        raise PublishError("no repository: give the `repo_id` param or set VIDTHINKER_PUBLISH__REPO_ID")
    return {
        "out": out_dir,
        "repo_id": repo_id,
        "revision": params.get("revision") or None,
        "private": bool(params.get("private", True)),
        "dry_run": bool(params.get("dry_run", False)),
        "tag": params.get("tag") or None,
    }


@redacted_io  # XCom and task errors leave the process: vidthinker.redact
def publish_for_airflow(params: Mapping[str, Any], events: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The publish DAG's task: resolve the request, publish, return a JSON-able summary for XCom."""
    from vidthinker.publish.layout import data_file_size  # pyarrow, huggingface_hub: not at DAG parse time
    from vidthinker.publish.upload import publish_dataset

    settings = load_settings()
    request = publish_request(params, events, settings)
    result = publish_dataset(request["out"], request["repo_id"], revision=request["revision"], private=request["private"],
                             dry_run=request["dry_run"], tag=request["tag"], data_file_bytes=data_file_size(settings),
                             min_reviewed_frame_precision=settings.publish.min_reviewed_frame_precision)
    summary = result.model_dump(mode="json", exclude={"files"})
    summary["counts"] = result.counts()
    return summary
