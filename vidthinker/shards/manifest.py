"""What a shard is: its spec (the videos it is for) and its manifest (what its parquet file holds), and
reading a manifest back.

A shard file `<shard_id>.parquet` has its manifest beside it, `<shard_id>.parquet.manifest.json`
(`manifest_path`): counts, errors by stage/reason/class, the sorted video ids, a content hash
(`vidthinker.shards.content.records_hash`), the annotation fingerprint of the settings it was made with,
its state (finished, or failed and kept in `shards/_failed/`) and each video's `row_identity`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

MANIFEST_SUFFIX = ".manifest.json"


class ShardSpec(BaseModel):
    """One unit of work: the videos that go into one shard file."""

    shard_id: str
    video_ids: list[str]


class ShardManifest(BaseModel):
    shard: str = Field(description="file name of the parquet shard")
    records: int
    ok: int
    errors: int
    errors_by_stage: dict[str, int]
    errors_by_reason: dict[str, int] = Field(default_factory=dict)
    videos: int
    content_hash: str = Field(description="records_hash of the shard's records")
    shard_id: str = ""
    video_ids: list[str] = Field(default_factory=list, description="the videos the shard holds, sorted")
    settings_fingerprint: str = Field(
        "", description="annotation fingerprint of the settings the shard was made with ('' = unknown, written before fingerprints)"
    )
    state: Literal["finished", "failed"] = Field(
        "finished", description="failed: too many transient errors or the endpoint went down (kept in shards/_failed/ for inspection)"
    )
    failure: str = Field("", description="why the shard failed ('' when finished)")
    errors_by_class: dict[str, int] = Field(default_factory=dict, description="error records by class: transient / permanent / unknown")
    video_identity: dict[str, str] = Field(
        default_factory=dict,
        description="video id → row_identity (its QA pairs and the video file's size and mtime) when annotated; "
        "{} = written before identities (not compared)",
    )


def manifest_path(shard: Path) -> Path:
    return shard.with_name(shard.name + MANIFEST_SUFFIX)


def read_shard_manifest(shard: str | Path) -> ShardManifest | None:
    """The manifest of a shard file, or None when the shard or its manifest is missing or unreadable."""
    path = manifest_path(Path(shard))
    if not path.is_file() or not Path(shard).is_file():
        return None
    try:
        return ShardManifest.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None
