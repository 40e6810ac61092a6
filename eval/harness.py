"""Run selectors over evaluation items: one pass per video, every selector and question sharing its frames.

``run_selection`` → per selector, per question: candidate grid ids, scores and the Top-K for every K.
``write_predictions`` writes them as lmms-eval's ``results.jsonl`` / ``frame_indices.jsonl`` (original video
frame indices and integer doc ids, like ``trainer.inference``), so VideoITG's lmms-eval wrappers can read
what this harness selected.
``grounding_tables`` turns them into per-question metric rows (``eval.metrics``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.frames import FrameStore
from eval.items import EvalItem, group_by_video
from eval.metrics import MetricTable, question_metrics
from eval.selectors import FrameSelector, Query, rank_ids, score_queries, select_from_scores
from vidthinker.io import atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class Scored:
    """What one selector did for one question."""

    doc_id: str
    video: str
    candidate_ids: list[int]
    scores: np.ndarray | None  # None: the selector has nothing for this question
    selections: dict[int, list[int] | None]
    error: str | None = None


@dataclass
class SelectionRun:
    """``scored[selector][doc_id]``, plus per-video failures and timings per selector."""

    scored: dict[str, dict[str, Scored]] = field(default_factory=dict)
    failed_videos: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    selectors: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_selection(
    items: Sequence[EvalItem],
    selectors: Sequence[FrameSelector],
    ks: Sequence[int],
    *,
    store: FrameStore,
    num_candidates: int | None = 512,
    progress: Callable[[int, int, str], None] | None = None,
    after_video: Callable[[str, list[EvalItem], SelectionRun], None] | None = None,
) -> SelectionRun:
    """Score every item with every selector. Candidates are the video's 1-fps grid ids (``num_candidates``
    of them spread uniformly when the video is longer). A video that cannot be probed or decoded is recorded
    in ``failed_videos`` and its questions get no scores from any selector; a selector that fails on a video
    records the error on those questions and the others go on. ``after_video(video, items, run)`` runs
    while the video's frames are still in the store (the QA harness asks the Video-LLM there)."""
    names = [s.name for s in selectors]
    if len(set(names)) != len(names):
        raise ValueError(f"selector names must be unique, got {names}")
    run = SelectionRun(scored={n: {} for n in names}, seconds=dict.fromkeys(names, 0.0))
    videos = group_by_video(list(items))
    for v_index, (video, video_items) in enumerate(videos.items()):
        if progress:
            progress(v_index, len(videos), video)
        try:
            info = store.info(video)
            candidates = store.grid_ids(info, num_candidates)
        except Exception as error:  # noqa: BLE001 - one bad video must not stop the evaluation
            run.failed_videos[video] = f"{type(error).__name__}: {error}"
            log.warning("%s: %s", video, error)
            continue
        queries = [Query(item.doc_id, item.question) for item in video_items]
        for selector in selectors:
            t0 = time.perf_counter()
            try:
                all_scores = score_queries(selector, info, queries, candidates)
                for query, scores in zip(queries, all_scores):
                    sel = {
                        int(k): select_from_scores(selector, info, query, candidates, scores, int(k))
                        for k in ks
                    }
                    run.scored[selector.name][query.doc_id] = Scored(
                        query.doc_id,
                        video,
                        list(candidates),
                        None if scores is None else np.asarray(scores),
                        sel,
                    )
            except Exception as error:  # noqa: BLE001
                message = f"{type(error).__name__}: {error}"
                log.warning("%s on %s: %s", selector.name, video, message)
                if "Video" in type(error).__name__ or "Decode" in type(error).__name__:
                    run.failed_videos[video] = message
                for query in queries:
                    run.scored[selector.name][query.doc_id] = Scored(
                        query.doc_id, video, list(candidates), None, dict.fromkeys(ks), message
                    )
            run.seconds[selector.name] += time.perf_counter() - t0
        if after_video is not None and video not in run.failed_videos:
            after_video(video, video_items, run)
        store.forget(info)
    if progress:
        progress(len(videos), len(videos), "")
    for s in selectors:  # described at the end: some count what they did (e.g. similarity modes)
        describe = getattr(s, "describe", None)
        run.selectors[s.name] = describe() if describe else {"name": s.name, "kind": type(s).__name__}
    return run


