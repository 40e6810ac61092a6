"""What a shard is in a run folder: `shard_state`, the one decision (todo / finished / stale / failed)
the CLI's scheduling, both engines and the Airflow shard task call; the listings built on it (written,
finished and failed shards); and `StaleShardsError` for shards made with other settings.

Settings: a manifest stores the *annotation fingerprint* of the settings its shard was made with
(`vidthinker.fingerprint.annotation_fingerprint`: models, prompt templates, `annotate` and `video`
settings, pipeline version; not endpoints, keys or engine settings). Shard ids name only videos, so a
finished shard made with another fingerprint, or with none (written before fingerprints), is *stale*.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow.parquet as pq

from vidthinker.shards.files import FAILED_DIR, failed_path, shard_file, shards_dir
from vidthinker.shards.manifest import MANIFEST_SUFFIX, ShardManifest, ShardSpec, read_shard_manifest


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
