"""`vidthinker validate`: check parquet files or whole run folders against the data contract, shard by shard.

A run folder (or its `shards/` folder) is checked shard by shard, each shard batch by batch, so memory is
bounded by one batch however large the run is:

* the file is readable parquet and its columns match the table (`schema.check_table_schema` on the file's
  schema, no data read);
* every row is a valid row of the table (pydantic, the same validation as everywhere else); record ids are
  unique within the shard;
* for record shards with a manifest (`shards.read_shard_manifest`): the counts (records, ok, errors,
  videos), the video ids and the content hash (`shards.records_hash`, fed row by row as the rows are
  validated) equal the manifest's. In a run folder a shard without a manifest is bad (unfinished: its
  writer stopped before the manifest's rename), and so is a manifest whose parquet file is missing.

`*.manifest.json` files are never read as inputs. Every bad shard is reported with its file and the reason;
the others still get checked.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vidthinker.schema import SchemaError, VideoITGRecord, check_table_schema, validate_row
from vidthinker.shards import MANIFEST_SUFFIX, SHARDS_DIR, read_shard_manifest, records_hash

BATCH_ROWS = 1024


@dataclass
class FileCheck:
    path: Path
    rows: int = 0
    problem: str | None = None  # None: good
    manifest: bool = False  # checked against a shard manifest

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class ValidationReport:
    table: str
    files: list[FileCheck] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # manifests and other non-parquet inputs

    @property
    def bad(self) -> list[FileCheck]:
        return [f for f in self.files if not f.ok]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


def _visible(path: Path, base: Path) -> bool:
    return not any(part.startswith((".", "_")) for part in path.relative_to(base).parts)


def expand_inputs(paths: Sequence[Path]) -> tuple[list[tuple[Path, bool]], list[Path], list[Path]]:
    """(parquet files with whether each comes from a run folder, skipped inputs, orphan manifests).

    A folder is a run folder (its `shards/` is read) or a shard folder; its parquet files are found
    recursively, hidden (`.`/`_`) ones left out. A manifest whose parquet file is missing is an orphan.
    """
    files: list[tuple[Path, bool]] = []
    skipped: list[Path] = []
    orphans: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            folder = path / SHARDS_DIR if (path / SHARDS_DIR).is_dir() else path
            files += [(p, True) for p in sorted(folder.rglob("*.parquet")) if _visible(p, folder)]
            orphans += [m for m in sorted(folder.rglob("*.parquet" + MANIFEST_SUFFIX))
                        if _visible(m, folder) and not m.with_name(m.name.removesuffix(MANIFEST_SUFFIX)).is_file()]
        elif path.name.endswith(MANIFEST_SUFFIX):
            skipped.append(path)
        elif not path.exists():
            raise SchemaError(f"{path}: no such file or folder")
        else:
            files.append((path, False))
    return files, skipped, orphans


def _rows(handle: pq.ParquetFile, model, source: str, counts: Counter, ids: set[str] | None,
          videos: set[str]) -> Iterator:
    """Validated rows of the file, batch by batch; tallies what a manifest counts as it goes."""
    index = 0
    schema = check_table_schema(handle.schema_arrow.empty_table(), model, source=source).schema
    for batch in handle.iter_batches(batch_size=BATCH_ROWS, columns=schema.names):
        if batch.schema != schema:
            batch = pa.Table.from_batches([batch]).cast(schema).to_batches()[0] if batch.num_rows else batch
        for data in batch.to_pylist():
            row = validate_row(model, data, source=source, index=index)
            if ids is not None:
                if row.id in ids:
                    raise SchemaError(f"{source} row {index}: record id {row.id!r} repeats an earlier row")
                ids.add(row.id)
                counts["records"] += 1
                counts["ok" if row.error is None else "errors"] += 1
                videos.add(row.video_id)
            index += 1
            yield row


def check_file(path: Path, model, *, in_run: bool) -> FileCheck:
    """One file's check (never raises for bad input: the problem is in the result)."""
    result = FileCheck(path=path)
    source = str(path)
    records = model is VideoITGRecord
    manifest = read_shard_manifest(path) if records else None
    if in_run and records and manifest is None:
        result.problem = f"no readable manifest ({path.name}{MANIFEST_SUFFIX}): an unfinished shard"
        return result
    counts: Counter = Counter()
    ids: set[str] | None = set() if records else None
    seen_videos: set[str] = set()
    try:
        with pq.ParquetFile(path) as handle:
            rows = _rows(handle, model, source, counts, ids, seen_videos)
            if manifest is not None:
                digest = records_hash(rows)
            else:
                digest = None
                for _ in rows:
                    pass
            result.rows = counts["records"] if records else handle.metadata.num_rows
    except SchemaError as error:
        result.problem = str(error).removeprefix(source + ": ").removeprefix(source + " ")
        return result
    except (OSError, pa.ArrowException) as error:  # truncated, not parquet, unreadable
        result.problem = f"not a readable parquet file: {error}"
        return result
    if manifest is not None:
        result.manifest = True
        videos = sorted(seen_videos)
        found = {"records": counts["records"], "ok": counts["ok"], "errors": counts["errors"], "videos": len(videos)}
        wrong = [f"{name} {found[name]} (manifest says {getattr(manifest, name)})"
                 for name in found if found[name] != getattr(manifest, name)]
        if manifest.video_ids and set(videos) != set(manifest.video_ids):
            extra, missing = sorted(set(videos) - set(manifest.video_ids)), sorted(set(manifest.video_ids) - set(videos))
            if extra:
                wrong.append(f"videos not in the manifest {extra[:3]}")
            if missing and manifest.videos == len(manifest.video_ids):  # the manifest says each has records
                wrong.append(f"manifest videos without records {missing[:3]}")
        if digest != manifest.content_hash:
            wrong.append(f"content hash {digest[:12]}… differs from the manifest's {manifest.content_hash[:12]}…")
        if wrong:
            result.problem = "does not match its manifest: " + "; ".join(wrong)
    return result


def _check_one(item: tuple[Path, bool, str]) -> FileCheck:
    from vidthinker.schema import TABLE_MODELS

    path, in_run, table = item
    return check_file(path, TABLE_MODELS[table], in_run=in_run)


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def validate_paths(paths: Sequence[Path], model, *, on_file=None, jobs: int = 1) -> ValidationReport:
    """Check every parquet input (files, shard folders, run folders); `on_file(check)` after each, in
    input order. `jobs` > 1 checks files in that many processes (each holds one batch at a time)."""
    files, skipped, orphans = expand_inputs(paths)
    report = ValidationReport(table=model.__name__, skipped=skipped)
    if not files and not orphans:
        raise SchemaError(f"{', '.join(map(str, paths))}: no parquet file to check"
                          + (" (manifests are not inputs: give the shard or its folder)" if skipped else ""))
    for orphan in orphans:
        check = FileCheck(path=orphan, problem="manifest without its parquet shard")
        report.files.append(check)
        if on_file:
            on_file(check)
    if jobs > 1 and len(files) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(jobs, len(files))) as pool:
            checks = pool.map(_check_one, [(path, in_run, model.__name__) for path, in_run in files])
            for check in checks:
                report.files.append(check)
                if on_file:
                    on_file(check)
        return report
    for path, in_run in files:
        check = check_file(path, model, in_run=in_run)
        report.files.append(check)
        if on_file:
            on_file(check)
    return report


def iter_problems(report: ValidationReport) -> Iterable[str]:
    for check in report.bad:
        yield f"{check.path}: {check.problem}"
