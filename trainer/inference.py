"""Selector inference: score a video's frames for an instruction, pick Top-K, and batch whole manifests.

`Selector.score` samples frames on the 1-fps grid (all grid frames when there are at most `num_frames`,
else `uniform_indices(n_grid, num_frames)`; `sampling="uniform"` samples `num_frames` uniformly over all
original frames instead, as lmms-eval's VideoITG sampler does), scores them (sigmoid of the per-frame
logits) and returns ORIGINAL video frame indices: grid id k → frame floor(k * fps + 0.5).

`select_manifest` writes the two files lmms-eval consumers read:

    results.jsonl        {"doc_id", "video_path", "index": [frame ids by score desc], "logits": [2-dp scores]}
    frame_indices.jsonl  {"doc_id", "index": [Top-K frame ids ascending]}
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer import _video
from trainer.data import FeatureCache, FramePlan, decode_for, frame_plan
from trainer.model import FrameSelector

log = logging.getLogger(__name__)


def rank_frames(frame_ids: Sequence[int], scores: Sequence[float]) -> tuple[list[int], list[float]]:
    """Frames by score descending (ties: lower frame id first) and their scores."""
    ids = np.asarray(frame_ids, dtype=np.int64)
    sc = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((ids, -sc))
    return [int(i) for i in ids[order]], [float(s) for s in sc[order]]


def top_k(frame_ids: Sequence[int], scores: Sequence[float], k: int) -> list[int]:
    """The k best frames, sorted ascending (the order a Video-LLM reads them in)."""
    ranked, _ = rank_frames(frame_ids, scores)
    return sorted(ranked[: max(0, int(k))])


@dataclass
class ScoredFrames:
    video_frame_ids: np.ndarray  # original video frame indices, ascending (sampling order)
    scores: np.ndarray  # sigmoid scores, float32
    grid_ids: np.ndarray | None  # 1-fps grid ids (None for sampling="uniform")


class Selector:
    """A trained frame selector ready for inference (no gradients, eval mode)."""

    def __init__(
        self,
        model: FrameSelector,
        *,
        device: str | torch.device | None = None,
        sampling: str = "grid",
        feature_cache: FeatureCache | None = None,
        batch_size: int = 8,
        isolate: bool = True,
        encode_batch_size: int = 32,
        autocast: bool = True,
        compile: bool = False,
    ) -> None:
        if sampling not in ("grid", "uniform"):
            raise ValueError("sampling must be 'grid' or 'uniform'")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.sampling = sampling
        self.cache = feature_cache if feature_cache is not None else FeatureCache(None, memory_bytes=1 << 30)
        self.batch_size = max(1, int(batch_size))
        self.isolate = isolate
        self.encode_batch_size = encode_batch_size
        self.autocast = autocast and self.device.type == "cuda"
        if compile:
            self.model.compile_blocks()
        self._encoder_id: str | None = None

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = "auto",
        cache_dir: str | Path | None = None,
        feature_cache: FeatureCache | None = None,
        **kwargs: Any,
    ) -> Selector:
        """dtype "auto": bfloat16 weights on CUDA, float32 on the CPU. Frame features are cached in
        `feature_cache` if given, else in a new cache under `cache_dir`, else not at all."""
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = torch.bfloat16 if torch.device(device).type == "cuda" else None
        elif isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        model = FrameSelector.from_pretrained(path, dtype=dtype)
        if feature_cache is None and cache_dir:
            feature_cache = FeatureCache(cache_dir, memory_bytes=1 << 30)
        return cls(model, device=device, feature_cache=feature_cache, **kwargs)

    @property
    def config(self):
        return self.model.config

    # ---------------------------------------------------------------- frames and features

    def plan(self, video: str | Path, num_frames: int = 512) -> FramePlan:
        video = str(video)
        if self.sampling == "grid":
            return frame_plan(video, num_frames, self.config.grid_fps)
        meta = _video.probe(video)
        ids = _video.uniform_indices(meta.num_frames, num_frames)
        return FramePlan(video, meta.fps, meta.num_frames, 0, (), tuple(int(i) for i in ids), meta)

    def _cache_key(self, plan: FramePlan) -> str:
        if self._encoder_id is None:
            self._encoder_id = self.model.encoder_id()
        return FeatureCache.key(
            plan.video,
            self._encoder_id,
            plan.video_frame_ids,
            self.model.vision.image_size,
            self.model.feature_grid,
        )

    def decode(self, plan: FramePlan) -> np.ndarray:
        return decode_for(self.model, plan.video, plan.video_frame_ids, meta=plan.meta, isolate=self.isolate)

    def features(self, plan: FramePlan, frames: np.ndarray | None = None) -> torch.Tensor:
        key = self._cache_key(plan)
        return self.cache.get_or_compute(
            key,
            lambda: self.model.encode_frames(
                frames if frames is not None else self.decode(plan), batch_size=self.encode_batch_size
            ),
        )

    def cached(self, plan: FramePlan) -> bool:
        return self.cache.get(self._cache_key(plan)) is not None

    # ---------------------------------------------------------------- scoring

    @torch.inference_mode()
    def score_features(self, features: torch.Tensor, instructions: Sequence[str]) -> list[np.ndarray]:
        """Sigmoid scores (T,) for each instruction over one video's frame features."""
        feats = features.to(self.device)
        out_scores: list[np.ndarray] = []
        for start in range(0, len(instructions), self.batch_size):
            chunk = list(instructions[start : start + self.batch_size])
            ids = [self.model.encode_instruction(text) for text in chunk]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                out = self.model([feats] * len(chunk), ids)
            probs = torch.sigmoid(out.logits.float()).cpu().numpy()
            for i in range(len(chunk)):
                out_scores.append(probs[i, : out.layouts[i].num_frames].astype(np.float32))
        return out_scores

    def score_many(
        self, video: str | Path, instructions: Sequence[str], num_frames: int = 512
    ) -> list[ScoredFrames]:
        plan = self.plan(video, num_frames)
        scores = self.score_features(self.features(plan), instructions)
        grid = np.asarray(plan.grid_ids, dtype=np.int64) if self.sampling == "grid" else None
        frames = np.asarray(plan.video_frame_ids, dtype=np.int64)
        return [ScoredFrames(frames, s, grid) for s in scores]

    def score(
        self, video: str | Path, instruction: str, num_frames: int = 512, *, return_grid_ids: bool = False
    ):
        """(video frame ids, scores) of the sampled frames, in temporal order (+ grid ids if asked)."""
        result = self.score_many(video, [instruction], num_frames)[0]
        if return_grid_ids:
            return result.video_frame_ids, result.scores, result.grid_ids
        return result.video_frame_ids, result.scores

    def select(self, video: str | Path, instruction: str, k: int = 32, num_frames: int = 512) -> list[int]:
        """Top-K original video frame indices, sorted ascending."""
        frame_ids, scores = self.score(video, instruction, num_frames)
        return top_k(frame_ids, scores, k)


