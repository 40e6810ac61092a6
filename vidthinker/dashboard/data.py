"""What the dashboard reads: runs, their quality figures, pages of records and single records.

A click costs what one page costs, however large the run:

* row counts come from the shard manifests (`vidthinker.shards.read_shard_manifest`; the parquet footer
  when a shard has none), so an unfiltered page jumps straight to its shard and row group and reads
  only those rows' listing columns;
* a filtered page first needs each shard's match count: one scan of just the columns the filter names
  (pushed down to pyarrow), remembered per filter while the run is unchanged; then the page's shard is
  scanned alone;
* a record is looked up in the shard its video is in (the manifests' video ids), with the id filter
  pushed down;
* a free-text question search matches against the run's `question` column held in memory (about 33 MB
  at 474K records), read once per run state in a background thread that opening the run starts
  (`warm_search`); a search before it is ready waits for that read instead of scanning again.

Quality figures are never computed inside a page request: a page reads the stored `quality/run.json`
and, when it is missing or stale, starts `vidthinker quality` in a background process (`ensure_quality`)
and shows the figures once they are stored.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from vidthinker.quality.drift import drift_report
from vidthinker.quality.models import RunQuality
from vidthinker.quality.runs import find_runs, fresh_run_quality, shard_folder, shard_paths
from vidthinker.schema import VideoITGRecord, arrow_schema, validate_row
from vidthinker.shards import read_shard_manifest

LIST_COLUMNS = ["id", "video_id", "qa_id", "question", "instruction_type", "error_stage", "error_class", "error",
                "frame_num", "clip_num"]


@dataclass(frozen=True)
class RunRef:
    path: Path
    name: str

    @property
    def key(self) -> str:
        return self.path.name


def list_runs(root: str | Path) -> list[RunRef]:
    """Runs under `root` (or `root` itself), oldest first."""
    return [RunRef(path=p, name=p.name) for p in find_runs(root)]


def run_signature(run_dir: Path) -> tuple:
    """Changes whenever a shard is added, removed or rewritten (a cache key for the run's figures)."""
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in shard_paths(run_dir))


_jobs: dict[str, subprocess.Popen] = {}
_job_errors: dict[str, tuple[tuple, str]] = {}
_jobs_lock = threading.Lock()


def quality_command(run_dir: Path, previous: int = 5) -> list[str]:
    """The background job: `vidthinker quality --out RUN` in its own process (no GIL shared with the app)."""
    return [sys.executable, "-c", "from vidthinker.cli import app; app()", "quality", "--out", str(run_dir),
            "--previous", str(previous)]


def _reap(key: str, signature: tuple) -> str | None:
    """With _jobs_lock held: 'running', 'failed: …' (for this run state) or None."""
    job = _jobs.get(key)
    if job is not None:
        if job.poll() is None:
            return "running"
        del _jobs[key]
        if job.returncode != 0:
            job.stderr.seek(0)
            lines = job.stderr.read().decode(errors="replace").strip().splitlines()
            _job_errors[key] = (signature, lines[-1] if lines else f"exit {job.returncode}")
        job.stderr.close()
    if key in _job_errors:
        if _job_errors[key][0] == signature:
            return "failed: " + _job_errors[key][1]
        del _job_errors[key]  # the shards changed since: worth another try
    return None


def quality_job(run_dir: Path) -> str | None:
    """The background job of a run: 'running', 'failed: <its last error line>', or None."""
    with _jobs_lock:
        return _reap(str(Path(run_dir).resolve()), run_signature(Path(run_dir)))


def ensure_quality(run_dir: Path) -> str:
    """Start computing a run's figures in the background unless that is under way or has failed for the
    run's current shards; returns the job's state."""
    key = str(Path(run_dir).resolve())
    with _jobs_lock:
        state = _reap(key, run_signature(Path(run_dir)))
        if state is not None:
            return state
        log = tempfile.TemporaryFile()  # noqa: SIM115 - the job's stderr, read and closed when it is reaped
        _jobs[key] = subprocess.Popen(quality_command(Path(run_dir)), stdout=subprocess.DEVNULL, stderr=log)
        return "running"


