"""Human review of a run's records: the reviews table, the sample a reviewer is shown, and the figures.

Reviews are data, kept next to the run and never edited in place:

    <run>/reviews/<UTC time>-<reviewer>-<random>.json   one `Review` (one JSON object, written atomically)

A reviewer who changes their mind writes a new review; the newest review of a (record, reviewer) wins.
Every review carries the record's content hash (`record_hash`: the record's output fields — `video,
question, answer, frame_num, clip_num, instruction_type` — canonically serialised, like
`shards.records_hash` does for whole records). When a later rerun changes what the record says, the
hash differs and the review is *outdated*: shown as such, and left out of the figures. A review of a
record that is no longer in the run (or now failed) is *gone*.

Sampling (`run_index` + `draw_sample`) never reads a whole shard: one projection of the `id`,
`instruction_type` and `error` columns of every shard (pyarrow), a seeded random key per good record,
an allocation of the sample over instruction types (proportional, at least one per type when the
sample is large enough) and, inside a type, over shards (proportional, largest remainders, seeded
ties), the records with the smallest keys in each stratum; records the reviewer already reviewed (at
their current content) are not drawn. `fetch_records` then reads only the row group that holds each
chosen record.

Figures (`review_figures`), per run and per instruction type, over current reviews:

* frame precision: a record scores 1 for "right", 0.5 for "partly", 0 for "wrong"; several reviewers'
  scores of one record are averaged, so a record counts once. The figure is the mean score over
  reviewed records, with a Wilson 95% interval on (sum of scores, records) — for "partly" a
  half-success, which keeps the interval's width that of the record count;
* clip precision (right = 1, wrong = 0) and instruction-type accuracy, the same way;
* share reviewed: reviewed good records / good records (of the type);
* Cohen's kappa between reviewers, per verdict, on records reviewed by two or more reviewers (the
  first two reviewers of each record, by time); None when fewer than two such records or when the
  chance agreement is 1.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import math
import os
import re
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, ValidationError, field_validator

from vidthinker.config import load_section
from vidthinker.quality.runs import find_runs, fresh_run_quality, shard_folder, shard_paths
from vidthinker.schema import VideoITGRecord, arrow_schema, validate_row

REVIEWS_DIR = "reviews"
HASH_FIELDS = ("video", "question", "answer", "frame_num", "clip_num", "instruction_type")
FRAME_SCORES = {"right": 1.0, "partly": 0.5, "wrong": 0.0}
BINARY_SCORES = {"right": 1.0, "wrong": 0.0}
Z95 = 1.959963984540054
TYPES = ("semantic_only", "motion_only", "semantic_motion", "no_clues", "unknown")

FrameVerdict = Literal["right", "partly", "wrong"]
BinaryVerdict = Literal["right", "wrong"]
Status = Literal["current", "outdated", "gone"]


class ReviewError(ValueError):
    """A review or a review request is not valid (the message names the input and why)."""


# --------------------------------------------------------------------------- the reviews table


def record_hash(record: VideoITGRecord | Mapping) -> str:
    """Content hash of what a reviewer judges: the record's output fields, canonical JSON, sha256[:16]."""
    data = record.model_dump(mode="json") if isinstance(record, VideoITGRecord) else record
    doc = {name: data.get(name) for name in HASH_FIELDS}
    doc["frame_num"] = [int(v) for v in doc["frame_num"] or []]
    doc["clip_num"] = [int(v) for v in doc["clip_num"] or []]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


class Review(BaseModel):
    """One reviewer's verdicts on one record at one content hash."""

    review_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    reviewer: str
    reviewed_at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    record_id: str
    record_hash: str
    instruction_type: str | None = Field(None, description="the record's type when reviewed")
    shard: str = ""
    frames: FrameVerdict | None = None
    wrong_frames: list[int] = Field(default_factory=list, description="selected frames marked wrong")
    missing_frames: list[int] = Field(default_factory=list, description="frames not selected but marked as needed")
    clips: BinaryVerdict | None = None
    type_ok: bool | None = None
    note: str = ""

    @field_validator("reviewer")
    @classmethod
    def _reviewer(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"[\w.@+-]{1,64}", value):
            raise ValueError(f"reviewer {value!r}: use 1-64 letters, digits or . _ @ + -")
        return value


def reviews_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / REVIEWS_DIR


