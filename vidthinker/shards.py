"""Parquet shards of VideoITG records: written atomically, each with a small JSON manifest.

A shard is first written to a temporary file in the same folder and then renamed, so a reader never
sees half a shard and a crash leaves either the old state or the new one. The manifest beside it holds
the counts and a content hash of the records, which is how a rerun recognises a finished shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel

from vidthinker.schema import VideoITGRecord, to_table

MANIFEST_SUFFIX = ".manifest.json"


class ShardManifest(BaseModel):
    shard: str
    records: int
    ok: int
    errors: int
    errors_by_stage: dict[str, int]
    videos: int
    content_hash: str


def records_hash(records: Sequence[VideoITGRecord]) -> str:
    """Hash of what the records say, leaving out when they were made (so reruns compare equal)."""
    digest = hashlib.sha256()
    for record in records:
        data = record.model_dump(mode="json", exclude={"provenance": {"created_at", "run_id"}})
        digest.update(json.dumps(data, sort_keys=True).encode())
    return digest.hexdigest()


def _atomic_write_bytes(path: Path, writer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_shard(records: Sequence[VideoITGRecord], path: str | Path) -> ShardManifest:
    path = Path(path)
    manifest = ShardManifest(
        shard=path.name,
        records=len(records),
        ok=sum(r.ok for r in records),
        errors=sum(not r.ok for r in records),
        errors_by_stage=dict(Counter(r.error_stage or "unknown" for r in records if not r.ok)),
        videos=len({r.video_id for r in records}),
        content_hash=records_hash(records),
    )
    table = to_table(records, VideoITGRecord)
    _atomic_write_bytes(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    _atomic_write_bytes(manifest_path(path), lambda tmp: Path(tmp).write_text(manifest.model_dump_json(indent=1)))
    return manifest


def manifest_path(shard: Path) -> Path:
    return shard.with_name(shard.name + MANIFEST_SUFFIX)


def read_shard_manifest(shard: str | Path) -> ShardManifest | None:
    path = manifest_path(Path(shard))
    if not path.is_file() or not Path(shard).is_file():
        return None
    return ShardManifest.model_validate_json(path.read_text())