def stored_quality(run_dir: Path, earlier: Sequence[Path] = ()) -> RunQuality | None:
    """The stored figures when they describe the current shards, else None (and a background job is started).
    Drift is recomputed (cheap: figures only) when the stored report was made without `earlier`'s figures."""
    stored = fresh_run_quality(run_dir)
    if stored is None:
        ensure_quality(run_dir)
        return None
    baseline = [q for q in (fresh_run_quality(p) for p in earlier) if q is not None]
    names = sorted(q.name for q in baseline if q.records)
    if baseline and (stored.drift is None or sorted(stored.drift.baseline_runs) != names):
        stored = stored.model_copy(update={"drift": drift_report(stored, baseline)})
    return stored


# --------------------------------------------------------------------------- shards and pages


@dataclass(frozen=True)
class ShardRows:
    path: Path
    rows: int
    video_ids: tuple[str, ...] = ()


_shard_cache: OrderedDict[tuple, list[ShardRows]] = OrderedDict()
_count_cache: OrderedDict[tuple, list[int]] = OrderedDict()
_cache_lock = threading.Lock()
CACHED_RUNS = 16
CACHED_COUNTS = 256


def _remember(cache: OrderedDict, key, value, limit: int):
    with _cache_lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > limit:
            cache.popitem(last=False)
    return value


class _QuestionColumn:
    """One run state's `question` column (one chunked array) and each shard's row span in it; filled by a
    background thread."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.questions: pa.ChunkedArray | None = None
        self.spans: dict[str, tuple[int, int]] = {}

    def fill(self, run_dir: Path) -> None:
        try:
            dataset, _ = run_dataset(run_dir)
            parts: dict[str, list[pa.Array]] = {}
            for tagged in dataset.scanner(columns=["question"]).scan_batches():
                parts.setdefault(tagged.fragment.path, []).append(tagged.record_batch.column(0))
            chunks, at = [], 0
            for path in dataset.files:  # a shard without rows has no batch: an empty span
                parts.setdefault(path, [])
            for path, arrays in parts.items():
                rows = sum(len(a) for a in arrays)
                self.spans[path] = (at, at + rows)
                chunks.extend(arrays)
                at += rows
            self.questions = pa.chunked_array(chunks, pa.string())
        except (OSError, pa.ArrowException):
            self.questions = None  # a shard changed under the read: searches fall back to a scan
        finally:
            self.ready.set()

    def counts(self, paths: Sequence[str], search: str) -> list[int] | None:
        """Rows of each shard whose question contains `search` (case-insensitive, as the filter's
        `match_substring`); None when a shard is not in the column."""
        if self.questions is None or any(p not in self.spans for p in paths):
            return None
        hits = pc.match_substring(self.questions, pattern=search, ignore_case=True)
        running = np.concatenate([[0], np.cumsum(hits.to_numpy(zero_copy_only=False), dtype=np.int64)])
        return [int(running[self.spans[p][1]] - running[self.spans[p][0]]) for p in paths]


_question_cache: OrderedDict[tuple, _QuestionColumn] = OrderedDict()
CACHED_SEARCH_RUNS = 2  # each holds a run's questions (~70 bytes a record)


def warm_search(run_dir: Path) -> None:
    """Start reading the run's questions in the background (a no-op when they are read or being read), so
    that the first free-text search is a match over memory; the dashboard calls it when a run is opened."""
    _question_column(Path(run_dir), wait=False)


def _question_column(run_dir: Path, *, wait: bool = True) -> _QuestionColumn | None:
    key = (str(run_dir), run_signature(run_dir))
    with _cache_lock:
        column = _question_cache.get(key)
        started = column is None
        if started:
            column = _question_cache[key] = _QuestionColumn()
            while len(_question_cache) > CACHED_SEARCH_RUNS:
                _question_cache.popitem(last=False)
        else:
            _question_cache.move_to_end(key)
    if started:
        threading.Thread(target=column.fill, args=(run_dir,), name="vidthinker-questions", daemon=True).start()
    if not wait:
        return None
    column.ready.wait()
    return column


def shard_rows(run_dir: Path) -> list[ShardRows]:
    """Each shard's row count and videos, from its manifest (the parquet footer when it has none); cached
    while the run's shard files are unchanged."""
    signature = (str(run_dir), run_signature(run_dir))
    with _cache_lock:
        if signature in _shard_cache:
            _shard_cache.move_to_end(signature)
            return _shard_cache[signature]
    out = []
    for path in shard_paths(run_dir):
        manifest = read_shard_manifest(path)
        if manifest is not None:
            out.append(ShardRows(path, manifest.records, tuple(manifest.video_ids)))
        else:
            out.append(ShardRows(path, pq.read_metadata(path).num_rows))
    return _remember(_shard_cache, signature, out, CACHED_RUNS)