def grounding_tables(
    items: Sequence[EvalItem], run: SelectionRun, *, tolerance: int = 1
) -> dict[str, MetricTable]:
    """Per-question grounding metrics of every selector (items without truth frames are skipped)."""
    tables: dict[str, MetricTable] = {}
    for name, by_doc in run.scored.items():
        table = MetricTable()
        for item in items:
            if item.gt_frames is None:
                continue
            sc = by_doc.get(item.doc_id)
            if sc is None or sc.scores is None:
                ks = next((list(s.selections) for s in by_doc.values()), [])
                metrics = question_metrics([], None, dict.fromkeys(ks), item.gt_frames, tolerance)
                metrics["covered"] = 0.0
            else:
                metrics = question_metrics(
                    sc.candidate_ids, sc.scores, sc.selections, item.gt_frames, tolerance
                )
                metrics["covered"] = 1.0
            table.rows.append({"doc_id": item.doc_id, "group": item.group, "video": item.video, **metrics})
        tables[name] = table
    return tables


def doc_id_line(item: EvalItem) -> dict[str, Any]:
    """One line of ``doc_ids.jsonl``: lmms-eval's doc_id and the question it stands for."""
    return {"doc_id": item.lmms_doc_id, "video_id": item.video_id, "qa_id": item.doc_id, "video": item.video}


def write_predictions(
    out_dir: str | Path,
    by_doc: dict[str, Scored],
    store: FrameStore,
    k: int,
    *,
    items: Sequence[EvalItem],
) -> tuple[Path, Path]:
    """``results.jsonl``, ``frame_indices.jsonl`` and ``doc_ids.jsonl`` of one selector, in original video
    frame indices, one line per item in split order, ``doc_id`` = lmms-eval's (``EvalItem.lmms_doc_id``).

    ``results.jsonl`` ``index`` is every candidate by score, highest first; ``frame_indices.jsonl`` ``index``
    is the selector's Top-``k`` ordered by score, highest first (ties: earlier frame first), NOT by time: the
    VideoITG wrappers take ``index[:num_frame]`` and sort it, so any ``num_frame <= k`` gets the
    ``num_frame`` best frames (a uniform selection's scores are coarse to fine, so its prefixes stay
    spread). Items without scores are left out (the readers fall back to uniform sampling for them);
    ``doc_ids.jsonl`` lists every item."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results, indices, docs = [], [], []
    seen: set[int] = set()
    for item in items:
        row = item.lmms_doc_id
        if row in seen:
            raise ValueError(f"{item.doc_id}: lmms-eval doc_id {row} given to two questions")
        seen.add(row)
        docs.append(json.dumps(doc_id_line(item)))
        sc = by_doc.get(item.doc_id)
        if sc is None or sc.scores is None:
            continue
        ranked = rank_ids(sc.candidate_ids, sc.scores)
        by_id = dict(zip(sc.candidate_ids, sc.scores.tolist()))
        frames = store.frame_indices(sc.video, ranked)
        results.append(
            json.dumps(
                {
                    "doc_id": row,
                    "video_path": sc.video,
                    "index": frames,
                    "logits": [round(float(by_id[g]), 2) for g in ranked],
                }
            )
        )
        chosen = sc.selections.get(k)
        if chosen is None:
            chosen = select_from_scores_fallback(sc, k)
        best_first = sorted(chosen, key=lambda g: (-by_id.get(g, float("-inf")), g))
        ordered = list(dict.fromkeys(store.frame_indices(sc.video, best_first)))
        indices.append(json.dumps({"doc_id": row, "index": ordered}))
    atomic_write_text(out_dir / "results.jsonl", "".join(line + "\n" for line in results))
    atomic_write_text(out_dir / "frame_indices.jsonl", "".join(line + "\n" for line in indices))
    atomic_write_text(out_dir / "doc_ids.jsonl", "".join(line + "\n" for line in docs))
    return out_dir / "results.jsonl", out_dir / "frame_indices.jsonl"


def select_from_scores_fallback(sc: Scored, k: int) -> list[int]:
    return sorted(rank_ids(sc.candidate_ids, sc.scores)[:k]) if sc.scores is not None else []
