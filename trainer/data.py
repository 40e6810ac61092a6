"""Training data for the selector: records → frames on the 1-fps grid → labels, loss, cached features.

(Over 500 lines: the one path from record shards to the tensors a training step reads.)

- Records come from parquet shards of `VideoITGRecord` (records with an `error` are skipped) or from
  VideoITG-40K JSON (`[{id, video, question, answer, frame_num, clip_num, motion, existence}, ...]`).
- A video's T frames are its 1-fps grid ids (all when n_grid <= cap, else `uniform_indices(n_grid, cap)`);
  label 1 where the grid id is in the record's `frame_num`.
- Loss: BCE with logits, pos_weight = min(cap, sqrt(neg/pos)) per sample (cap 5 in the paper).
- Frozen-encoder features are computed once per video and cached in memory (LRU by bytes) and on disk,
  keyed by (video content hash, encoder id, frame ids, image size, feature grid); every question about
  the video reuses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidthinker.io import atomic_write_bytes
from vidthinker.video import VideoInfo, decode_frames, grid_size, grid_to_frame_index, probe, uniform_indices

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- records → samples


@dataclass(frozen=True, slots=True)
class Sample:
    sample_id: str
    video: str  # resolved path
    question: str
    frame_num: tuple[int, ...]  # relevant 1-fps grid ids
    source: str = ""


@dataclass
class LoadReport:
    files: list[str] = field(default_factory=list)
    records: int = 0
    skipped_error: int = 0
    skipped_missing_video: int = 0
    missing_videos: list[str] = field(default_factory=list)  # resolved paths, sorted
    videos: int = 0  # distinct videos of the good records
    index_hits: int = 0  # shard indexes read from the cache (the rest were built from the shards)


class MissingVideosError(FileNotFoundError):
    """Too many of the records' videos are not on disk (checked before anything else is loaded)."""


# The training index of a record shard: what a sample needs, read with a column projection (no record is
# validated as a whole: full validation is `vidthinker validate`'s job), and cached next to the shards.
INDEX_VERSION = "2"
INDEX_DIR = "_train_index"  # hidden from every shard listing (leading underscore)
INDEX_COLUMNS = ("video_id", "qa_id", "video", "question", "frame_num", "error")
_INDEX_SCHEMA = None


def _index_schema():
    import pyarrow as pa

    global _INDEX_SCHEMA
    if _INDEX_SCHEMA is None:
        _INDEX_SCHEMA = pa.schema([("sample_id", pa.string()), ("video", pa.string()), ("question", pa.string()),
                                   ("frame_num", pa.list_(pa.int64()))])
    return _INDEX_SCHEMA


def source_files(source: str | Path) -> list[Path]:
    """Record files under a folder (parquet shards, or VideoITG JSON when there are none) or one file."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such shard folder or record file")
    visible = lambda p: not any(part.startswith((".", "_")) for part in p.relative_to(source).parts)
    files = sorted(p for p in source.rglob("*.parquet") if visible(p))
    if not files:
        files = sorted(p for p in source.rglob("*.json") if visible(p) and not p.name.endswith(".manifest.json"))
    if not files:
        raise FileNotFoundError(f"{source}: no parquet shards (or VideoITG JSON) found")
    return files


_hash_lock = threading.Lock()
_hash_memo: dict[tuple[str, int, int], str] = {}


def content_hash(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes (memoised per path, size and mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        if key in _hash_memo:
            return _hash_memo[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _hash_lock:
        _hash_memo[key] = value
    return value


def _shard_content_key(path: Path) -> str:
    """What identifies a record file's content: its shard manifest's content hash (`vidthinker.shards`,
    read through `read_shard_manifest`) when it has one, else a hash of the file's bytes."""
    if path.suffix.lower() == ".parquet":
        from vidthinker.shards import read_shard_manifest

        manifest = read_shard_manifest(path)
        if manifest is not None and manifest.content_hash:
            return "manifest:" + manifest.content_hash
    return "file:" + content_hash(path)


def data_version(source: str | Path) -> str:
    """Hash of the record files (names relative to the source + content): the trained-on data version.

    A shard's content is its manifest's content hash (no file is read again); files without a manifest
    (VideoITG JSON, bare parquet) are hashed."""
    source = Path(source)
    digest = hashlib.sha256()
    base = source if source.is_dir() else source.parent
    for path in source_files(source):
        digest.update(str(path.relative_to(base)).encode())
        digest.update(_shard_content_key(path).encode())
    return "sha256:" + digest.hexdigest()[:32]