_dataset_cache: OrderedDict[tuple, tuple[ds.Dataset, dict[str, ds.Fragment]]] = OrderedDict()


def run_dataset(run_dir: Path) -> tuple[ds.Dataset, dict[str, ds.Fragment]]:
    """One pyarrow dataset over the run's shards (and its fragments by path), kept while the run is
    unchanged: its fragments keep the shards' parquet footers once a scan has parsed them, so later scans
    (other filters, record lookups) read column data only."""
    key = (str(run_dir), run_signature(run_dir))
    with _cache_lock:
        if key in _dataset_cache:
            _dataset_cache.move_to_end(key)
            return _dataset_cache[key]
    dataset = ds.dataset([str(s.path) for s in shard_rows(run_dir)], format="parquet", schema=arrow_schema(VideoITGRecord))
    fragments = {f.path: f for f in dataset.get_fragments()}
    return _remember(_dataset_cache, key, (dataset, fragments), CACHED_RUNS)


def _fragment_table(run_dir: Path, path: Path, columns: Sequence[str] | None, expression: ds.Expression) -> pa.Table:
    """The rows of one shard matching `expression` (only `columns`; None: all)."""
    _, fragments = run_dataset(run_dir)
    fragment = fragments.get(str(path))
    schema = arrow_schema(VideoITGRecord)
    if fragment is None:  # not in the cached dataset (raced with a change): read the file directly
        return ds.dataset(str(path), format="parquet", schema=schema).to_table(columns=columns, filter=expression)
    return fragment.to_table(schema=schema, columns=columns, filter=expression)


def _dataset(run_dir: Path) -> ds.Dataset:
    return ds.dataset([str(p) for p in shard_paths(run_dir)], format="parquet", schema=arrow_schema(VideoITGRecord))


@dataclass(frozen=True)
class RecordFilter:
    status: str = "all"  # all | ok | error
    instruction_type: str | None = None
    stage: str | None = None
    reason: str | None = None
    error_class: str | None = None  # transient | permanent | unknown (null: shards written before error classes)
    search: str | None = None
    video_id: str | None = None

    def expression(self) -> ds.Expression | None:
        parts = []
        if self.status == "ok":
            parts.append(pc.field("error").is_null())
        elif self.status == "error":
            parts.append(pc.field("error").is_valid())
        if self.instruction_type:
            if self.instruction_type == "unknown":
                parts.append(pc.field("instruction_type").is_null())
            else:
                parts.append(pc.field("instruction_type") == self.instruction_type)
        if self.stage:  # "unknown" also holds the records that name no stage (vidthinker.figures.error_stage_name)
            parts.append(pc.field("error").is_valid() & (pc.field("error_stage").is_null() | (pc.field("error_stage") == "unknown"))
                         if self.stage == "unknown" else pc.field("error_stage") == self.stage)
        if self.reason and self.reason not in ("other", "unknown"):
            parts.append(pc.starts_with(pc.field("error"), pattern=self.reason + ":"))
        if self.error_class:
            parts.append(pc.field("error_class").is_null() if self.error_class == "unknown"
                         else pc.field("error_class") == self.error_class)
        if self.search:
            parts.append(pc.match_substring(pc.field("question"), pattern=self.search, ignore_case=True))
        if self.video_id:
            parts.append(pc.field("video_id") == self.video_id)
        if not parts:
            return None
        expression = parts[0]
        for part in parts[1:]:
            expression = expression & part
        return expression


@dataclass
class Page:
    table: pa.Table
    total: int
    offset: int
    limit: int


