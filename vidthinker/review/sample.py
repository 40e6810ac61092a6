"""The sample a reviewer is shown: a seeded draw stratified by instruction type, then shard, and the drawn
records read back.

Sampling (`run_index` + `draw_sample`) never reads a whole shard: one projection of the `id`,
`instruction_type` and `error` columns of every shard (pyarrow), a seeded random key per good record,
an allocation of the sample over instruction types (proportional, at least one per type when the
sample is large enough) and, inside a type, over shards (proportional, largest remainders, seeded
ties), the records with the smallest keys in each stratum; records the reviewer already reviewed (at
their current content) are not drawn. `fetch_records` then reads only the row group that holds each
chosen record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vidthinker.review.index import RunIndex, row_group_rows
from vidthinker.review.table import ReviewError
from vidthinker.schema import VideoITGRecord, arrow_schema, validate_row


@dataclass(frozen=True)
class SampleItem:
    record_id: str
    instruction_type: str
    shard: Path
    row: int


def _largest_remainder(total: int, weights: Mapping, rng: np.random.Generator, minimum: int = 0) -> dict:
    """Split `total` over keys proportionally to `weights` (capped by each weight), ties broken by `rng`."""
    keys = [k for k, w in weights.items() if w > 0]
    total = min(total, sum(weights[k] for k in keys))
    out = {k: 0 for k in keys}
    if not keys or total <= 0:
        return out
    if minimum and total >= minimum * len(keys):
        for k in keys:
            out[k] = min(minimum, weights[k])
    left = total - sum(out.values())
    while left > 0:
        room = {k: weights[k] - out[k] for k in keys if weights[k] > out[k]}
        mass = sum(room.values())
        quota = {k: left * room[k] / mass for k in room}
        floors = {k: min(room[k], math.floor(q)) for k, q in quota.items()}
        given = sum(floors.values())
        if given == 0:  # hand out single records by remainder, seeded ties
            jitter = rng.random(len(room))
            order = sorted(room, key=lambda k: (-(quota[k] - floors[k]), jitter[list(room).index(k)]))
            for k in order[:left]:
                out[k] += 1
            break
        for k, f in floors.items():
            out[k] += f
        left -= given
    return out


def draw_sample(index: RunIndex, size: int, seed: int, exclude: Iterable[str] = ()) -> list[SampleItem]:
    """A seeded sample of `size` good records, stratified by instruction type, then shard; `exclude`d ids are not drawn.

    The same index, size, seed and exclusions give the same sample; the order interleaves strata."""
    if size < 1:
        raise ReviewError(f"sample size {size}: must be at least 1")
    rng = np.random.default_rng(seed)
    keys = rng.random(len(index))
    available = np.ones(len(index), dtype=bool)
    excluded = pa.array(sorted(set(exclude)), pa.string())
    if len(excluded):
        available &= ~pc.is_in(index.ids, value_set=excluded).to_numpy(zero_copy_only=False)
    pool = np.flatnonzero(available)
    if not len(pool):
        return []
    types = index.types[pool]
    by_type = {t: pool[types == t] for t in sorted(set(types.tolist()))}
    per_type = _largest_remainder(size, {t: len(rows) for t, rows in by_type.items()}, rng, minimum=1)
    chosen: list[int] = []
    for kind, rows in by_type.items():
        want = per_type.get(kind, 0)
        if not want:
            continue
        shards = index.shard_no[rows]
        groups = {int(s): rows[shards == s] for s in np.unique(shards)}
        per_shard = _largest_remainder(want, {s: len(g) for s, g in groups.items()}, rng)
        for s, g in groups.items():
            take = per_shard.get(s, 0)
            if take:
                chosen.extend(g[np.argsort(keys[g], kind="stable")[:take]].tolist())
    chosen.sort(key=lambda i: keys[i])
    return [SampleItem(record_id=index.ids[i].as_py(), instruction_type=str(index.types[i]),
                       shard=index.shards[int(index.shard_no[i])], row=int(index.row_no[i])) for i in chosen]


def fetch_records(items: Sequence[SampleItem]) -> list[VideoITGRecord]:
    """The chosen records, reading only the row group of each (in the sample's order)."""
    by_shard: dict[Path, list[SampleItem]] = {}
    for item in items:
        by_shard.setdefault(item.shard, []).append(item)
    found: dict[str, VideoITGRecord] = {}
    schema = arrow_schema(VideoITGRecord)
    for shard, group in by_shard.items():
        rows = row_group_rows(shard, [i.row for i in group], None)
        for item in group:
            row = rows.get(item.row)
            if row is None or row.get("id") != item.record_id:
                raise ReviewError(f"{shard}: row {item.row} is no longer record {item.record_id!r} (the shard was rewritten); draw again")
            row = {k: v for k, v in row.items() if k in schema.names}
            found[item.record_id] = validate_row(VideoITGRecord, row, source=f"{shard} record {item.record_id}")
    return [found[i.record_id] for i in items]
