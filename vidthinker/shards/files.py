"""Where a run folder keeps its shard files, and writing one shard: parquet then manifest, each atomically.

Layout of a run folder `OUT`::

    OUT/shards/<shard_id>.parquet                         the records of the shard's videos
    OUT/shards/<shard_id>.parquet.manifest.json           its ShardManifest
    OUT/shards/_failed/<shard_id>.parquet(.manifest.json) the last failed attempt of a shard
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from vidthinker.figures import errors_by_class, errors_by_reason, errors_by_stage
from vidthinker.io import atomic_write_bytes, atomic_write_text
from vidthinker.schema import VideoITGRecord, to_table
from vidthinker.shards.content import records_hash
from vidthinker.shards.manifest import ShardManifest, manifest_path

SHARDS_DIR = "shards"
FAILED_DIR = "_failed"  # under shards/: underscore folders are skipped by every reader of records


def shards_dir(out_dir: str | Path) -> Path:
    """Where a run folder keeps its shards: `out_dir/shards`."""
    return Path(out_dir) / SHARDS_DIR


def shard_file(out_dir: str | Path, shard_id: str) -> Path:
    """The parquet file of shard `shard_id` in run folder `out_dir`: `out_dir/shards/<shard_id>.parquet`."""
    if not shard_id or "/" in shard_id or shard_id.startswith("."):
        raise ValueError(f"bad shard id {shard_id!r}")
    return shards_dir(out_dir) / f"{shard_id}.parquet"


def failed_path(shard: Path) -> Path:
    """Where a failed attempt of shard file `shard` is kept: `shards/_failed/<name>`."""
    return Path(shard).parent / FAILED_DIR / Path(shard).name


def write_shard(
    records: Sequence[VideoITGRecord],
    path: str | Path,
    *,
    shard_id: str | None = None,
    video_ids: Iterable[str] | None = None,
    settings_fingerprint: str = "",
    identities: dict[str, str] | None = None,
    failure: str = "",
) -> ShardManifest:
    """Write records to `path` and its manifest beside it, each atomically (parquet first).

    `video_ids` are the videos the shard is for (default: those of the records); `shard_id` defaults
    to the file's stem; `settings_fingerprint` is the annotation fingerprint of the settings the records
    were made with (`vidthinker.fingerprint.annotation_fingerprint`; '' = unknown, such a shard is stale
    for every run that plans with a fingerprint); `identities` the `row_identity` of each video.

    With `failure` (why), the shard is written as failed: the manifest says `state: failed` and the
    files go to `shards/_failed/` beside `path` (`failed_path`), where readers of records do not look,
    and the next run redoes it. Writing a finished shard removes a failed attempt of it.
    """
    path = Path(path)
    if failure:
        path = failed_path(path)
    failed = [r for r in records if not r.ok]
    manifest = ShardManifest(
        shard=path.name,
        shard_id=shard_id or path.name.removesuffix(".parquet"),
        records=len(records),
        ok=len(records) - len(failed),
        errors=len(failed),
        errors_by_stage=errors_by_stage(failed),
        errors_by_reason=errors_by_reason(failed),
        videos=len({r.video_id for r in records}),
        content_hash=records_hash(records),
        video_ids=sorted(set(video_ids) if video_ids is not None else {r.video_id for r in records}),
        settings_fingerprint=settings_fingerprint,
        state="failed" if failure else "finished",
        failure=failure,
        errors_by_class=errors_by_class(failed),
        video_identity={v: i for v, i in sorted((identities or {}).items())},
    )
    table = to_table(records, VideoITGRecord)
    atomic_write_bytes(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    atomic_write_text(manifest_path(path), manifest.model_dump_json(indent=1))
    if not failure:  # a failed attempt of this shard is over: its records are superseded
        for old in (failed_path(path), manifest_path(failed_path(path))):
            old.unlink(missing_ok=True)
    return manifest
