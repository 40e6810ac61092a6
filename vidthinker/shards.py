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

States: `shard_state` is the one function that decides whether a planned shard is todo, finished, stale
(by settings, or by content: a video's QA pairs or file changed, `row_identity`) or failed (the last
attempt failed and is kept in `shards/_failed/`, or the shard holds transient error records); the CLI's
planning, both engines and the Airflow shard task call it. Also here: one writer per run folder
(`RunFolderLock`) and the duplicate-record-id check of the commands that read shards
(`check_duplicate_ids`). See docs/architecture.md, "Engines, shards and Ray".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from vidthinker.preflight import file_mode
from vidthinker.schema import ManifestRow, VideoITGRecord, to_table

MANIFEST_SUFFIX = ".manifest.json"
SHARDS_DIR = "shards"
FAILED_DIR = "_failed"  # under shards/: underscore folders are skipped by every reader of records
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
    state: Literal["finished", "failed"] = Field(
        "finished", description="failed: too many transient errors or the endpoint went down (kept in shards/_failed/ for inspection)"
    )
    failure: str = Field("", description="why the shard failed ('' when finished)")
    errors_by_class: dict[str, int] = Field(default_factory=dict, description="error records by class: transient / permanent")
    video_identity: dict[str, str] = Field(
        default_factory=dict,
        description="video id → row_identity (its QA pairs and the video file's size and mtime) when annotated; "
        "{} = written before identities (not compared)",
    )


def error_class_counts(records: Iterable[VideoITGRecord]) -> dict[str, int]:
    """Error records by class; records written before classes count as permanent."""
    return dict(Counter(r.error_class or "permanent" for r in records if not r.ok))


