"""Which videos go into which shard: `assign_shards` cuts rows into shards deterministically, and
`schedule_run` resumes a run folder (the shards already there first, new shards for the rest).

Assigning: rows are sorted by `video_id` and cut into chunks of `shard_size`; a shard's id is
`<prefix>-<first 16 hex of sha256 over its sorted video ids>`. The id names *what the shard holds*,
not where it sits in a list, so:

* the same rows always give the same shards (a rerun after a crash finds the same shard files);
* an incremental run (`schedule_run`) first takes the finished shards already in `OUT` as they are,
  then assigns only the videos that none of them holds. New manifest entries therefore land in new
  shards with new ids, and no finished shard is ever rewritten or duplicated, whatever the shard size.

A finished shard made with other settings (stale, see `vidthinker.shards.state`) makes `schedule_run`
raise `StaleShardsError` rather than keep it; with `redo_stale` (`engine.redo_stale`,
`vidthinker annotate --redo-stale`) it is scheduled again under the same id, so it is overwritten
atomically.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from vidthinker.schema import ManifestRow
from vidthinker.shards.manifest import ShardManifest, ShardSpec
from vidthinker.shards.state import StaleShardsError, failed_attempts, is_stale, written_shards


def shard_id_for(video_ids: Iterable[str], prefix: str = "shard") -> str:
    """`<prefix>-<16 hex>`: a content address of the (sorted, distinct) video ids a shard holds."""
    digest = hashlib.sha256("\n".join(sorted(set(video_ids))).encode()).hexdigest()
    return f"{prefix}-{digest[:16]}"


def _check_unique(rows: Sequence[ManifestRow]) -> None:
    counts = Counter(row.video_id for row in rows)
    repeated = sorted(v for v, n in counts.items() if n > 1)
    if repeated:
        raise ValueError(f"manifest has repeated video_id(s) {repeated[:5]}{' ...' if len(repeated) > 5 else ''}: "
                         "a video is the unit of a shard, merge their QA into one row")


def assign_shards(rows: Sequence[ManifestRow], shard_size: int, *, prefix: str = "shard") -> list[ShardSpec]:
    """Cut rows into shards of at most `shard_size` videos, deterministically.

    A video's shard: rows are sorted by `video_id` and chunked in that order; the shard id is
    `shard_id_for(its video ids, prefix)`, a hash of the ids it holds. Same rows → same shards, in any
    input order. Repeated video ids are an error.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    _check_unique(rows)
    ids = sorted(row.video_id for row in rows)
    return [
        ShardSpec(shard_id=shard_id_for(chunk, prefix), video_ids=chunk)
        for chunk in (ids[i : i + shard_size] for i in range(0, len(ids), shard_size))
    ]


def schedule_run(
    rows: Sequence[ManifestRow],
    out_dir: str | Path,
    shard_size: int,
    *,
    fingerprint: str,
    redo_stale: bool = False,
    prefix: str = "shard",
) -> list[ShardSpec]:
    """The shards for annotating `rows` into run folder `out_dir` with settings of `fingerprint`, resuming
    what is there.

    First every shard written in `out_dir` that holds at least one of the rows' videos, as it is (the
    engines skip it when `shard_state` says finished, and redo it when failed or stale by content);
    then the failed attempts in `shards/_failed/` of shards not written since, when the rows hold all
    their videos (same id, redone); then `assign_shards` over the videos no shard holds. So a rerun after
    a crash or a failed shard redoes only those shards, and an incremental run over a grown manifest
    adds new shards for the new videos only, never rewriting or duplicating finished ones. Shards of
    videos no longer in `rows` are left alone and not scheduled.

    A written shard of the rows' videos made with another settings fingerprint (or none) is stale:
    `StaleShardsError` (nothing scheduled, nothing written), or with `redo_stale` it is scheduled again as it
    is (same id and videos; the engine overwrites it). A stale shard to redo must hold only videos of
    `rows` (its other videos could not be annotated again): otherwise StaleShardsError too.
    """
    _check_unique(rows)
    wanted = {row.video_id for row in rows}
    done: list[ShardSpec] = []
    stale: list[ShardManifest] = []
    covered: set[str] = set()
    found = written_shards(out_dir)
    fresh = [m for m in found if not is_stale(m, fingerprint)]
    old = [m for m in found if is_stale(m, fingerprint)]
    for manifest in fresh + old:  # a shard made with these settings wins over an overlapping stale one
        ids = set(manifest.video_ids)
        if ids & wanted and not ids & covered:
            done.append(ShardSpec(shard_id=manifest.shard_id, video_ids=manifest.video_ids))
            covered |= ids
            if is_stale(manifest, fingerprint):
                stale.append(manifest)
    if stale and not redo_stale:
        raise StaleShardsError(out_dir, stale, fingerprint)
    partial = [m for m in stale if not set(m.video_ids) <= wanted]
    if partial:
        outside = sorted(set(partial[0].video_ids) - wanted)
        raise StaleShardsError(out_dir, partial, fingerprint, remedy=(
            f"--redo-stale cannot annotate them again: they also hold videos not in this run's manifest "
            f"(e.g. {partial[0].shard} holds {outside[:3]}). Run with the manifest that has those videos, "
            "or annotate into a new --out folder."))
    for attempt in failed_attempts(out_dir):
        ids = set(attempt.video_ids)
        if ids <= wanted and not ids & covered:
            done.append(ShardSpec(shard_id=attempt.shard_id, video_ids=attempt.video_ids))
            covered |= ids
    todo = [row for row in rows if row.video_id not in covered]
    return done + assign_shards(todo, shard_size, prefix=prefix)