def default_reviewer() -> str:
    """The setting review.reviewer (VIDTHINKER_REVIEW__REVIEWER), else the login name, made a valid reviewer name."""
    configured = load_section("review").reviewer
    try:
        return re.sub(r"[^\w.@+-]", "_", configured or getpass.getuser())[:64] or "reviewer"
    except Exception:  # noqa: BLE001 - no login name (containers)
        return "reviewer"


def append_review(run_dir: str | Path, review: Review) -> Path:
    """Add one review to the run's table (a new file, written atomically; existing files are never touched)."""
    if not review.frames and not review.clips and review.type_ok is None:
        raise ReviewError(f"review of {review.record_id}: give at least one verdict (frames, clips or type)")
    folder = reviews_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = review.reviewed_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}-{review.reviewer}-{review.review_id[:8]}.json"
    fd, tmp = tempfile.mkstemp(prefix=".review.", dir=folder)
    with os.fdopen(fd, "w") as handle:
        handle.write(review.model_dump_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.link(tmp, path)  # fails rather than replace an existing file
    os.unlink(tmp)
    return path


def _listing(run_dir: Path) -> tuple:
    folder = reviews_dir(run_dir)
    try:
        return tuple(sorted(p.name for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith(".")))
    except FileNotFoundError:
        return ()


_review_cache: OrderedDict[tuple, list[Review]] = OrderedDict()
_lock = threading.Lock()


def read_reviews(run_dir: str | Path) -> list[Review]:
    """Every review of the run, oldest first (files are immutable: cached by the folder's listing)."""
    run_dir = Path(run_dir)
    names = _listing(run_dir)
    key = (str(run_dir.resolve()), names)
    with _lock:
        if key in _review_cache:
            return _review_cache[key]
    out = []
    for name in names:
        path = reviews_dir(run_dir) / name
        try:
            out.append(Review.model_validate_json(path.read_text()))
        except ValidationError as error:
            raise ReviewError(f"{path}: not a review: {error.errors()[0]['msg']}") from None
    out.sort(key=lambda r: (r.reviewed_at, r.review_id))
    with _lock:
        _review_cache[key] = out
        while len(_review_cache) > 32:
            _review_cache.popitem(last=False)
    return out


# --------------------------------------------------------------------------- the run's index and the sample


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


def _signature(run_dir: Path) -> tuple:
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in shard_paths(run_dir))


def run_index(run_dir: str | Path) -> RunIndex:
    """Project `id, instruction_type, error` of every shard (nothing else is read); cached while the shards are unchanged."""
    run_dir = Path(run_dir)
    key = (str(run_dir.resolve()), _signature(run_dir))
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


def _row_group_rows(path: Path, rows: Sequence[int], columns: Sequence[str] | None) -> dict[int, dict]:
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


def fetch_records(items: Sequence[SampleItem]) -> list[VideoITGRecord]:
    """The chosen records, reading only the row group of each (in the sample's order)."""
    by_shard: dict[Path, list[SampleItem]] = {}
    for item in items:
        by_shard.setdefault(item.shard, []).append(item)
    found: dict[str, VideoITGRecord] = {}
    schema = arrow_schema(VideoITGRecord)
    for shard, group in by_shard.items():
        rows = _row_group_rows(shard, [i.row for i in group], None)
        for item in group:
            row = rows.get(item.row)
            if row is None or row.get("id") != item.record_id:
                raise ReviewError(f"{shard}: row {item.row} is no longer record {item.record_id!r} (the shard was rewritten); draw again")
            row = {k: v for k, v in row.items() if k in schema.names}
            found[item.record_id] = validate_row(VideoITGRecord, row, source=f"{shard} record {item.record_id}")
    return [found[i.record_id] for i in items]


def current_hashes(run_dir: str | Path, ids: Iterable[str], index: RunIndex | None = None) -> dict[str, str]:
    """Content hashes of the good records among `ids` as the run holds them now (ids not found are left out)."""
    index = index or run_index(run_dir)
    where = index.locate(ids)
    by_shard: dict[int, list[tuple[str, int]]] = {}
    for record_id, h in where.items():
        by_shard.setdefault(int(index.shard_no[h]), []).append((record_id, int(index.row_no[h])))
    out = {}
    for s, pairs in by_shard.items():
        rows = _row_group_rows(index.shards[s], [r for _, r in pairs], HASH_FIELDS)
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


