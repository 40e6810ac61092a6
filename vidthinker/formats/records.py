"""Record shards read back: the parquet files under a folder, in a stable order, and their records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from vidthinker.schema import SchemaError, VideoITGRecord, iter_rows


def record_paths(shards: str | Path) -> list[Path]:
    """The record shards under a folder (or a single shard file), in a stable order."""
    shards = Path(shards)
    if shards.is_file():
        return [shards]
    if not shards.is_dir():
        raise SchemaError(f"{shards}: no such shard folder")
    # Hidden and underscore-prefixed files and folders are staging areas (atomic writes, _hf/ publishing).
    paths = sorted(
        p for p in shards.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(shards).parts)
    )
    if not paths:
        raise SchemaError(f"{shards}: no parquet shards found")
    return paths


def iter_records(shards: str | Path) -> Iterator[VideoITGRecord]:
    for path in record_paths(shards):
        yield from iter_rows(pq.read_table(path), VideoITGRecord, source=str(path))
