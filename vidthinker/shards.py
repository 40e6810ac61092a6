"""Parquet shards of VideoITG records: planned deterministically, written atomically, resumed safely.

Layout of a run folder `OUT`::

    OUT/shards/<shard_id>.parquet                 the records of the shard's videos
    OUT/shards/<shard_id>.parquet.manifest.json   counts, video ids and a content hash (ShardManifest)

Planning (`plan_shards`): rows are sorted by `video_id` and cut into chunks of `shard_size`; a shard's id
is `<prefix>-<first 16 hex of sha256 over its sorted video ids>`. The id names *what the shard holds*,
not where it sits in a list, so:

* the same rows always give the same shards (a rerun after a crash finds the same shard files);
* an incremental run (`plan_run`) first takes the finished shards already in `OUT` as they are, then
  plans only the videos that none of them holds. New manifest entries therefore land in new shards
  with new ids, and no finished shard is ever rewritten or duplicated, whatever the shard size.

Writing (`write_shard`): the parquet file and then its manifest are each written to a temporary file in
the same folder and renamed, so a reader never sees half a shard. A shard is *finished* iff its parquet
and manifest both exist, the manifest names exactly the spec's videos and the parquet holds as many rows
as the manifest counts (`finished_shard`). A crash before the manifest's rename leaves the shard
unfinished: it is redone, and the request cache replays the model calls it had already paid for.

Settings: the manifest also stores the *annotation fingerprint* of the settings the shard was made with
(`vidthinker.fingerprint.annotation_fingerprint`: models, prompt templates, `annotate` and `video`
settings, pipeline version; not endpoints, keys or engine settings). Shard ids name only videos, so a
finished shard made with another fingerprint, or with none (written before fingerprints), is *stale*:
`plan_run` raises `StaleShardsError` rather than keep it, and with `redo_stale` (`engine.redo_stale`,
`vidthinker annotate --redo-stale`) plans it again under the same id, so it is overwritten atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from vidthinker.preflight import file_mode
from vidthinker.schema import ManifestRow, VideoITGRecord, to_table

MANIFEST_SUFFIX = ".manifest.json"
SHARDS_DIR = "shards"
# Fields that say how a record was made this time, not what it says: left out of the content hash so
# that a rerun (new run id, cache replays with other latencies and zero billable calls) compares equal.
_TRACE_VOLATILE = {"latency_s": True, "usage": {"calls"}}
_HASH_EXCLUDE = {
    "provenance": {"created_at", "run_id"},
    "captions": {"__all__": {"trace": _TRACE_VOLATILE}},
    "retrieval": {"trace": _TRACE_VOLATILE},
    "localization": {"trace": _TRACE_VOLATILE},
}


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


def error_reason(error: str) -> str:
    """The error's class, e.g. 'CorruptVideo' or 'ModelReplyError', for grouping."""
    head = error.split(":", 1)[0].strip()
    return head if head.replace("_", "").isalnum() and len(head) < 40 else "other"


def records_hash(records: Iterable[VideoITGRecord]) -> str:
    """Hash of what the records say, in order.

    Leaves out when and by which run they were made (`provenance.created_at/run_id`) and what each model
    call cost this time (trace `latency_s` and `usage.calls`, which are 0 for a cache replay), so an
    interrupted-and-resumed run compares equal to an uninterrupted one. Token counts, raw model outputs
    and errors are kept.
    """
    digest = hashlib.sha256()
    for record in records:
        data = record.model_dump(mode="json", exclude=_HASH_EXCLUDE)
        digest.update(json.dumps(data, sort_keys=True).encode())
    return digest.hexdigest()


