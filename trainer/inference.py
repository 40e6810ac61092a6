"""Selector inference: score a video's frames for an instruction, pick Top-K, and batch whole manifests.

`Selector.score` samples a video's frames, scores them (sigmoid of the per-frame logits) and returns
ORIGINAL video frame indices. Samplings:

* ``grid`` (as in training): the 1-fps grid, all grid frames when there are at most `num_frames`, else
  `uniform_indices(n_grid, num_frames)`; grid id k → frame floor(k * fps + 0.5).
* ``uniform``: `num_frames` frames spread evenly over ALL original frames (`uniform_indices(total, n)`).
  This is not what lmms-eval's VideoITG sampler does.
* ``videoitg``: exactly the frames of the VideoITG release's sampler (``videoitg_indices``), so scores can be
  compared frame for frame with the released model's ``results.jsonl``.

`select_jobs` writes the files VideoITG's lmms-eval wrappers read (``frame_indices_jsonl=``):

    results.jsonl        {"doc_id", "video_path", "index": [frame ids by score desc], "logits": [2-dp scores]}
    frame_indices.jsonl  {"doc_id", "index": [Top-K frame ids by score desc]}
    doc_ids.jsonl        {"doc_id", "video_id", "qa_id", "video"}: what each integer doc_id stands for (every
                         question read, by doc_id, also those of videos that failed)

``doc_id`` is lmms-eval's: an integer, the question's position in the evaluation split (for a benchmark
file, its row; for a VidThinker manifest, its position in manifest order). The wrappers in NVlabs/VideoITG's
lmms-eval fork (``lmms_eval/models/internvl2.py``, ``internvl3_5.py``, ``qwen3_vl.py``, ``eagle2_5.py``,
``llava_onevision.py``) skip a line whose ``int(doc_id)`` fails, keep the first line of a repeated doc_id,
fall back to uniform sampling for a doc without a line, and at decode take ``index[:num_frame]`` and sort
it. Hence both files list frames best first: for any ``num_frame <= K`` the reader gets the ``num_frame``
best-scored frames of ``frame_indices.jsonl`` (``results.jsonl`` serves any ``num_frame`` up to the frames
scored). With ``num_frame > K`` a reader gets only the K frames, so set K to at least the largest
``num_frame`` the Video-LLM is run with.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.data import FeatureCache, FramePlan, decode_for, frame_plan
from trainer.model import FrameSelector
from vidthinker.io import atomic_path, atomic_write_text
from vidthinker.video import probe, uniform_indices

log = logging.getLogger(__name__)

SAMPLINGS = ("grid", "uniform", "videoitg")


def rank_frames(frame_ids: Sequence[int], scores: Sequence[float]) -> tuple[list[int], list[float]]:
    """Frames by score descending (ties: lower frame id first) and their scores."""
    ids = np.asarray(frame_ids, dtype=np.int64)
    sc = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((ids, -sc))
    return [int(i) for i in ids[order]], [float(s) for s in sc[order]]


def top_k(frame_ids: Sequence[int], scores: Sequence[float], k: int) -> list[int]:
    """The k best frames, sorted ascending (the order a Video-LLM reads them in)."""
    return sorted(best_k(frame_ids, scores, k))


def best_k(frame_ids: Sequence[int], scores: Sequence[float], k: int) -> list[int]:
    """The k best frames, best first (ties: lower frame id first): any prefix is the best of its size."""
    ranked, _ = rank_frames(frame_ids, scores)
    return ranked[: max(0, int(k))]


def videoitg_indices(total_frames: int, fps: float, num_frames: int, target_fps: float = 1.0) -> list[int]:
    """The frames lmms-eval's VideoITG sampler scores (NVlabs/VideoITG ``lmms_eval/models/videoitg.py``,
    ``get_seq_frames`` as called by ``load_video`` with decord's ``len(vr)`` and ``get_avg_fps()``): every
    step-th frame from frame 0 with step = round(fps / target_fps) (Python's round: halves go to the even
    number, 29.97 → 30, 12.5 → 12); when that gives fewer than ``num_frames`` frames all of them, else
    ``num_frames`` of them picked at positions int(i * scale), scale = count / num_frames. (The release's
    ``multiple`` padding is 1 there, i.e. none.)"""
    step = round(float(fps) / float(target_fps))
    if step < 1:
        raise ValueError(
            f"fps {fps}: the VideoITG sampler's step round(fps / {target_fps}) is {step}; it needs at least 1"
        )
    ids = list(range(0, int(total_frames), step))
    if len(ids) < num_frames:
        return ids
    scale = len(ids) / num_frames
    return [ids[int(i * scale)] for i in range(num_frames)]


@dataclass
class ScoredFrames:
    video_frame_ids: np.ndarray  # original video frame indices, ascending (sampling order)
    scores: np.ndarray  # sigmoid scores, float32
    grid_ids: np.ndarray | None  # 1-fps grid ids (None for sampling="uniform" / "videoitg")


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
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
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
        info = probe(video)
        if self.sampling == "videoitg":
            ids = videoitg_indices(info.num_frames, info.fps, num_frames)
        else:
            ids = uniform_indices(info.num_frames, num_frames)
        if not ids:
            raise ValueError(f"{video}: no frames to score ({info.num_frames} frames at {info.fps} fps)")
        return FramePlan(video, info.fps, info.num_frames, 0, (), tuple(int(i) for i in ids), info)

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
        return decode_for(self.model, plan.video, plan.video_frame_ids, info=plan.info, isolate=self.isolate)

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
    doc_id: int  # lmms-eval's doc_id: position of the question in the evaluation split
    question: str
    video_id: str | None = None
    qa_id: str | int | None = None  # the set's own question id (manifest qa_id, benchmark question id)


@dataclass
class VideoJob:
    video: str
    queries: list[Query] = field(default_factory=list)


def read_manifest_queries(manifest: str | Path) -> list[VideoJob]:
    """Questions of a VidThinker manifest or of generic rows, grouped by video (first-appearance order),
    each with its lmms-eval doc_id. (Benchmark files are read on the eval side: ``eval.lmms_select``.)

    * A VidThinker manifest (.jsonl/.parquet of ManifestRow, LLaVA-Video .json): doc_id = the question's
      position in manifest order (rows in order, ``qa`` in order), the same number ``vidthinker eval`` gives
      it; video_id/qa_id kept for ``doc_ids.jsonl``.
    * Generic JSONL/JSON rows ``{"doc_id", "video" | "video_path", "question" | "instruction"}`` as an
      lmms-eval task's docs: ``doc_id`` as given (it must pass ``int()`` as in the lmms-eval readers;
      absent: the row's position); relative paths against the file.
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
            return _generic_jobs(rows, manifest)
    from vidthinker.formats import read_manifest

    manifest_rows = read_manifest(manifest)
    jobs: OrderedDict[str, VideoJob] = OrderedDict()
    position = 0
    for row in manifest_rows:
        job = jobs.setdefault(row.video, VideoJob(row.video))
        for pair in row.qa:
            job.queries.append(Query(position, pair.question, row.video_id, pair.qa_id))
            position += 1
    return list(jobs.values())


