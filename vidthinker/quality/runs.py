"""Runs on disk: where a run keeps its shards, the runs under a folder (oldest first), the runs before
one (the drift baseline), and a run's stored figures in `<run>/quality/` (`load_run_quality`,
`fresh_run_quality`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.compute as pc

from vidthinker.quality.models import QUALITY_VERSION, RunQuality
from vidthinker.quality.shard import iter_shard_batches, struct_field
from vidthinker.schema import SchemaError

QUALITY_DIR = "quality"
RUN_FILE = "run.json"


def shard_folder(run_dir: Path) -> Path:
    """Where a run keeps its shards: `<run>/shards/`, or the folder itself when it holds parquet files."""
    return run_dir / "shards" if (run_dir / "shards").is_dir() else run_dir


def shard_paths(run_dir: str | Path) -> list[Path]:
    """A run's record shards in a stable order (dot- and underscore-prefixed files skipped)."""
    folder = shard_folder(Path(run_dir))
    if not folder.is_dir():
        raise SchemaError(f"{run_dir}: no such run folder")
    return sorted(p for p in folder.rglob("*.parquet")
                  if not p.name.startswith((".", "_")) and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts[:-1]))


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / "shards").is_dir() and any((path / "shards").rglob("*.parquet"))


def find_runs(root: str | Path) -> list[Path]:
    """The runs under `root` (or `[root]` when it is one run), oldest first."""
    root = Path(root)
    if is_run_dir(root):
        return [root]
    if not root.is_dir():
        raise SchemaError(f"{root}: no such folder")
    runs = [p for p in sorted(root.iterdir()) if is_run_dir(p)]
    runs += [p for child in sorted(root.iterdir()) if child.is_dir() and not is_run_dir(child)
             for p in sorted(child.iterdir()) if is_run_dir(p)]
    return sorted(runs, key=lambda p: (run_created_at(p) or dt.datetime.max.replace(tzinfo=dt.UTC), p.name))


def run_created_at(run_dir: Path) -> dt.datetime | None:
    """Earliest record creation time of a run (stored quality, else one projected column of each shard)."""
    stored = load_run_quality(run_dir)
    if stored is not None and stored.created_at is not None:
        return stored.created_at
    earliest = None
    for path in shard_paths(run_dir):
        for batch in iter_shard_batches(path, ["provenance.created_at"]):
            value = pc.min(struct_field(batch.column("provenance"), "created_at")).as_py()
            if value is not None and (earliest is None or value < earliest):
                earliest = value
    return earliest


def previous_runs(run_dir: str | Path, limit: int = 5) -> list[Path]:
    """The sibling runs created before `run_dir`, newest last, at most `limit` (drift baseline)."""
    run_dir = Path(run_dir).resolve()
    mine = run_created_at(run_dir)
    siblings = [p for p in find_runs(run_dir.parent) if p.resolve() != run_dir]
    if mine is not None:
        siblings = [p for p in siblings if (run_created_at(p) or mine) < mine]
    return siblings[-limit:] if limit else []


def quality_dir(run_dir: Path) -> Path:
    return Path(run_dir) / QUALITY_DIR


def shard_quality_path(run_dir: Path, shard: Path) -> Path:
    rel = shard.relative_to(shard_folder(run_dir)).with_suffix("")
    return quality_dir(run_dir) / ("__".join(rel.parts) + ".json")


def load_run_quality(run_dir: str | Path) -> RunQuality | None:
    path = quality_dir(Path(run_dir)) / RUN_FILE
    if not path.is_file():
        return None
    try:
        quality = RunQuality.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None
    return quality if quality.version == QUALITY_VERSION else None


def fresh_run_quality(run_dir: str | Path) -> RunQuality | None:
    """The stored `quality/run.json` if it still describes the run's shards (same shard files, none
    written after it), else None."""
    run_dir = Path(run_dir)
    stored = load_run_quality(run_dir)
    if stored is None:
        return None
    paths = shard_paths(run_dir)
    names = {p.relative_to(shard_folder(run_dir)).as_posix() for p in paths}
    if {s.shard for s in stored.shards} != names or not paths:
        return None
    written = (quality_dir(run_dir) / RUN_FILE).stat().st_mtime_ns
    return stored if all(p.stat().st_mtime_ns <= written for p in paths) else None
