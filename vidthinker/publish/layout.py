"""The dataset folder of a run: each shard's good records converted once (cached), consecutive shards
repacked into data files of about the target size (content-defined boundaries), the quality figures and
the dataset card beside them."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from vidthinker.config import Settings, load_settings
from vidthinker.io import atomic_path, atomic_write_text
from vidthinker.publish import DEFAULT_LICENSE
from vidthinker.publish.card import dataset_card
from vidthinker.publish.errors import PublishError
from vidthinker.publish.records import (
    BATCH_ROWS,
    DATA_DIR,
    PUBLISH_VERSION,
    PUBLISHED_SCHEMA,
    STATS_FILE,
    data_file_name,
)
from vidthinker.quality.models import RunQuality
from vidthinker.quality.run import compute_run_quality, shard_figures
from vidthinker.quality.runs import fresh_run_quality, shard_folder, shard_paths
from vidthinker.review import card_section


class Layout(BaseModel):
    root: str
    records: int
    shards: list[str] = Field(description="source shards, in data-file order")
    packs: list[list[str]] = Field(default_factory=list, description="the source shards of each data file, in order")
    files: dict[str, str] = Field(description="path in repo → sha256")
    skipped_shards: list[str] = Field(default_factory=list, description="shards without a good record")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _relative_video(video: str, root: Path | None) -> str:
    if "://" in video:
        return video
    path = Path(video)
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return PurePosixPath(path.parent.name, path.name).as_posix() if path.parent.name else path.name


def _shard_key(shard: Path, video_root: Path | None) -> str:
    """Identifies a source shard file (+ how it is converted): the cache name of its conversion."""
    stat = shard.stat()
    parts = [PUBLISH_VERSION, pa.__version__, str(shard.resolve()), str(stat.st_size), str(stat.st_mtime_ns),
             str(video_root.resolve()) if video_root else ""]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


class _NoGoodRecord(Exception):
    """Raised inside `atomic_path` so that a shard without a good record leaves no file behind."""


def convert_shard(shard: Path, target: Path, video_root: Path | None = None) -> int:
    """Good records of one shard → a parquet file of the published schema; returns the row count.

    Reads only the published columns (and `error`), batch by batch, and writes deterministically, so the
    same shard always gives the same bytes (and the hub comparison sees it unchanged). Writes nothing when
    the shard holds no good record."""
    columns = [n for n in PUBLISHED_SCHEMA.names] + ["error"]
    rows = 0
    try:
        with atomic_path(target) as tmp:
            writer = None
            try:
                with pq.ParquetFile(shard) as handle:
                    for batch in handle.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                        good = batch.filter(pc.is_null(batch.column("error")))
                        if good.num_rows == 0:
                            continue
                        videos = pa.array([_relative_video(v, video_root) for v in good.column("video").to_pylist()],
                                          pa.string())
                        arrays = [videos if name == "video" else good.column(name) for name in PUBLISHED_SCHEMA.names]
                        table = pa.Table.from_arrays(arrays, schema=PUBLISHED_SCHEMA)
                        if writer is None:
                            writer = pq.ParquetWriter(tmp, PUBLISHED_SCHEMA, compression="zstd", write_statistics=True)
                        writer.write_table(table)
                        rows += good.num_rows
            finally:
                if writer is not None:
                    writer.close()
            if rows == 0:
                raise _NoGoodRecord
    except _NoGoodRecord:
        pass
    except (OSError, pa.ArrowInvalid) as error:
        raise PublishError(f"{shard}: cannot read the shard: {error}") from None
    return rows


def build_layout(out: str | Path, target: str | Path, *, repo_id: str, license: str = DEFAULT_LICENSE,
                 video_root: Path | None = None, quality: RunQuality | None = None,
                 data_file_bytes: int | None = None) -> Layout:
    """Write the dataset folder for `out`'s shards into `target` (cached conversions in `target/.cache`),
    their good records repacked into data files of about `data_file_bytes` (default: `data_file_size()`)."""
    data_file_bytes = data_file_bytes or data_file_size()
    out, target = Path(out), Path(target)
    shards = shard_paths(out)
    if not shards:
        raise PublishError(f"{out}: no parquet shards to publish")
    cache = target / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    converted: list[tuple[Path, Path, int]] = []
    skipped: list[str] = []
    counts_file = cache / "rows.json"
    known_rows: dict[str, int] = json.loads(counts_file.read_text()) if counts_file.is_file() else {}
    for shard in shards:
        key = _shard_key(shard, video_root)
        cached = cache / f"{key}.parquet"
        if key in known_rows and (known_rows[key] == 0 or cached.is_file()):
            rows = known_rows[key]
        else:
            rows = convert_shard(shard, cached, video_root)
            known_rows[key] = rows
        name = shard.relative_to(shard_folder(out)).as_posix()
        if rows == 0:
            skipped.append(name)
            continue
        converted.append((shard, cached, rows))
    atomic_write_text(counts_file, json.dumps(known_rows, indent=1, sort_keys=True))
    if not converted:
        raise PublishError(f"{out}: no good record to publish (every record carries an error)")

    for sub in (DATA_DIR, "stats"):
        if (target / sub).exists():
            shutil.rmtree(target / sub)
    (target / DATA_DIR).mkdir(parents=True)
    files: dict[str, str] = {}
    names = [shard.relative_to(shard_folder(out)).as_posix() for shard, _, _ in converted]
    groups = pack_shards(names, [cached.stat().st_size for _, cached, _ in converted], data_file_bytes)
    total = len(groups)
    packs_dir = cache / "packs"
    packs_dir.mkdir(exist_ok=True)
    used: set[str] = set()
    for index, members in enumerate(groups):
        parts = [converted[i][1] for i in members]
        key = hashlib.sha256("|".join(p.stem for p in parts).encode()).hexdigest()[:24]
        pack = parts[0] if len(parts) == 1 else packs_dir / f"{key}.parquet"
        if len(parts) > 1 and not pack.is_file():
            write_pack(parts, pack)
        used.add(pack.name)
        path = target / data_file_name(index, total)
        try:
            os.link(pack, path)
        except OSError:
            shutil.copyfile(pack, path)
        files[data_file_name(index, total)] = file_sha256(path)
    for stale in packs_dir.glob("*.parquet"):  # packs no data file uses any more
        if stale.name not in used:
            stale.unlink(missing_ok=True)

    if quality is None:  # the stored report when current; else computed without touching quality/run.json
        quality = fresh_run_quality(out)
        if quality is None:
            writable = os.access(out, os.W_OK)
            if writable:
                shard_figures(out)  # store per-shard figures: the next publish reads only new shards
            quality = compute_run_quality(out, previous_runs=(), write=False)
    stats = _public_quality(quality)
    atomic_write_text(target / STATS_FILE, json.dumps(stats, indent=1, sort_keys=True) + "\n")
    files[STATS_FILE] = file_sha256(target / STATS_FILE)

    records = sum(rows for _, _, rows in converted)
    data_paths = [target / data_file_name(i, total) for i in range(total)]
    card = dataset_card(repo_id, data_paths, records, quality, license=license, reviewed=card_section(out))
    atomic_write_text(target / "README.md", card)
    files["README.md"] = file_sha256(target / "README.md")
    return Layout(root=str(target), records=records, files=dict(sorted(files.items())), shards=names,
                  packs=[[names[i] for i in members] for members in groups], skipped_shards=skipped)


def data_file_size(settings: Settings | None = None) -> int:
    """The target size of a data file in bytes: setting publish.data_file_mb (default 256) MB of `settings`
    (None: the settings in force, from the config file and `VIDTHINKER_PUBLISH__DATA_FILE_MB`)."""
    settings = settings if settings is not None else load_settings()
    return max(1, int(settings.publish.data_file_mb * 1024 * 1024))


def _boundary_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def pack_shards(names: Sequence[str], sizes: Sequence[int], target: int) -> list[list[int]]:
    """Group consecutive shards (indexes) into data files of about `target` bytes, content-defined.

    A file closes after shard i once it holds >= target/2 bytes and the hash of i's name falls on a
    boundary (probability 1/m, m = the power of two nearest to target / (2 x mean shard size)), or once it
    holds >= 2 x target. Boundaries depend on names and on the sizes since the last boundary only, so after
    a change the grouping falls back into step at the next boundary both share."""
    if not names:
        return []
    mean = max(1.0, sum(sizes) / len(sizes))
    m = 1 << max(0, round(math.log2(max(1.0, target / (2 * mean)))))
    groups: list[list[int]] = []
    current: list[int] = []
    held = 0
    for i, (name, size) in enumerate(zip(names, sizes)):
        current.append(i)
        held += size
        if held >= 2 * target or (held >= target / 2 and _boundary_hash(name) % m == 0):
            groups.append(current)
            current, held = [], 0
    if current:
        groups.append(current)
    return groups


def write_pack(parts: Sequence[Path], target: Path) -> None:
    """Concatenate converted shard files into one data file, in row groups of up to BATCH_ROWS rows,
    streaming (memory: one row group); deterministic, so the same parts give the same bytes."""
    buffered: list[pa.Table] = []
    rows = 0
    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, PUBLISHED_SCHEMA, compression="zstd",
                                                      write_statistics=True) as writer:
        for part in parts:
            with pq.ParquetFile(part) as handle:
                for batch in handle.iter_batches(batch_size=BATCH_ROWS):
                    buffered.append(pa.Table.from_batches([batch]).cast(PUBLISHED_SCHEMA))
                    rows += batch.num_rows
                    if rows >= BATCH_ROWS:
                        writer.write_table(pa.concat_tables(buffered), row_group_size=BATCH_ROWS)
                        buffered, rows = [], 0
        if buffered:
            writer.write_table(pa.concat_tables(buffered), row_group_size=BATCH_ROWS)


def _public_quality(quality: RunQuality) -> dict[str, Any]:
    """The figures without local paths."""
    data = quality.model_dump(mode="json", exclude={"run_dir", "drift"})
    if data.get("ground_truth_manifest"):
        data["ground_truth_manifest"] = Path(data["ground_truth_manifest"]).name
    return data