# --------------------------------------------------------------------------- manifests


@dataclass
class Query:
    doc_id: str | int
    question: str


@dataclass
class VideoJob:
    video: str
    queries: list[Query] = field(default_factory=list)


def read_queries(manifest: str | Path) -> list[VideoJob]:
    """Questions grouped by video (first-appearance order).

    Accepts a VidThinker manifest (.jsonl/.parquet of ManifestRow, or LLaVA-Video .json; doc_id = qa_id,
    or `<video_id>/<qa_id>` when qa_ids repeat across videos, the record id records_from_ground_truth uses)
    or generic JSONL/JSON rows `{"doc_id", "video" | "video_path", "question" | "instruction"}` as
    lmms-eval tasks produce them (doc_id kept as given, int or str; relative paths against the file).
    """
    manifest = Path(manifest)
    rows: list[dict[str, Any]] | None = None
    if manifest.suffix.lower() in (".jsonl", ".json"):
        text = manifest.read_text()
        if manifest.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
            rows = data if isinstance(data, list) else None
        if rows and isinstance(rows[0], dict) and "qa" not in rows[0] and "conversations" not in rows[0]:
            return _generic_jobs(rows, manifest.parent)
    from vidthinker.formats import read_manifest

    rows = read_manifest(manifest)
    qa_ids = [pair.qa_id for row in rows for pair in row.qa]
    unique = len(set(qa_ids)) == len(qa_ids)
    if not unique:  # e.g. synthetic sets number questions per video (q00, q01, ...)
        log.warning("%s: qa_id repeats across videos; doc_id = '<video_id>/<qa_id>'", manifest)
    jobs: OrderedDict[str, VideoJob] = OrderedDict()
    for row in rows:
        job = jobs.setdefault(row.video, VideoJob(row.video))
        job.queries.extend(
            Query(pair.qa_id if unique else f"{row.video_id}/{pair.qa_id}", pair.question) for pair in row.qa
        )
    return list(jobs.values())