def _resolve_video(video: str, candidates: Sequence[Path]) -> str:
    if "://" in video:
        video = video.split("://", 1)[1] if video.startswith("file://") else video
    if os.path.isabs(video):
        return video
    # plain string paths (abspath, not Path.resolve): one stat per candidate, no symlink walk
    for base in candidates:
        joined = os.path.abspath(os.path.join(base, video))
        if os.path.exists(joined):
            return joined
    return os.path.abspath(os.path.join(candidates[0], video)) if candidates else video


def _index_path(path: Path, key: str) -> Path:
    digest = hashlib.sha256(f"{INDEX_VERSION}|{key}".encode()).hexdigest()[:20]
    return path.parent / INDEX_DIR / f"{path.stem}.{digest}.parquet"


def _build_index(path: Path):
    """(index table of the shard's good records, records read, records with an error)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as error:
        raise ValueError(f"{path}: not a readable parquet file: {error}") from None
    with handle:
        names = set(handle.schema_arrow.names)
        missing = [c for c in INDEX_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{path}: not a record shard: no column(s) {missing}")
        pieces, records, errors = [], 0, 0
        for batch in handle.iter_batches(batch_size=65_536, columns=list(INDEX_COLUMNS)):
            records += batch.num_rows
            good = batch.filter(pc.is_null(batch.column("error")))
            errors += batch.num_rows - good.num_rows
            if not good.num_rows:
                continue
            frames = pa.array([sorted(set(f or ())) for f in good.column("frame_num").to_pylist()], pa.list_(pa.int64()))
            # validate what training uses: ids, video and question present, frame ids >= 0
            for name in ("video_id", "qa_id", "video", "question"):
                column = good.column(name)
                if column.null_count or pc.any(pc.equal(pc.utf8_length(column), 0)).as_py():
                    row = pc.index(pc.or_kleene(pc.is_null(column), pc.equal(pc.utf8_length(column), 0)), True).as_py()
                    raise ValueError(f"{path}: good record {row} of a batch has an empty {name!r}")
            flat = pc.list_flatten(frames)
            if len(flat) and pc.min(flat).as_py() < 0:
                raise ValueError(f"{path}: a record has a negative frame id in frame_num")
            ids = pc.binary_join_element_wise(good.column("video_id"), good.column("qa_id"), "/")
            pieces.append(pa.Table.from_arrays([ids, good.column("video"), good.column("question"), frames],
                                               schema=_index_schema()))
    table = pa.concat_tables(pieces) if pieces else _index_schema().empty_table()
    return table, records, errors


def _shard_index(path: Path, report: LoadReport):
    """The shard's index table from the cache when its content key matches, else built (and cached)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = _shard_content_key(path)
    cached = _index_path(path, key)
    if cached.is_file():
        try:
            with pq.ParquetFile(cached) as handle:
                table = handle.read()
            meta = table.schema.metadata or {}
            report.records += int(meta[b"records"])
            report.skipped_error += int(meta[b"errors"])
            report.index_hits += 1
            return table
        except (OSError, KeyError, ValueError, pa.ArrowException):
            pass  # rebuilt below
    table, records, errors = _build_index(path)
    report.records += records
    report.skipped_error += errors
    table = table.replace_schema_metadata({"records": str(records), "errors": str(errors), "key": key})
    try:  # the cache is an optimisation: a read-only shard folder just rebuilds every time
        cached.parent.mkdir(exist_ok=True)
        for old in cached.parent.glob(f"{path.stem}.*.parquet"):
            old.unlink(missing_ok=True)
        # vidthinker.io's temporary names are unique (mkstemp), so DDP ranks building the same index at
        # once never write into one temporary file; the last move wins with a whole file.
        atomic_write_bytes(cached, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    except OSError as error:
        log.debug("training index of %s not cached: %s", path, error)
    return table


def _parquet_samples(path: Path, report: LoadReport) -> list[tuple[str, str, str, tuple[int, ...], str]]:
    table = _shard_index(path, report)
    frames = list(map(tuple, table.column("frame_num").to_pylist()))  # sorted and distinct in the index
    return list(zip(table.column("sample_id").to_pylist(), table.column("video").to_pylist(),
                    table.column("question").to_pylist(), frames, [path.name] * table.num_rows))


def _json_samples(path: Path, report: LoadReport) -> list[tuple[str, str, str, tuple[int, ...], str]]:
    items = json.loads(path.read_text())
    if isinstance(items, dict):
        items = items.get("data") or items.get("records") or []
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of VideoITG records")
    seen: dict[str, int] = {}
    out = []
    for index, item in enumerate(items):
        missing = [k for k in ("id", "video", "question") if k not in item]
        if missing:
            raise ValueError(f"{path} item {index}: missing {missing}")
        report.records += 1
        if item.get("error"):
            report.skipped_error += 1
            continue
        rid = str(item["id"])
        occurrence = seen.get(rid, 0)
        seen[rid] = occurrence + 1  # released ids repeat across a video's questions
        frames = tuple(sorted({int(f) for f in (item.get("frame_num") or [])}))
        out.append((f"{rid}-{occurrence}" if occurrence else rid, str(item["video"]), str(item["question"]), frames,
                    path.name))
    return out


def _check_videos(raw: dict[tuple[str, int], None], bases: Sequence[Sequence[Path]], threads: int = 32
                  ) -> dict[tuple[str, int], tuple[str, bool]]:
    """Resolve each distinct (video, base folders) once and stat it, in a thread pool (a stat per video;
    on a network filesystem the round trips overlap)."""
    from concurrent.futures import ThreadPoolExecutor

    def chunk(items: list[tuple[str, int]]) -> list[tuple[str, bool]]:
        out = []
        for video, index in items:
            resolved = _resolve_video(video, bases[index])
            out.append((resolved, os.path.exists(resolved)))
        return out

    keys = list(raw)
    size = max(1, min(512, -(-len(keys) // (4 * threads))))  # a few chunks per thread, not a task per video
    chunks = [keys[i:i + size] for i in range(0, len(keys), size)]
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(chunks)))) as pool:
        return dict(zip(keys, (pair for part in pool.map(chunk, chunks) for pair in part)))


MISSING_EXAMPLES = 5


def load_samples(
    source: str | Path,
    video_root: str | Path | None = None,
    report: LoadReport | None = None,
    require_video: bool = True,
    max_missing_share: float | None = None,
) -> list[Sample]:
    """All good records of a shard folder / parquet file / VideoITG JSON as `Sample`s.

    Parquet shards are read through their training index (video, question, frames; built from a column
    projection and cached in `<shard folder>/_train_index/`, keyed on the shard manifest's content hash),
    so a start after the first reads no shard. Videos are checked before samples are made: a stat per
    distinct video in a thread pool. With `require_video`, samples whose video is missing are skipped and
    reported; when more than `max_missing_share` of the videos are missing (None: no limit) nothing more
    is loaded: `MissingVideosError` with examples and the `--video-root` hint.
    """
    report = report if report is not None else LoadReport()
    source = Path(source)
    rows: list[tuple[str, str, str, tuple[int, ...], str]] = []
    bases: list[list[Path]] = []  # per file: the folders its relative video paths may be under
    file_of: list[int] = []
    for path in source_files(source):
        report.files.append(str(path))
        bases.append(([Path(video_root)] if video_root else []) + [path.parent, source if source.is_dir() else source.parent])
        part = _parquet_samples(path, report) if path.suffix.lower() == ".parquet" else _json_samples(path, report)
        rows += part
        file_of += [len(bases) - 1] * len(part)
    checked = _check_videos(dict.fromkeys(zip((r[1] for r in rows), file_of)), bases)
    missing = sorted({resolved for resolved, exists in checked.values() if not exists})
    report.videos = len({resolved for resolved, _ in checked.values()})
    report.missing_videos = missing
    if missing and require_video:
        hint = ("pass --video-root (train.video_root) with the folder the records' relative video paths are under"
                if not video_root else f"check --video-root {video_root}")
        examples = ", ".join(missing[:MISSING_EXAMPLES]) + (" ..." if len(missing) > MISSING_EXAMPLES else "")
        message = (f"{source}: {len(missing)} of {report.videos} videos of the records are missing, e.g. {examples}; "
                   f"{hint}")
        if max_missing_share is not None and len(missing) > max_missing_share * report.videos:
            raise MissingVideosError(message + f" (more than {max_missing_share:.0%} missing: stopping before "
                                     "loading anything else)")
        log.warning("%s; their samples are skipped", message)
    samples: list[Sample] = []
    for (sample_id, video, question, frames, name), index in zip(rows, file_of):
        resolved, exists = checked[(video, index)]
        if require_video and not exists:
            report.skipped_missing_video += 1
            continue
        samples.append(Sample(sample_id, resolved, question, frames, name))
    return samples


# --------------------------------------------------------------------------- frames and labels


@dataclass(frozen=True)
class FramePlan:
    """Which frames of a video the selector sees: grid ids and the original video frames they are."""

    video: str
    fps: float
    num_frames: int
    n_grid: int
    grid_ids: tuple[int, ...]
    video_frame_ids: tuple[int, ...]
    info: VideoInfo | None = field(default=None, compare=False, repr=False)  # what probe read


_plan_lock = threading.Lock()
_plan_memo: dict[tuple[str, int, float], FramePlan] = {}


def frame_plan(video: str | Path, cap: int = 512, grid_fps: float = 1.0) -> FramePlan:
    key = (str(video), int(cap), float(grid_fps))
    with _plan_lock:
        if key in _plan_memo:
            return _plan_memo[key]
    info = probe(str(video))
    n_grid = grid_size(info, grid_fps)
    if n_grid < 1:
        raise ValueError(f"{video}: no frames on the {grid_fps} fps grid")
    grid_ids = uniform_indices(n_grid, cap)  # all of them when n_grid <= cap
    frames = grid_to_frame_index(info, grid_ids, grid_fps)
    plan = FramePlan(str(video), info.fps, info.num_frames, n_grid, tuple(grid_ids), tuple(frames), info)
    with _plan_lock:
        _plan_memo[key] = plan
    return plan


def make_labels(grid_ids: Sequence[int], frame_num: Iterable[int]) -> np.ndarray:
    relevant = set(int(f) for f in frame_num)
    return np.array([1.0 if int(g) in relevant else 0.0 for g in grid_ids], dtype=np.float32)


def pos_weight(labels: np.ndarray | torch.Tensor, cap: float = 5.0) -> float:
    """min(cap, sqrt(neg/pos)). Degenerate cases: no positives → 1 (unused); no negatives → 1
    (sqrt(0) would zero the loss of an all-positive sample)."""
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    pos = float((labels > 0.5).sum())
    neg = float(labels.size - pos)
    if pos == 0 or neg == 0:
        return 1.0
    return min(float(cap), math.sqrt(neg / pos))


def selector_loss(
    logits: torch.Tensor, labels: torch.Tensor, frame_mask: torch.Tensor, cap: float = 5.0
) -> torch.Tensor:
    """Mean over samples of the per-sample mean weighted BCE over that sample's frames."""
    losses = []
    for i in range(logits.shape[0]):
        valid = frame_mask[i]
        y = labels[i][valid].float()
        pw = torch.tensor(pos_weight(y, cap), dtype=torch.float32, device=logits.device)
        losses.append(F.binary_cross_entropy_with_logits(logits[i][valid].float(), y, pos_weight=pw))
    return torch.stack(losses).mean()


# --------------------------------------------------------------------------- feature cache


@dataclass
class CacheStats:
    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    compute_s: float = 0.0
    load_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class FeatureCache:
    """Per-video frozen-encoder features: an in-memory LRU (bounded in bytes) over an on-disk store."""

    def __init__(self, cache_dir: str | Path | None, memory_bytes: int = 2 << 30) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.memory_bytes = int(memory_bytes)
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()
        self.stats = CacheStats()

    @staticmethod
    def key(video: str | Path, encoder_id: str, frame_ids: Sequence[int], image_size: int, grid: int) -> str:
        body = json.dumps(
            {
                "video": content_hash(video),
                "encoder": encoder_id,
                "frames": [int(f) for f in frame_ids],
                "size": [int(image_size), int(grid)],
            },
            separators=(",", ":"),
        )
        return hashlib.sha256(body.encode()).hexdigest()

    def _path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.safetensors" if self.cache_dir else None

    def _remember(self, key: str, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.memory_bytes:
            return
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return
            self._memory[key] = value
            self._used += size
            while self._used > self.memory_bytes and self._memory:
                _, old = self._memory.popitem(last=False)
                self._used -= old.numel() * old.element_size()

    def get(self, key: str) -> torch.Tensor | None:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.stats.memory_hits += 1
                return self._memory[key]
        path = self._path(key)
        if path is not None and path.is_file():
            from safetensors.torch import load_file

            start = time.perf_counter()
            value = load_file(str(path))["features"]
            self.stats.load_s += time.perf_counter() - start
            self.stats.disk_hits += 1
            self._remember(key, value)
            return value
        return None

    def put(self, key: str, value: torch.Tensor) -> None:
        value = value.contiguous()
        path = self._path(key)
        if path is not None:
            from safetensors.torch import save_file

            # atomic, with a unique temporary name per call (mkstemp): concurrent writers (DDP ranks,
            # prefetch threads) never share a temporary file or expose half a file
            atomic_write_bytes(path, lambda tmp: save_file({"features": value}, str(tmp)))
        self._remember(key, value)

    def get_or_compute(self, key: str, compute) -> torch.Tensor:
        value = self.get(key)
        if value is not None:
            return value
        start = time.perf_counter()
        value = compute()
        self.stats.compute_s += time.perf_counter() - start
        self.stats.misses += 1
        self.put(key, value)
        return value


class VideoFeatures:
    """Features of a video's planned frames from a frozen encoder, through a `FeatureCache`."""

    def __init__(
        self,
        model,
        cache: FeatureCache | None = None,
        cap: int = 512,
        grid_fps: float = 1.0,
        encode_batch_size: int = 32,
        isolate: bool = True,
    ) -> None:
        self.isolate = isolate
        self.model = model  # FrameSelector (uses .vision, .feature_grid, .encoder_id(), .encode_frames)
        self.cache = cache if cache is not None else FeatureCache(None)
        self.cap = int(cap)
        self.grid_fps = float(grid_fps)
        self.encode_batch_size = encode_batch_size
        self._encoder_id: str | None = None

    @property
    def encoder_id(self) -> str:
        if self._encoder_id is None:
            self._encoder_id = self.model.encoder_id()
        return self._encoder_id

    def plan(self, video: str) -> FramePlan:
        return frame_plan(video, self.cap, self.grid_fps)

    def key(self, video: str, plan: FramePlan | None = None) -> str:
        plan = plan or self.plan(video)
        return FeatureCache.key(
            video,
            self.encoder_id,
            plan.video_frame_ids,
            self.model.vision.image_size,
            self.model.feature_grid,
        )

    def compute(
        self, video: str, plan: FramePlan | None = None, frames: np.ndarray | None = None
    ) -> torch.Tensor:
        plan = plan or self.plan(video)
        if frames is None:
            frames = decode_for(self.model, video, plan.video_frame_ids, info=plan.info, isolate=self.isolate)
        return self.model.encode_frames(frames, batch_size=self.encode_batch_size)

    def get(self, video: str, frames: np.ndarray | None = None) -> torch.Tensor:
        plan = self.plan(video)
        return self.cache.get_or_compute(self.key(video, plan), lambda: self.compute(video, plan, frames))


def decode_for(
    model, video: str, frame_ids: Sequence[int], *, info: VideoInfo | None = None, isolate: bool = True
) -> np.ndarray:
    """Decode frames at a size just above the encoder's input (cheap resize later, no upscaling loss)."""
    return decode_frames(
        str(video), list(frame_ids), max_side=max(2 * model.vision.image_size, 64), isolate=isolate, info=info
    )


# --------------------------------------------------------------------------- examples


@dataclass
class Example:
    sample: Sample
    plan: FramePlan
    input_ids: torch.Tensor
    labels: torch.Tensor  # (T,) float32


def build_examples(
    samples: Sequence[Sample], model, cap: int, grid_fps: float = 1.0, failures: dict[str, str] | None = None
) -> list[Example]:
    """Samples → examples; a video that cannot be probed is skipped (and noted in `failures`)."""
    examples = []
    failures = failures if failures is not None else {}
    for sample in samples:
        if sample.video in failures:
            continue
        try:
            plan = frame_plan(sample.video, cap, grid_fps)
        except Exception as error:  # noqa: BLE001 - one bad video must not stop training
            failures[sample.video] = f"{type(error).__name__}: {error}"
            log.warning("skipping %s: %s", sample.video, failures[sample.video])
            continue
        labels = torch.from_numpy(make_labels(plan.grid_ids, sample.frame_num))
        examples.append(Example(sample, plan, model.encode_instruction(sample.question), labels))
    return examples


def group_by_video(samples: Iterable[Sample]) -> OrderedDict[str, list[Sample]]:
    groups: OrderedDict[str, list[Sample]] = OrderedDict()
    for sample in samples:
        groups.setdefault(sample.video, []).append(sample)
    return groups