def _filter_columns(flt: RecordFilter) -> list[str]:
    """The columns a filter reads (the scan projects nothing else)."""
    names = []
    if flt.status != "all" or flt.reason or flt.stage == "unknown":
        names.append("error")
    if flt.instruction_type:
        names.append("instruction_type")
    if flt.stage:
        names.append("error_stage")
    if flt.error_class:
        names.append("error_class")
    if flt.search:
        names.append("question")
    if flt.video_id:
        names.append("video_id")
    return names or ["id"]


def _counts_from_figures(run_dir: Path, shards: list[ShardRows], flt: RecordFilter,
                         quality: RunQuality | None) -> list[int] | None:
    """Per-shard counts of a status filter (with a type for good records, or a stage for failed ones)
    from the run's stored per-shard figures, when they describe exactly these shards; else None."""
    if quality is None or flt.status == "all" or flt.reason or flt.error_class or flt.search or flt.video_id:
        return None
    if (flt.status == "ok" and flt.stage) or (flt.status == "error" and flt.instruction_type) or flt.stage == "unknown":
        return None
    refs = {ref.shard: ref for ref in quality.shards}
    base = shard_folder(Path(run_dir))
    counts = []
    for shard in shards:
        ref = refs.get(shard.path.relative_to(base).as_posix())
        if ref is None or ref.records != shard.rows:
            return None
        if flt.status == "ok":
            if flt.instruction_type:
                if ref.instruction_types is None:
                    return None
                counts.append(ref.instruction_types.get(flt.instruction_type, 0))
            else:
                counts.append(ref.records - ref.errors)
        elif flt.stage:
            if ref.errors_by_stage is None:
                return None
            counts.append(ref.errors_by_stage.get(flt.stage, 0))
        else:
            counts.append(ref.errors)
    return counts


def shard_counts(run_dir: Path, flt: RecordFilter = RecordFilter(),
                 quality: RunQuality | None = None) -> tuple[list[ShardRows], list[int]]:
    """The shards and how many rows of each match `flt`: manifests without a filter; a status filter (with
    a type for good records or a stage for failed ones) from `quality`'s per-shard figures when they are
    the current shards' (`fresh_run_quality`); otherwise a scan of the filter's columns only, remembered
    per run state and filter."""
    shards = shard_rows(run_dir)
    expression = flt.expression()
    if expression is None:
        return shards, [s.rows for s in shards]
    from_figures = _counts_from_figures(run_dir, shards, flt, quality)
    if from_figures is not None:
        return shards, from_figures
    key = (str(run_dir), run_signature(run_dir), flt)
    with _cache_lock:
        if key in _count_cache:
            return shards, _count_cache[key]
    if flt.search and flt == RecordFilter(search=flt.search):  # a question search alone: match in memory
        counts = _question_column(Path(run_dir)).counts([str(shard.path) for shard in shards], flt.search)
        if counts is not None:
            return shards, _remember(_count_cache, key, counts, CACHED_COUNTS)
    # one multi-threaded scan of the filter's columns over every shard, tallied by the fragment (file)
    dataset, _ = run_dataset(run_dir)
    found: dict[str, int] = {}
    for tagged in dataset.scanner(columns=_filter_columns(flt), filter=expression).scan_batches():
        found[tagged.fragment.path] = found.get(tagged.fragment.path, 0) + tagged.record_batch.num_rows
    counts = [found.get(str(shard.path), 0) for shard in shards]
    return shards, _remember(_count_cache, key, counts, CACHED_COUNTS)


def _read_rows(path: Path, start: int, stop: int, columns: Sequence[str]) -> pa.Table:
    """Rows start..stop of one shard: only the row groups that hold them, only `columns`."""
    with pq.ParquetFile(path) as handle:
        meta, groups, first, at = handle.metadata, [], None, 0
        for i in range(meta.num_row_groups):
            n = meta.row_group(i).num_rows
            if at + n > start and at < stop:
                groups.append(i)
                first = at if first is None else first
            at += n
        if not groups:
            return pa.schema([arrow_schema(VideoITGRecord).field(c) for c in columns]).empty_table()
        present = set(handle.schema_arrow.names)
        table = handle.read_row_groups(groups, columns=[c for c in columns if c in present])
    for name in columns:  # a column added after the shard was written (schema.ADDED_COLUMNS) reads as null
        if name not in table.column_names:
            field = arrow_schema(VideoITGRecord).field(name)
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    table = table.select(list(columns)).slice(start - first, stop - start)
    return table.cast(pa.schema([arrow_schema(VideoITGRecord).field(c) for c in columns]))