def row_identity(row: ManifestRow) -> str:
    """What a video's records depend on besides the settings: its QA pairs (ids, questions, answers,
    options, ground truth), its oracle clip descriptions, and the video file's identity (size and
    modification time in ns; a file that cannot be stat'ed, or a URL, is named by its path).

    An edited, added or removed question, or a replaced video, changes it, so the shard holding the
    video is stale by content and redone (unchanged model calls replay from the request cache).
    """
    video = row.video.removeprefix("file://")
    try:
        info = os.stat(video)
        file_id = f"{info.st_size}:{info.st_mtime_ns}"
    except (OSError, ValueError) as error:
        file_id = f"unstat:{type(error).__name__}:{row.video}"
    doc = {
        "qa": [qa.model_dump(mode="json") for qa in row.qa],
        "clip_descriptions": row.clip_descriptions,
        "file": file_id,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def row_identities(rows: Iterable[ManifestRow]) -> dict[str, str]:
    return {row.video_id: row_identity(row) for row in rows}


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
        errors_by_stage=dict(Counter(r.error_stage or "unknown" for r in failed)),
        errors_by_reason=dict(Counter(f"{r.error_stage}:{error_reason(r.error or '')}" for r in failed)),
        videos=len({r.video_id for r in records}),
        content_hash=records_hash(records),
        video_ids=sorted(set(video_ids) if video_ids is not None else {r.video_id for r in records}),
        settings_fingerprint=settings_fingerprint,
        state="failed" if failure else "finished",
        failure=failure,
        errors_by_class=error_class_counts(failed),
        video_identity={v: i for v, i in sorted((identities or {}).items())},
    )
    table = to_table(records, VideoITGRecord)
    _atomic_write_bytes(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    _atomic_write_bytes(manifest_path(path), lambda tmp: Path(tmp).write_text(manifest.model_dump_json(indent=1)))
    if not failure:  # a failed attempt of this shard is over: its records are superseded
        for old in (failed_path(path), manifest_path(failed_path(path))):
            old.unlink(missing_ok=True)
    return manifest


def failed_path(shard: Path) -> Path:
    """Where a failed attempt of shard file `shard` is kept: `shards/_failed/<name>`."""
    return Path(shard).parent / FAILED_DIR / Path(shard).name


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


ShardStateName = Literal["todo", "finished", "stale", "failed"]


@dataclass
class ShardState:
    """What a planned shard is in a run folder, decided by `shard_state` alone.

    * `todo`: no usable shard file (never run, or interrupted before its manifest was renamed);
    * `finished`: written, made with these settings and these rows, no transient error: skipped;
    * `stale`: written, but with other settings (`reason == "settings"`: redone only with
      `--redo-stale`, else `StaleShardsError`) or for rows that changed since (`"content"`: an
      edited/added/removed question or a replaced video; redone);
    * `failed`: the last attempt failed (too many transient errors, endpoint down: kept in
      `shards/_failed/`), or the shard is written but holds transient error records (a rerun repairs
      them), or holds model-reply errors and `retry_errors` asks for them again: redone.
    """

    state: ShardStateName
    manifest: ShardManifest | None = None
    reason: str = ""
    changed: list[str] = field(default_factory=list)

    @property
    def redo(self) -> bool:
        """Whether a run annotates the shard (settings-stale ones only with redo_stale)."""
        return self.state in ("todo", "failed") or (self.state == "stale" and self.reason == "content")


def _written_manifest(path: Path, video_ids: Sequence[str]) -> ShardManifest | None:
    manifest = read_shard_manifest(path)
    if manifest is None or set(manifest.video_ids) != set(video_ids):
        return None
    try:
        if pq.read_metadata(path).num_rows != manifest.records:
            return None
    except (OSError, ValueError):  # truncated or not parquet (pyarrow raises ArrowInvalid, a ValueError)
        return None
    return manifest


def reply_errors(manifest: ShardManifest) -> int:
    """Permanent records whose model reply could not be used (`ModelReplyError`): `--retry-errors` asks again."""
    return sum(n for key, n in manifest.errors_by_reason.items() if key.endswith(":ModelReplyError"))


def shard_state(
    out_dir: str | Path,
    spec: ShardSpec,
    *,
    fingerprint: str | None,
    identities: dict[str, str] | None = None,
    retry_errors: bool = False,
) -> ShardState:
    """The one place that decides a planned shard's state in run folder `out_dir` (the CLI's planning,
    both engines and the Airflow tasks call it).

    Written: parquet and manifest exist, the manifest names exactly the spec's videos and the parquet's
    row count (from its footer) equals the manifest's record count. Then, in this order: made with other
    settings than `fingerprint` (None: any settings) → stale "settings"; a video whose `identities`
    entry (`row_identity`; videos without one are not compared, nor are manifests written before
    identities) differs from the manifest's → stale "content"; transient error records → failed;
    model-reply errors with `retry_errors` → failed; else finished. Not written: a failed attempt in
    `shards/_failed/` → failed, else todo.
    """
    path = shard_file(out_dir, spec.shard_id)
    manifest = _written_manifest(path, spec.video_ids)
    if manifest is not None and manifest.state == "finished":
        if fingerprint is not None and is_stale(manifest, fingerprint):
            return ShardState("stale", manifest, "settings")
        if identities and manifest.video_identity:
            changed = sorted(v for v in spec.video_ids
                             if v in identities and manifest.video_identity.get(v) != identities[v])
            if changed:
                return ShardState("stale", manifest, "content", changed)
        transient = manifest.errors_by_class.get("transient", 0)
        if transient:
            return ShardState("failed", manifest, f"holds {transient} transient error record(s)")
        if retry_errors and reply_errors(manifest):
            return ShardState("failed", manifest, f"holds {reply_errors(manifest)} model-reply error(s) (--retry-errors)")
        return ShardState("finished", manifest)
    attempt = read_shard_manifest(failed_path(path))
    if attempt is not None and set(attempt.video_ids) == set(spec.video_ids):
        return ShardState("failed", attempt, attempt.failure or "failed")
    return ShardState("todo")


def finished_shard(out_dir: str | Path, spec: ShardSpec, *, fingerprint: str | None,
                   identities: dict[str, str] | None = None) -> ShardManifest | None:
    """The manifest of `spec`'s shard in run folder `out_dir` when `shard_state` says finished, else None
    (`fingerprint=None`: made with any settings)."""
    state = shard_state(out_dir, spec, fingerprint=fingerprint, identities=identities)
    return state.manifest if state.state == "finished" else None


def written_shards(out_dir: str | Path) -> list[ShardManifest]:
    """Every shard file in run folder `out_dir` whose manifest and parquet agree, whatever its state."""
    found = []
    folder = shards_dir(out_dir)
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.parquet" + MANIFEST_SUFFIX)):
        shard = path.with_name(path.name.removesuffix(MANIFEST_SUFFIX))
        manifest = read_shard_manifest(shard)
        if manifest is None or not manifest.shard_id or not manifest.video_ids:
            continue
        if _written_manifest(shard, manifest.video_ids) is not None:
            found.append(manifest)
    return found


def failed_attempts(out_dir: str | Path) -> list[ShardManifest]:
    """The failed shard attempts kept in `shards/_failed/` (the shard itself may have been written since)."""
    folder = shards_dir(out_dir) / FAILED_DIR
    found = []
    for path in sorted(folder.glob("*.parquet" + MANIFEST_SUFFIX)) if folder.is_dir() else []:
        manifest = read_shard_manifest(path.with_name(path.name.removesuffix(MANIFEST_SUFFIX)))
        if manifest is not None and manifest.shard_id and manifest.video_ids:
            found.append(manifest)
    return found


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

    First every shard written in `out_dir` that holds at least one of the rows' videos, as it is (the
    engines skip it when `shard_state` says finished, and redo it when failed or stale by content);
    then the failed attempts in `shards/_failed/` of shards not written since, when the rows hold all
    their videos (same id, redone); then `plan_shards` over the videos no shard holds. So a rerun after
    a crash or a failed shard redoes only those shards, and an incremental run over a grown manifest
    adds new shards for the new videos only, never rewriting or duplicating finished ones. Shards of
    videos no longer in `rows` are left alone and not part of the plan.

    A written shard of the rows' videos made with another settings fingerprint (or none) is stale:
    `StaleShardsError` (nothing planned, nothing written), or with `redo_stale` it is planned again as it
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
    return done + plan_shards(todo, shard_size, prefix=prefix)