def _generic_jobs(rows: list[dict[str, Any]], manifest: Path) -> list[VideoJob]:
    jobs: OrderedDict[str, VideoJob] = OrderedDict()
    seen: dict[int, int] = {}
    for index, row in enumerate(rows):
        video = row.get("video_path", row.get("video"))
        question = row.get("question", row.get("instruction", row.get("prompt")))
        if video is None or question is None:
            raise ValueError(f"{manifest} row {index}: needs video/video_path and question/instruction")
        given = row.get("doc_id", index)
        try:
            if isinstance(given, bool) or isinstance(given, float) and not given.is_integer():
                raise ValueError
            doc_id = int(given)
        except (TypeError, ValueError):
            raise ValueError(
                f"{manifest} row {index}: doc_id {given!r} is not an integer; lmms-eval's doc_id is the "
                "question's position in the evaluation split (its readers drop other ids)"
            ) from None
        if doc_id in seen:
            raise ValueError(f"{manifest} rows {seen[doc_id]} and {index}: both have doc_id {doc_id}")
        seen[doc_id] = index
        path = Path(str(video))
        if not path.is_absolute():
            path = (manifest.parent / path).resolve()
        qa_id = row.get("qa_id", row.get("question_id", row.get("id")))
        jobs.setdefault(str(path), VideoJob(str(path))).queries.append(
            Query(doc_id, str(question), row.get("video_id"), qa_id)
        )
    return list(jobs.values())


def result_line(
    doc_id: int, video_path: str, frame_ids: Sequence[int], scores: Sequence[float]
) -> dict[str, Any]:
    ranked, ranked_scores = rank_frames(frame_ids, scores)
    return {
        "doc_id": doc_id,
        "video_path": video_path,
        "index": ranked,
        "logits": [round(float(s), 2) for s in ranked_scores],
    }


def frame_indices_line(
    doc_id: int, frame_ids: Sequence[int], scores: Sequence[float], k: int
) -> dict[str, Any]:
    """Top-K best first: a reader taking ``index[:n]`` (then sorting) gets the n best frames."""
    return {"doc_id": doc_id, "index": best_k(frame_ids, scores, k)}


def doc_id_line(video: str, query: Query) -> dict[str, Any]:
    return {"doc_id": query.doc_id, "video_id": query.video_id, "qa_id": query.qa_id, "video": video}


@dataclass
class SelectReport:
    results: Path
    frame_indices: Path
    doc_ids: Path | None = None
    videos: int = 0
    queries: int = 0
    failed_videos: list[dict[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    decode_s: float = 0.0
    score_s: float = 0.0


def select_jobs(
    selector: Selector,
    jobs: Sequence[VideoJob],
    out_dir: str | Path,
    *,
    k: int = 32,
    num_frames: int = 512,
    prefetch: int = 2,
    progress: bool = False,
) -> SelectReport:
    """Score every question of ``jobs`` (``read_manifest_queries``, or ``eval.lmms_select.read_queries`` for
    benchmark files); each video is decoded (and encoded) once for all its questions, the next videos are
    decoded in background threads while the current one is scored. Writes results.jsonl,
    frame_indices.jsonl (Top-``k``, best first) and doc_ids.jsonl, each atomically (``vidthinker.io``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = SelectReport(
        out_dir / "results.jsonl", out_dir / "frame_indices.jsonl", out_dir / "doc_ids.jsonl"
    )
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
        # frame_indices.jsonl is moved into place after results.jsonl (the inner block ends first)
        with (
            atomic_path(report.frame_indices) as tmp_indices,
            atomic_path(report.results) as tmp_results,
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
        # every question of the split (a failed video's too): what each integer doc_id stands for
        every = sorted(((q.doc_id, job.video, q) for job in jobs for q in job.queries), key=lambda x: x[0])
        atomic_write_text(
            report.doc_ids, "".join(json.dumps(doc_id_line(video, q)) + "\n" for _, video, q in every)
        )
    finally:
        if bar is not None:
            bar.stop()
    if report.failed_videos:
        (out_dir / "errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in report.failed_videos))
    report.elapsed_s = time.perf_counter() - started
    return report