def _generic_jobs(rows: list[dict[str, Any]], base: Path) -> list[VideoJob]:
    jobs: OrderedDict[str, VideoJob] = OrderedDict()
    for index, row in enumerate(rows):
        video = row.get("video_path", row.get("video"))
        question = row.get("question", row.get("instruction", row.get("prompt")))
        if video is None or question is None:
            raise ValueError(f"row {index}: needs video/video_path and question/instruction")
        doc_id = row.get("doc_id", row.get("qa_id", row.get("id", index)))
        if not isinstance(doc_id, (int, str)) or isinstance(doc_id, bool):
            doc_id = str(doc_id)
        path = Path(str(video))
        if not path.is_absolute():
            path = (base / path).resolve()
        jobs.setdefault(str(path), VideoJob(str(path))).queries.append(Query(doc_id, str(question)))
    return list(jobs.values())


def result_line(
    doc_id: str | int, video_path: str, frame_ids: Sequence[int], scores: Sequence[float]
) -> dict[str, Any]:
    ranked, ranked_scores = rank_frames(frame_ids, scores)
    return {
        "doc_id": doc_id,
        "video_path": video_path,
        "index": ranked,
        "logits": [round(float(s), 2) for s in ranked_scores],
    }


def frame_indices_line(
    doc_id: str | int, frame_ids: Sequence[int], scores: Sequence[float], k: int
) -> dict[str, Any]:
    return {"doc_id": doc_id, "index": top_k(frame_ids, scores, k)}


@dataclass
class SelectReport:
    results: Path
    frame_indices: Path
    videos: int = 0
    queries: int = 0
    failed_videos: list[dict[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    decode_s: float = 0.0
    score_s: float = 0.0


def select_manifest(
    selector: Selector | str | Path,
    manifest: str | Path,
    out_dir: str | Path,
    *,
    k: int = 32,
    num_frames: int = 512,
    prefetch: int = 2,
    limit: int | None = None,
    progress: bool = False,
) -> SelectReport:
    """Score every question of a manifest; each video is decoded (and encoded) once for all its questions,
    the next videos are decoded in background threads while the current one is scored."""
    if not isinstance(selector, Selector):
        selector = Selector.from_pretrained(selector)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = read_queries(manifest)
    if limit is not None:
        jobs = jobs[:limit]
    report = SelectReport(out_dir / "results.jsonl", out_dir / "frame_indices.jsonl")
    tmp_results = report.results.with_name(f".{report.results.name}.tmp")
    tmp_indices = report.frame_indices.with_name(f".{report.frame_indices.name}.tmp")
    started = time.perf_counter()

    def prepare(job: VideoJob) -> tuple[FramePlan, np.ndarray | None, float]:
        t0 = time.perf_counter()
        plan = selector.plan(job.video, num_frames)
        frames = None if selector.cached(plan) else selector.decode(plan)
        return plan, frames, time.perf_counter() - t0

    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress()
        bar.start()
        task = bar.add_task("select", total=len(jobs))
    try:
        with (
            ThreadPoolExecutor(max_workers=max(1, prefetch)) as pool,
            tmp_results.open("w") as results,
            tmp_indices.open("w") as indices,
        ):
            pending: OrderedDict[int, Future] = OrderedDict()
            for i in range(min(len(jobs), max(1, prefetch))):
                pending[i] = pool.submit(prepare, jobs[i])
            for i, job in enumerate(jobs):
                future = pending.pop(i)
                nxt = i + max(1, prefetch)
                if nxt < len(jobs):
                    pending[nxt] = pool.submit(prepare, jobs[nxt])
                try:
                    plan, frames, decode_s = future.result()
                    report.decode_s += decode_s
                    t0 = time.perf_counter()
                    feats = selector.features(plan, frames)
                    scores = selector.score_features(feats, [q.question for q in job.queries])
                    report.score_s += time.perf_counter() - t0
                except Exception as error:  # noqa: BLE001 - one bad video must not stop the manifest
                    log.warning("%s: %s", job.video, error)
                    report.failed_videos.append(
                        {"video": job.video, "error": f"{type(error).__name__}: {error}"}
                    )
                    continue
                for query, sc in zip(job.queries, scores):
                    results.write(
                        json.dumps(result_line(query.doc_id, job.video, plan.video_frame_ids, sc)) + "\n"
                    )
                    indices.write(
                        json.dumps(frame_indices_line(query.doc_id, plan.video_frame_ids, sc, k)) + "\n"
                    )
                    report.queries += 1
                report.videos += 1
                if bar is not None:
                    bar.update(task, advance=1)
        os.replace(tmp_results, report.results)
        os.replace(tmp_indices, report.frame_indices)
    finally:
        if bar is not None:
            bar.stop()
        for tmp in (tmp_results, tmp_indices):
            tmp.unlink(missing_ok=True)
    if report.failed_videos:
        (out_dir / "errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in report.failed_videos))
    report.elapsed_s = time.perf_counter() - started
    return report


def iter_jsonl(path: str | Path) -> Iterable[dict[str, Any]]:
    with Path(path).open() as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