# --------------------------------------------------------------------------- duplicate record ids


class DuplicateRecordsError(ValueError):
    """The same record id is in two shard files (two runs wrote one folder, or shards were copied in)."""


DROP_REMEDY = "Pass --drop-duplicates to keep the first copy of each."
MOVE_REMEDY = "Move one of the files out of the folder (or export with --drop-duplicates)."


def check_duplicate_ids(paths: Sequence[str | Path], *, drop: bool = False,
                        remedy: str = DROP_REMEDY) -> dict[Path, list[int]]:
    """The one check `export`, `quality`, `publish` and `train` run over the shard files they read.

    Without `drop`, a record id found in two files raises DuplicateRecordsError naming the id and both
    files; with `drop`, returns what to leave out: path → row indexes (the first copy, in `paths` order,
    is kept). Reads only the `id` column of each file."""
    seen: dict[str, Path] = {}
    found: dict[Path, list[int]] = {}
    count = 0
    first: tuple[str, Path, Path] | None = None
    for path in map(Path, paths):
        if path.suffix != ".parquet":
            continue
        try:
            ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
        except (OSError, KeyError, ValueError):
            continue  # not a record shard: its reader reports it
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


# --------------------------------------------------------------------------- one writer per run folder

LOCK_NAME = ".vidthinker.lock"


class FolderLocked(RuntimeError):
    """Another live process writes this run folder."""


class RunFolderLock:
    """One writer per run folder: an exclusive `fcntl.flock` on `OUT/.vidthinker.lock`, whose text names
    the holder (host, pid, start time, command).

    The kernel drops a flock when its process dies, however it dies, so the lock of a dead process is
    free: taking it finds the dead holder's text still there, which is logged as a warning (taken over).
    The file is emptied, never deleted, on release (deleting would let two processes lock two different
    files of the same name). `shared=True` takes a shared lock instead (the Airflow shard tasks of one
    DAG run write one folder together; an exclusive `vidthinker annotate` then waits for none of them
    and fails at once). Only the driver process holds it; Ray actors write shard files under it.
    """

    def __init__(self, out_dir: str | Path, *, command: str = "", shared: bool = False):
        self.path = Path(out_dir) / LOCK_NAME
        self.command = command
        self.shared = shared
        self._fd: int | None = None
        self.took_over: str | None = None

    def acquire(self) -> "RunFolderLock":
        import datetime as dt
        import fcntl
        import logging
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderLocked(
                f"run folder {self.path.parent} is being written by another run: "
                + (holder or "Airflow shard tasks (shared lock)")
                + f"; wait for it to end (lock file {self.path})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if not self.shared:
            previous = _read_holder(fd)
            if previous:
                self.took_over = previous
                logging.getLogger(__name__).warning(
                    "run folder %s: taking over the lock of a run that ended without releasing it (%s)",
                    self.path.parent, previous)
            text = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                               "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                               "command": self.command[:500]})
            os.ftruncate(fd, 0)
            os.pwrite(fd, text.encode(), 0)
        return self

    def release(self) -> None:
        import fcntl

        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if not self.shared:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> "RunFolderLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """'host H, pid P, since T: COMMAND' from a lock file's text ('' when empty or unreadable)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "null")
    except (OSError, ValueError):
        return ""
    if not isinstance(data, dict):
        return ""
    return (f"host {data.get('host')}, pid {data.get('pid')}, since {data.get('started')}"
            + (f": {data['command']}" if data.get("command") else ""))


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
    import logging

    logging.getLogger(__name__).warning("%s: leaving out %d duplicate record(s) (--drop-duplicates)", source,
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