# --------------------------------------------------------------------------- figures


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (successes may be fractional); None when n == 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z * z / (4 * n * n))) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def cohen_kappa(pairs: Sequence[tuple[object, object]]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items; None for no items or chance agreement 1."""
    if not pairs:
        return None
    n = len(pairs)
    labels = sorted({a for a, _ in pairs} | {b for _, b in pairs}, key=str)
    observed = sum(1 for a, b in pairs if a == b) / n
    chance = sum((sum(1 for a, _ in pairs if a == k) / n) * (sum(1 for _, b in pairs if b == k) / n) for k in labels)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


class Proportion(BaseModel):
    n: int = 0
    score: float = 0.0
    value: float | None = None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, scores: Sequence[float]) -> Proportion:
        n, total = len(scores), float(sum(scores))
        interval = wilson(total, n)
        return cls(n=n, score=total, value=total / n if n else None,
                   low=interval[0] if interval else None, high=interval[1] if interval else None)

    def text(self) -> str:
        if not self.n:
            return "–"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


class GroupReview(BaseModel):
    records: int = Field(0, description="good records in the run (of the type)")
    reviewed: int = Field(0, description="of them, with a current review")
    share_reviewed: float = 0.0
    frames: Proportion = Field(default_factory=Proportion)
    clips: Proportion = Field(default_factory=Proportion)
    type_accuracy: Proportion = Field(default_factory=Proportion)


class RunReview(BaseModel):
    run: str
    run_dir: str
    reviews: int = 0
    current: int = 0
    outdated: int = 0
    gone: int = 0
    reviewers: list[str] = Field(default_factory=list)
    groups: dict[str, GroupReview] = Field(default_factory=dict, description="'all' and each instruction type")
    double_reviewed: int = 0
    kappa: dict[str, float | None] = Field(default_factory=dict, description="frames / clips / type")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


_figures_cache: OrderedDict[tuple, RunReview] = OrderedDict()


def review_figures(run_dir: str | Path, reviews: Sequence[Review] | None = None) -> RunReview:
    """Reviewed precision and agreement of a run from its reviews table (see the module docstring);
    remembered while the run's shards and reviews are unchanged."""
    run_dir = Path(run_dir)
    if reviews is None:
        key = (str(run_dir.resolve()), _signature(run_dir), _listing(run_dir))
        with _lock:
            if key in _figures_cache:
                return _figures_cache[key]
        figures = _review_figures(run_dir, read_reviews(run_dir))
        with _lock:
            _figures_cache[key] = figures
            while len(_figures_cache) > 32:
                _figures_cache.popitem(last=False)
        return figures
    return _review_figures(run_dir, list(reviews))


def _review_figures(run_dir: Path, reviews: list[Review]) -> RunReview:
    index = run_index(run_dir)
    hashes = current_hashes(run_dir, {r.record_id for r in reviews}, index)
    status = review_status(reviews, hashes)
    latest: dict[tuple[str, str], Review] = {}
    for review, state in zip(reviews, status):
        if state == "current":
            latest[(review.record_id, review.reviewer)] = review  # oldest first: the newest stays
    by_record: dict[str, list[Review]] = {}
    for review in sorted(latest.values(), key=lambda r: (r.reviewed_at, r.review_id)):
        by_record.setdefault(review.record_id, []).append(review)
    kinds = {i: str(index.types[h]) for i, h in index.locate(by_record).items()}
    counts = index.type_counts()
    out = RunReview(run=run_dir.name, run_dir=str(run_dir), reviews=len(reviews),
                    current=status.count("current"), outdated=status.count("outdated"), gone=status.count("gone"),
                    reviewers=sorted({r.reviewer for r in reviews}))
    for group in ["all"] + [t for t in TYPES if t in counts]:
        members = [i for i in by_record if group == "all" or kinds.get(i) == group]
        frames, clips, types = [], [], []
        for record_id in members:
            f = _mean([FRAME_SCORES[r.frames] for r in by_record[record_id] if r.frames])
            c = _mean([BINARY_SCORES[r.clips] for r in by_record[record_id] if r.clips])
            t = _mean([1.0 if r.type_ok else 0.0 for r in by_record[record_id] if r.type_ok is not None])
            frames += [f] if f is not None else []
            clips += [c] if c is not None else []
            types += [t] if t is not None else []
        total = len(index) if group == "all" else counts.get(group, 0)
        out.groups[group] = GroupReview(records=total, reviewed=len(members), share_reviewed=len(members) / total if total else 0.0,
                                        frames=Proportion.of(frames), clips=Proportion.of(clips), type_accuracy=Proportion.of(types))
    doubles = [rs for rs in by_record.values() if len({r.reviewer for r in rs}) >= 2]
    out.double_reviewed = len(doubles)
    for name, get in (("frames", lambda r: r.frames), ("clips", lambda r: r.clips), ("type", lambda r: r.type_ok)):
        pairs = [(get(rs[0]), get(rs[1])) for rs in doubles if get(rs[0]) is not None and get(rs[1]) is not None]
        out.kappa[name] = cohen_kappa(pairs) if len(pairs) >= 2 else None
    return out


def review_trend(root: str | Path) -> list[RunReview]:
    """Reviewed figures of every run under `root` (oldest first) that has reviews."""
    return [review_figures(run) for run in find_runs(root) if _listing(run)]


def ground_truth_beside(run_dir: str | Path, figures: RunReview) -> list[dict]:
    """Rows of reviewed vs ground-truth figures per type, for runs on a synthetic set (else [])."""
    quality = fresh_run_quality(run_dir)
    if quality is None or not quality.agreement:
        return []
    rows = []
    for group, gt in quality.agreement.items():
        mine = figures.groups.get(group, GroupReview())
        rows.append({"type": group, "reviewed records": mine.reviewed,
                     "frame precision (reviewed)": mine.frames.value, "frame precision (GT)": gt.frame_precision,
                     "clip precision (reviewed)": mine.clips.value, "clip precision (GT)": gt.clip_precision,
                     "type accuracy (reviewed)": mine.type_accuracy.value, "type accuracy (GT)": gt.type_accuracy,
                     "GT records": gt.records})
    return rows


# --------------------------------------------------------------------------- publishing


def review_gate_failure(run_dir: str | Path, threshold: float | None) -> str | None:
    """Why a release of the run is refused: the Wilson 95% lower bound of its reviewed frame precision is
    under `threshold`, or nothing is reviewed (one line, naming the figure); None when it passes or the
    gate is off (`threshold` None: nothing is read)."""
    if threshold is None:
        return None
    figures = review_figures(run_dir)
    frames = figures.groups["all"].frames
    setting = f"publish.min_reviewed_frame_precision = {threshold:g}"
    if not frames.n:
        return (f"reviewed frame precision of {Path(run_dir).name}: no current review of the frames "
                f"({figures.outdated} outdated), so it cannot meet {setting}; review a sample in the dashboard")
    if frames.low < threshold:
        return (f"reviewed frame precision of {Path(run_dir).name}: Wilson 95% lower bound {frames.low:.3f} "
                f"({frames.value:.3f} over {frames.n} reviewed records) is under {setting}")
    return None


def card_section(run_dir: str | Path) -> str:
    """The dataset card's "Reviewed quality" section ('' when the run has no reviews)."""
    if not _listing(Path(run_dir)):
        return ""
    figures = review_figures(run_dir)
    rows = "\n".join(
        f"| {group} | {g.reviewed} of {g.records} ({100 * g.share_reviewed:.1f}%) | {g.frames.text()} | {g.clips.text()} | "
        f"{g.type_accuracy.text()} |" for group, g in figures.groups.items() if g.reviewed or group == "all")
    kappa = ", ".join(f"{k} {v:.2f}" for k, v in figures.kappa.items() if v is not None) or "not measured"
    return (
        "\n### Reviewed quality\n\n"
        f"Human review of a seeded, stratified sample ({figures.current} current reviews by {len(figures.reviewers)} "
        f"reviewer(s); {figures.outdated} reviews of records changed since are left out). Value [Wilson 95% interval] "
        "(n = reviewed records); frames: right = 1, partly = 0.5, wrong = 0.\n\n"
        "| instruction type | reviewed | frame precision | clip precision | type accuracy |\n"
        "| --- | --- | --- | --- | --- |\n"
        f"{rows}\n\n"
        f"Agreement between reviewers (Cohen's kappa, {figures.double_reviewed} records reviewed twice): {kappa}.\n"
    )


def shard_name(run_dir: str | Path, shard: Path) -> str:
    return shard.relative_to(shard_folder(Path(run_dir))).as_posix()
