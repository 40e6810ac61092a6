"""Parquet shards of VideoITG records: scheduled deterministically, written atomically, resumed safely.

Layout of a run folder `OUT`::

    OUT/shards/<shard_id>.parquet                 the records of the shard's videos
    OUT/shards/<shard_id>.parquet.manifest.json   counts, video ids and a content hash (ShardManifest)

One module per job, each importing only those above it in this list:

* `manifest`: `ShardSpec` (the videos of one unit of work), `ShardManifest` and reading it back;
* `content`: `records_hash` (a shard's content hash) and `row_identity` (what a video's records depend on);
* `files`: where shards live (`shards_dir`, `shard_file`, `failed_path`) and `write_shard`: the parquet
  file and then its manifest, each written to a temporary file in the same folder and renamed
  (`vidthinker.io`), so a reader never sees half a shard;
* `state`: `shard_state`, the one decision whether a scheduled shard is todo, finished, stale (by
  settings, or by content) or failed, which the CLI's scheduling, both engines and the Airflow shard
  task call; `StaleShardsError`; the written / finished / failed listings;
* `schedule`: `assign_shards` (rows → shards of `shard_size` videos, ids from their video ids) and
  `schedule_run` (the shards already in a run folder first, new shards only for the videos none holds);
* `lock`: one writer per run folder (`RunFolderLock`);
* `duplicates`: the duplicate-record-id check of the commands that read shards (`check_duplicate_ids`,
  decided from the manifests) and `record_files` / `unique_records_source`.

Shard plans are *schedules* here (which videos go in which shard file); clip plans (`ClipPlan`,
`vidthinker.planning`) are what a video is cut into. See docs/architecture.md, "Engines, shards and Ray".
"""

from vidthinker.shards.content import records_hash, row_identities, row_identity
from vidthinker.shards.duplicates import (
    DROP_REMEDY,
    MOVE_REMEDY,
    DuplicateRecordsError,
    check_duplicate_ids,
    record_files,
    unique_records_source,
)
from vidthinker.shards.files import (
    FAILED_DIR,
    SHARDS_DIR,
    failed_path,
    shard_file,
    shards_dir,
    write_shard,
)
from vidthinker.shards.lock import LOCK_NAME, FolderLocked, RunFolderLock
from vidthinker.shards.manifest import (
    MANIFEST_SUFFIX,
    ShardManifest,
    ShardSpec,
    manifest_path,
    read_shard_manifest,
)
from vidthinker.shards.schedule import assign_shards, schedule_run, shard_id_for
from vidthinker.shards.state import (
    REDO_STALE_REMEDY,
    ShardState,
    StaleShardsError,
    describe_fingerprint,
    failed_attempts,
    finished_shard,
    finished_shards,
    is_stale,
    reply_errors,
    shard_state,
    written_shards,
)

__all__ = [
    "DROP_REMEDY",
    "FAILED_DIR",
    "LOCK_NAME",
    "MANIFEST_SUFFIX",
    "MOVE_REMEDY",
    "REDO_STALE_REMEDY",
    "SHARDS_DIR",
    "DuplicateRecordsError",
    "FolderLocked",
    "RunFolderLock",
    "ShardManifest",
    "ShardSpec",
    "ShardState",
    "StaleShardsError",
    "assign_shards",
    "check_duplicate_ids",
    "describe_fingerprint",
    "failed_attempts",
    "failed_path",
    "finished_shard",
    "finished_shards",
    "is_stale",
    "manifest_path",
    "read_shard_manifest",
    "record_files",
    "records_hash",
    "reply_errors",
    "row_identities",
    "row_identity",
    "schedule_run",
    "shard_file",
    "shard_id_for",
    "shard_state",
    "shards_dir",
    "unique_records_source",
    "write_shard",
    "written_shards",
]
