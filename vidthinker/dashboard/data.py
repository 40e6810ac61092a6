"""What the dashboard reads: runs, their quality figures, pages of records and single records.

Everything goes through pyarrow datasets over a run's shard files with a filter and a column projection:
a page of the record browser decodes only the listing columns and stops after the page's rows; a single
record is fetched by id. No function here loads a whole run into Python objects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from vidthinker.quality import (
    RunQuality,
    compute_run_quality,
    drift_report,
    find_runs,
    fresh_run_quality,
    shard_paths,
)
from vidthinker.schema import VideoITGRecord, arrow_schema, validate_row

LIST_COLUMNS = ["id", "video_id", "qa_id", "question", "instruction_type", "error_stage", "error", "frame_num", "clip_num"]


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


def quality_of(run_dir: Path, earlier: Sequence[Path] = ()) -> RunQuality:
    """The stored figures when they describe the current shards, else computed (and stored). Drift is
    (re)computed against `earlier` when the stored report was made without that baseline."""
    stored = fresh_run_quality(run_dir)
    if stored is None:
        try:
            return compute_run_quality(run_dir, previous_runs=list(earlier))
        except OSError:  # a read-only run folder: compute without storing
            return compute_run_quality(run_dir, previous_runs=list(earlier), write=False)
    baseline = [q for q in (fresh_run_quality(p) or quality_of(p) for p in earlier) if q is not None]
    names = sorted(q.name for q in baseline if q.records)
    if baseline and (stored.drift is None or sorted(stored.drift.baseline_runs) != names):
        stored = stored.model_copy(update={"drift": drift_report(stored, baseline)})
    return stored


def _dataset(run_dir: Path) -> ds.Dataset:
    return ds.dataset([str(p) for p in shard_paths(run_dir)], format="parquet", schema=arrow_schema(VideoITGRecord))


@dataclass(frozen=True)
class RecordFilter:
    status: str = "all"  # all | ok | error
    instruction_type: str | None = None
    stage: str | None = None
    reason: str | None = None
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
        if self.stage:
            parts.append(pc.field("error_stage") == self.stage)
        if self.reason and self.reason not in ("other", "unknown"):
            parts.append(pc.starts_with(pc.field("error"), pattern=self.reason + ":"))
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


def record_page(run_dir: Path, flt: RecordFilter = RecordFilter(), offset: int = 0, limit: int = 50,
                columns: Sequence[str] = LIST_COLUMNS) -> Page:
    """Rows `offset .. offset+limit` of the records matching `flt`, listing columns only, plus the match count."""
    scanner = _dataset(run_dir).scanner(columns=list(columns), filter=flt.expression(), batch_size=1024)
    total = scanner.count_rows()
    batches, to_skip, taken = [], offset, 0
    for batch in scanner.to_batches():
        if to_skip >= batch.num_rows:
            to_skip -= batch.num_rows
            continue
        piece = batch.slice(to_skip, limit - taken)
        to_skip = 0
        batches.append(piece)
        taken += piece.num_rows
        if taken >= limit:
            break
    schema = scanner.projected_schema
    table = pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()
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


def get_record(run_dir: Path, record_id: str) -> VideoITGRecord | None:
    """One record by id (the dataset scan decodes only matching rows into Python)."""
    table = _dataset(run_dir).to_table(filter=pc.field("id") == record_id)
    if table.num_rows == 0:
        return None
    return validate_row(VideoITGRecord, table.slice(0, 1).to_pylist()[0], source=f"{run_dir} record {record_id}")


def first_record_id(run_dir: Path, flt: RecordFilter = RecordFilter()) -> str | None:
    page = record_page(run_dir, flt, 0, 1, columns=["id"])
    return page.table["id"][0].as_py() if page.table.num_rows else None


def distinct_values(run_dir: Path, column: str, flt: RecordFilter = RecordFilter()) -> list[str]:
    """Distinct values of one (small-cardinality) column, scanned column-wise."""
    seen: set[str] = set()
    for batch in _dataset(run_dir).scanner(columns=[column], filter=flt.expression()).to_batches():
        seen.update(v for v in pc.unique(batch.column(0)).to_pylist() if v is not None)
    return sorted(seen)


def fmt_time(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "?"