def record_page(run_dir: Path, flt: RecordFilter = RecordFilter(), offset: int = 0, limit: int = 50,
                columns: Sequence[str] = LIST_COLUMNS, quality: RunQuality | None = None) -> Page:
    """Rows `offset .. offset+limit` of the records matching `flt`, listing columns only, plus the match count.

    Jumps to the shard (and, unfiltered, the row groups) where the page starts, from per-shard counts."""
    shards, counts = shard_counts(run_dir, flt, quality)
    total = sum(counts)
    expression = flt.expression()
    schema = pa.schema([arrow_schema(VideoITGRecord).field(c) for c in columns])
    pieces, skip, want = [], offset, limit
    for shard, count in zip(shards, counts):
        if want <= 0:
            break
        if skip >= count:
            skip -= count
            continue
        take = min(count - skip, want)
        if expression is None:
            piece = _read_rows(shard.path, skip, skip + take, columns)
        else:
            table = _fragment_table(run_dir, shard.path, list(columns), expression)
            piece = table.slice(skip, take)
        pieces.append(piece.cast(schema))
        skip, want = 0, want - piece.num_rows
    table = pa.concat_tables(pieces) if pieces else schema.empty_table()
    return Page(table=table, total=total, offset=offset, limit=limit)


def page_frame(page: Page):
    """The page as a pandas frame for display (lists shown as counts and ids)."""
    table = page.table
    frame = table.drop_columns([c for c in ("frame_num", "clip_num") if c in table.column_names]).to_pandas()
    if "frame_num" in table.column_names:
        frame.insert(len(frame.columns), "frames", pc.list_value_length(table["frame_num"]).to_pandas())
        frame.insert(len(frame.columns), "frame_num", [", ".join(map(str, v)) for v in table["frame_num"].to_pylist()])
    if "clip_num" in table.column_names:
        frame.insert(len(frame.columns), "clip_num", [", ".join(map(str, v)) for v in table["clip_num"].to_pylist()])
    return frame


def _shards_of_record(run_dir: Path, record_id: str) -> list[Path]:
    """The shard that holds the video of a pipeline record id (`<video_id>/<qa_id>`), from the manifests;
    every shard when no manifest names it (imported records, shards without manifests)."""
    shards = shard_rows(run_dir)
    key = (str(run_dir), run_signature(run_dir), "videos")
    with _cache_lock:
        where = _count_cache.get(key)
    if where is None:
        where = {v: s.path for s in shards for v in s.video_ids}
        _remember(_count_cache, key, where, CACHED_COUNTS)
    parts = record_id.split("/")
    for cut in range(len(parts) - 1, 0, -1):
        path = where.get("/".join(parts[:cut]))
        if path is not None:
            return [path]
    return [s.path for s in shards]


def get_record(run_dir: Path, record_id: str) -> VideoITGRecord | None:
    """One record by id: the shard its video is in, with the id filter pushed down (only that row is
    decoded into Python); the other shards' `id` columns only when no manifest names the video."""
    for path in _shards_of_record(run_dir, record_id):
        table = _fragment_table(run_dir, path, None, pc.field("id") == record_id)
        if table.num_rows:
            return validate_row(VideoITGRecord, table.slice(0, 1).to_pylist()[0], source=f"{path} record {record_id}")
    return None


def distinct_values(run_dir: Path, column: str, flt: RecordFilter = RecordFilter()) -> list[str]:
    """Distinct values of one (small-cardinality) column, scanned column-wise."""
    seen: set[str] = set()
    for batch in _dataset(run_dir).scanner(columns=[column], filter=flt.expression()).to_batches():
        seen.update(v for v in pc.unique(batch.column(0)).to_pylist() if v is not None)
    return sorted(seen)


def fmt_time(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "?"
