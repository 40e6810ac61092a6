"""The run's good records, column-wise (`run_index`: id, type, shard and row of each; nothing else is read),
and what reviews are measured against: each record's current content hash, and whether a review is
current, outdated or gone."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vidthinker.quality.runs import shard_paths
from vidthinker.review.table import HASH_FIELDS, Review, read_reviews, record_hash

Status = Literal["current", "outdated", "gone"]


@dataclass
class RunIndex:
    """Good records of a run, column-wise: id, type, shard number, row number in the shard."""

    shards: list[Path]
    ids: pa.Array
    types: np.ndarray  # object array of type names ('unknown' when unset)
    shard_no: np.ndarray
    row_no: np.ndarray
    counts: dict[str, int]

    def __len__(self) -> int:
        return len(self.ids)

    def type_counts(self) -> dict[str, int]:
        return dict(self.counts)

    def locate(self, ids: Iterable[str]) -> dict[str, int]:
        """Position in the index of each of `ids` that is a good record of the run."""
        wanted = pa.array(sorted(set(ids)), pa.string())
        if not len(wanted):
            return {}
        hits = np.flatnonzero(pc.is_in(self.ids, value_set=wanted).to_numpy(zero_copy_only=False))
        found = self.ids.take(pa.array(hits, pa.int64())).to_pylist()
        return {i: int(h) for i, h in zip(found, hits)}


_index_cache: OrderedDict[tuple, RunIndex] = OrderedDict()
_lock = threading.Lock()


def shards_signature(run_dir: Path) -> tuple:
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in shard_paths(run_dir))


def run_index(run_dir: str | Path) -> RunIndex:
    """Project `id, instruction_type, error` of every shard (nothing else is read); cached while the shards are unchanged."""
    run_dir = Path(run_dir)
    key = (str(run_dir.resolve()), shards_signature(run_dir))
    with _lock:
        if key in _index_cache:
            return _index_cache[key]
    paths = shard_paths(run_dir)
    ids, types, shard_no, row_no, counts = [], [], [], [], {}
    for n, path in enumerate(paths):
        table = pq.read_table(path, columns=["id", "instruction_type", "error"])
        good = np.flatnonzero(pc.is_null(table["error"]).to_numpy(zero_copy_only=False))
        kinds = pc.fill_null(table["instruction_type"].cast(pa.string()), "unknown").combine_chunks()
        ids.append(table["id"].combine_chunks().cast(pa.string()).take(pa.array(good)))
        good_kinds = kinds.take(pa.array(good))
        for item in pc.value_counts(good_kinds).to_pylist():
            counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
        types.append(good_kinds.to_numpy(zero_copy_only=False).astype(object))
        shard_no.append(np.full(len(good), n, dtype=np.int32))
        row_no.append(good.astype(np.int64))
    index = RunIndex(
        shards=paths,
        ids=pa.concat_arrays(ids) if ids else pa.array([], pa.string()),
        types=np.concatenate(types) if types else np.array([], dtype=object),
        shard_no=np.concatenate(shard_no) if shard_no else np.array([], dtype=np.int32),
        row_no=np.concatenate(row_no) if row_no else np.array([], dtype=np.int64),
        counts=counts,
    )
    with _lock:
        _index_cache[key] = index
        while len(_index_cache) > 8:
            _index_cache.popitem(last=False)
    return index


def row_group_rows(path: Path, rows: Sequence[int], columns: Sequence[str] | None) -> dict[int, dict]:
    """Rows of one shard by number, reading only the row groups that hold them."""
    out: dict[int, dict] = {}
    with pq.ParquetFile(path) as handle:
        meta, at, bounds = handle.metadata, 0, []
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            bounds.append((at, at + n))
            at += n
        for g, (lo, hi) in enumerate(bounds):
            inside = [r for r in rows if lo <= r < hi]
            if not inside:
                continue
            table = handle.read_row_group(g, columns=list(columns) if columns else None)
            for r in inside:
                out[r] = table.slice(r - lo, 1).to_pylist()[0]
    return out


def current_hashes(run_dir: str | Path, ids: Iterable[str], index: RunIndex | None = None) -> dict[str, str]:
    """Content hashes of the good records among `ids` as the run holds them now (ids not found are left out)."""
    index = index or run_index(run_dir)
    where = index.locate(ids)
    by_shard: dict[int, list[tuple[str, int]]] = {}
    for record_id, h in where.items():
        by_shard.setdefault(int(index.shard_no[h]), []).append((record_id, int(index.row_no[h])))
    out = {}
    for s, pairs in by_shard.items():
        rows = row_group_rows(index.shards[s], [r for _, r in pairs], HASH_FIELDS)
        for record_id, r in pairs:
            out[record_id] = record_hash(rows[r])
    return out


def review_status(reviews: Sequence[Review], hashes: Mapping[str, str]) -> list[Status]:
    return ["gone" if r.record_id not in hashes else "current" if hashes[r.record_id] == r.record_hash else "outdated"
            for r in reviews]


def reviewed_ids(run_dir: str | Path, reviewer: str, index: RunIndex | None = None) -> set[str]:
    """Records the reviewer has a current review of (not drawn again)."""
    mine = [r for r in read_reviews(run_dir) if r.reviewer == reviewer]
    hashes = current_hashes(run_dir, {r.record_id for r in mine}, index)
    return {r.record_id for r, s in zip(mine, review_status(mine, hashes)) if s == "current"}