def _atomic_write_bytes(path: Path, writer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, file_mode())  # mkstemp makes 0600; a shard/manifest/summary gets 0o666 & ~umask
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_shard(
    records: Sequence[VideoITGRecord],
    path: str | Path,
    *,
    shard_id: str | None = None,
    video_ids: Iterable[str] | None = None,
    settings_fingerprint: str = "",
) -> ShardManifest:
    """Write records to `path` and its manifest beside it, each atomically (parquet first).

    `video_ids` are the videos the shard is for (default: those of the records); `shard_id` defaults
    to the file's stem; `settings_fingerprint` is the annotation fingerprint of the settings the records
    were made with (`vidthinker.fingerprint.annotation_fingerprint`; '' = unknown, such a shard is stale
    for every run that plans with a fingerprint).
    """
    path = Path(path)
    failed = [r for r in records if not r.ok]
    manifest = ShardManifest(
        shard=path.name,
        shard_id=shard_id or path.name.removesuffix(".parquet"),
        records=len(records),
        ok=len(records) - len(failed),
        errors=len(failed),
        errors_by_stage=dict(Counter(r.error_stage or "unknown" for r in failed)),
        errors_by_reason=dict(Counter(f"{r.error_stage}:{error_reason(r.error or '')}" for r in failed)),
        videos=len({r.video_id for r in records}),
        content_hash=records_hash(records),
        video_ids=sorted(set(video_ids) if video_ids is not None else {r.video_id for r in records}),
        settings_fingerprint=settings_fingerprint,
    )
    table = to_table(records, VideoITGRecord)
    _atomic_write_bytes(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    _atomic_write_bytes(manifest_path(path), lambda tmp: Path(tmp).write_text(manifest.model_dump_json(indent=1)))
    return manifest


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


# --------------------------------------------------------------------------- planning and resume


def shards_dir(out_dir: str | Path) -> Path:
    """Where a run folder keeps its shards: `out_dir/shards`."""
    return Path(out_dir) / SHARDS_DIR


def shard_file(out_dir: str | Path, shard_id: str) -> Path:
    """The parquet file of shard `shard_id` in run folder `out_dir`: `out_dir/shards/<shard_id>.parquet`."""
    if not shard_id or "/" in shard_id or shard_id.startswith("."):
        raise ValueError(f"bad shard id {shard_id!r}")
    return shards_dir(out_dir) / f"{shard_id}.parquet"


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


def plan_shards(rows: Sequence[ManifestRow], shard_size: int, *, prefix: str = "shard") -> list[ShardSpec]:
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


class StaleShardsError(ValueError):
    """A run folder holds finished shards made with other annotation settings than the run's (stale).

    Kept as they are they would mix old and new settings in one dataset; they are neither skipped nor
    overwritten silently. `stale` are their manifests, `fingerprint` the run's fingerprint.
    """

    def __init__(self, out_dir: str | Path, stale: Sequence[ShardManifest], fingerprint: str, *,
                 remedy: str | None = None):
        self.out_dir = Path(out_dir)
        self.stale = list(stale)
        self.fingerprint = fingerprint
        example = shards_dir(out_dir) / self.stale[0].shard
        there = Counter(m.settings_fingerprint for m in self.stale)
        shown = [f"{describe_fingerprint(fp)}{f' ({n} shards)' if len(there) > 1 else ''}" for fp, n in there.most_common(3)]
        more = f" and {len(there) - 3} more" if len(there) > 3 else ""
        super().__init__(
            f"run folder {self.out_dir} holds {len(self.stale)} finished shard(s) made with other annotation settings "
            f"than this run's (stale), e.g. {example}\n"
            f"  settings fingerprint there: {', '.join(shown)}{more}\n"
            f"  settings fingerprint now:   {fingerprint}\n"
            "The fingerprint covers the models, the prompt templates, the `annotate` and `video` settings and the "
            "pipeline version (not endpoints, API keys, timeouts or engine settings). Kept as they are, these shards "
            "would mix old and new settings in one dataset.\n"
            + (remedy or REDO_STALE_REMEDY)
        )


REDO_STALE_REMEDY = (
    "To go on: annotate into a new --out folder, or pass --redo-stale (setting engine.redo_stale=true) to "
    "annotate the stale shards again with the new settings (each is overwritten in place)."
)
UNKNOWN_FINGERPRINT = "unknown (written before fingerprints)"


def describe_fingerprint(fingerprint: str) -> str:
    return fingerprint or UNKNOWN_FINGERPRINT


def is_stale(manifest: ShardManifest, fingerprint: str) -> bool:
    """Whether a finished shard was made with other settings than `fingerprint` (or with unknown ones)."""
    return not manifest.settings_fingerprint or manifest.settings_fingerprint != fingerprint


def finished_shard(out_dir: str | Path, spec: ShardSpec, *, fingerprint: str | None) -> ShardManifest | None:
    """The manifest of `spec`'s shard in run folder `out_dir` when it is finished, else None.

    Finished: parquet and manifest exist, the manifest names exactly the spec's videos, and the parquet's
    row count equals the manifest's record count (read from the parquet footer, not the data); and, when
    `fingerprint` is given, the manifest's settings fingerprint equals it (a stale shard is not finished
    for this run; `fingerprint=None` says explicitly: made with any settings).
    """
    path = shard_file(out_dir, spec.shard_id)
    manifest = read_shard_manifest(path)
    if manifest is None or set(manifest.video_ids) != set(spec.video_ids):
        return None
    if fingerprint is not None and is_stale(manifest, fingerprint):
        return None
    try:
        if pq.read_metadata(path).num_rows != manifest.records:
            return None
    except (OSError, ValueError):  # truncated or not parquet (pyarrow raises ArrowInvalid, a ValueError)
        return None
    return manifest


def finished_shards(out_dir: str | Path, *, fingerprint: str | None) -> list[ShardManifest]:
    """Every finished shard in run folder `out_dir` (manifest and parquet agree), by shard id; with a
    `fingerprint`, only those made with it (`None`: made with any settings, stale ones included)."""
    found = []
    folder = shards_dir(out_dir)
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.parquet" + MANIFEST_SUFFIX)):
        manifest = read_shard_manifest(path.with_name(path.name.removesuffix(MANIFEST_SUFFIX)))
        if manifest is None or not manifest.shard_id or not manifest.video_ids:
            continue
        spec = ShardSpec(shard_id=manifest.shard_id, video_ids=manifest.video_ids)
        if finished_shard(out_dir, spec, fingerprint=fingerprint) is not None:
            found.append(manifest)
    return found


def plan_run(
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

    First every finished shard in `out_dir` that holds at least one of the rows' videos, as it is (the
    engines skip it); then `plan_shards` over the videos no finished shard holds. So a rerun after a
    crash redoes only unfinished shards, and an incremental run over a grown manifest adds new shards
    for the new videos only, never rewriting or duplicating finished ones. Finished shards of videos
    no longer in `rows` are left alone and not part of the plan.

    A finished shard of the rows' videos made with another settings fingerprint (or none) is stale:
    `StaleShardsError` (nothing planned, nothing written), or with `redo_stale` it is planned again as it
    is (same id and videos; the engine overwrites it). A stale shard to redo must hold only videos of
    `rows` (its other videos could not be annotated again): otherwise StaleShardsError too.
    """
    _check_unique(rows)
    wanted = {row.video_id for row in rows}
    done: list[ShardSpec] = []
    stale: list[ShardManifest] = []
    covered: set[str] = set()
    found = finished_shards(out_dir, fingerprint=None)
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
    todo = [row for row in rows if row.video_id not in covered]
    return done + plan_shards(todo, shard_size, prefix=prefix)
