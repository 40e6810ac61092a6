"""Record ids found in two shard files: the one check `export`, `quality`, `publish` and `train` run over
the files they read (`check_duplicate_ids`), the files a reader of a folder takes (`record_files`), and
a duplicate-free view of a folder for readers that take a folder (`unique_records_source`).

The check decides from the shard manifests first. A record's id is `<video_id>/<qa_id>` (the pipeline
and the importers make it so) and a shard's manifest lists the videos its records are of, so two shard
files can only share a record id when their videos share the id's first `/`-separated part. A shard
whose videos meet no other file's is not opened; only the files that may share ids are read (their `id`
column). A file without a manifest (copied in, or not written by `write_shard`) has its ids read, and
their first parts stand for its videos. A clean run folder therefore costs one manifest read per shard.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from vidthinker.shards.manifest import read_shard_manifest

logger = logging.getLogger(__name__)


class DuplicateRecordsError(ValueError):
    """The same record id is in two shard files (two runs wrote one folder, or shards were copied in)."""


DROP_REMEDY = "Pass --drop-duplicates to keep the first copy of each."
MOVE_REMEDY = "Move one of the files out of the folder (or export with --drop-duplicates)."


def _read_ids(path: Path) -> list[str] | None:
    """The `id` column of a parquet file, or None when it is not a record shard (its reader reports it)."""
    try:
        return pq.read_table(path, columns=["id"]).column("id").to_pylist()
    except (OSError, KeyError, ValueError):
        return None


def _id_head(key: str) -> str:
    """The first `/`-separated part of a record id or video id: records of two videos can only share an
    id (`video_id/qa_id`) when their video ids have the same first part."""
    return key.split("/", 1)[0]


def _files_that_may_share_ids(files: Sequence[Path]) -> tuple[set[int], dict[int, list[str]]]:
    """The positions in `files` of those that may hold a record id of another one (or one id twice), and
    the ids read on the way (of the files without a usable manifest), by position."""
    read: dict[int, list[str]] = {}
    owner: dict[str, int] = {}
    suspects: set[int] = set()
    for index, path in enumerate(files):
        manifest = read_shard_manifest(path)
        if manifest is not None and (manifest.video_ids or not manifest.records):
            heads = {_id_head(video_id) for video_id in manifest.video_ids}
        else:
            ids = _read_ids(path)
            if ids is None:
                continue
            read[index] = ids
            heads = {_id_head(record_id) for record_id in ids}
            if len(set(ids)) < len(ids):
                suspects.add(index)
        for head in heads:
            first = owner.setdefault(head, index)
            if first != index:
                suspects.update((first, index))
    return suspects, read


def check_duplicate_ids(paths: Sequence[str | Path], *, drop: bool = False,
                        remedy: str = DROP_REMEDY) -> dict[Path, list[int]]:
    """The one check `export`, `quality`, `publish` and `train` run over the shard files they read.

    Without `drop`, a record id found in two files raises DuplicateRecordsError naming the id and both
    files; with `drop`, returns what to leave out: path → row indexes (the first copy, in `paths` order,
    is kept). Reads the manifests, then only the `id` column of the files that may share ids (see the
    module's docstring)."""
    files = [path for path in map(Path, paths) if path.suffix == ".parquet"]
    suspects, read = _files_that_may_share_ids(files)
    seen: dict[str, Path] = {}
    found: dict[Path, list[int]] = {}
    count = 0
    first: tuple[str, Path, Path] | None = None
    for index, path in enumerate(files):
        if index not in suspects:
            continue
        ids = read[index] if index in read else _read_ids(path)
        if ids is None:
            continue
        for index, record_id in enumerate(ids):
            if record_id in seen:
                found.setdefault(path, []).append(index)
                count += 1
                first = first or (record_id, seen[record_id], path)
            else:
                seen[record_id] = path
    if first and not drop:
        record_id, a, b = first
        raise DuplicateRecordsError(
            f"record id {record_id!r} is in two shard files: {a} and {b} ({count} duplicate record(s) in all; "
            f"two runs wrote one folder?). {remedy}"
        )
    return found


def record_files(source: str | Path) -> list[Path]:
    """The parquet record files a reader of `source` (a folder, or one file) takes: hidden and
    underscore-prefixed files and folders (staging areas, failed shard attempts) left out."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        return []
    return sorted(p for p in source.rglob("*.parquet")
                  if not any(part.startswith((".", "_")) for part in p.relative_to(source).parts))


@contextlib.contextmanager
def unique_records_source(source: str | Path, *, drop: bool = False) -> Iterator[Path]:
    """`source` itself when no record id is in two of its files; else DuplicateRecordsError (naming the
    id and both files), or with `drop` a temporary folder of the same layout where each later copy is
    left out (unaffected files linked, affected ones rewritten), removed on exit. For readers that take
    a folder of shards (`vidthinker train`)."""
    source = Path(source)
    files = record_files(source)
    dropped = check_duplicate_ids(files, drop=drop)
    if not dropped:
        yield source
        return
    logger.warning("%s: leaving out %d duplicate record(s) (--drop-duplicates)", source,
                   sum(len(v) for v in dropped.values()))
    root = Path(tempfile.mkdtemp(prefix=".dedup-", dir=None))
    try:
        for path in files:
            target = root / (path.relative_to(source) if source.is_dir() else path.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if path in dropped:
                table = pq.read_table(path)
                gone = set(dropped[path])
                keep = [i for i in range(table.num_rows) if i not in gone]
                import pyarrow as pa

                pq.write_table(table.take(pa.array(keep, type=pa.int64())), target, compression="zstd")
            else:
                target.symlink_to(path.resolve())
        yield root if source.is_dir() else root / source.name
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
