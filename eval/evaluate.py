"""One evaluation run: items → selectors (saved predictions, baselines, trained checkpoints) → grounding
metrics, optional downstream QA → report. ``vidthinker eval`` and the retrain-and-evaluate DAG call this."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.benchmarks import load_items
from eval.frames import FrameStore
from eval.harness import SelectionRun, grounding_tables, run_selection, write_predictions
from eval.items import EvalItem
from eval.predictions import PredictionsSelector
from eval.qa import QARunner
from eval.report import build_report, load_previous, write_report
from eval.selectors import BASELINES, FrameSelector, VideoITGSelector, make_selectors

log = logging.getLogger(__name__)

PREVIOUS_BEST = "previous_best"


@dataclass
class EvalResult:
    report: dict[str, Any]
    paths: dict[str, Path]
    items: list[EvalItem] = field(default_factory=list)
    run: SelectionRun | None = None


def prediction_folders(predictions: str | Path) -> dict[str, Path]:
    """{selector name: folder} — one subfolder per selector, or the folder itself when it holds the files."""
    root = Path(predictions)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: predictions folder not found")
    has_files = lambda p: (p / "results.jsonl").is_file() or (p / "frame_indices.jsonl").is_file()
    if has_files(root):
        return {root.name: root}
    found = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and has_files(p)}
    if not found:
        raise FileNotFoundError(f"{root}: no subfolder with results.jsonl or frame_indices.jsonl")
    return found


def evaluate(
    manifest: str | Path,
    out: str | Path,
    *,
    predictions: str | Path | None = None,
    benchmark: str = "auto",
    video_root: str | Path | None = None,
    baselines: Sequence[str] = (),
    checkpoints: Sequence[str | Path] = (),
    selectors: Sequence[FrameSelector] = (),
    ks: Sequence[int] = (4, 8, 16, 32),
    tolerance: int = 1,
    num_candidates: int | None = 512,
    index_unit: str = "frame",
    candidate: str | None = None,
    previous_best: str | Path | None = None,
    primary: str = "recall@8",
    embedder: Any = None,
    embedder_name: str = "efficientnet-lite0",
    seed: int = 0,
    limit: int | None = None,
    n_boot: int = 2000,
    write_k: int | None = None,
    save_predictions: bool = True,
    chat: Any = None,
    qa_k: Sequence[int] = (8,),
    qa_selectors: Sequence[str] | None = None,
    qa_max_side: int | None = 448,
    qa_concurrency: int = 8,
    store: FrameStore | None = None,
    device: str | None = None,
    plots: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> EvalResult:
    out = Path(out)
    items = load_items(manifest, benchmark, video_root=video_root, limit=limit)
    if not items:
        raise ValueError(f"{manifest}: no questions to evaluate")
    store = store or FrameStore(max_side=qa_max_side if chat is not None else 448)
    ks = sorted({int(k) for k in ks} | {int(k) for k in (qa_k if chat is not None else ())})
    write_k = int(write_k or max(ks))
    if write_k not in ks:
        ks = sorted({*ks, write_k})
    if "@" in primary and int(primary.split("@")[1]) not in ks:
        ks = sorted({*ks, int(primary.split("@")[1])})

    chosen: list[FrameSelector] = []
    from_files: set[str] = set()
    if predictions is not None:
        for name, folder in prediction_folders(predictions).items():
            chosen.append(
                PredictionsSelector(folder, name=name, index_unit=index_unit, store=store).bind(items)
            )
            from_files.add(name)
    for ckpt in checkpoints:
        chosen.append(VideoITGSelector(ckpt, store=store, name=Path(ckpt).name or "videoitg", device=device))
    chosen.extend(selectors)
    previous = None
    if previous_best is not None:
        prev = Path(previous_best)
        if prev.is_dir():
            chosen.append(
                PredictionsSelector(prev, name=PREVIOUS_BEST, index_unit=index_unit, store=store).bind(items)
            )
            from_files.add(PREVIOUS_BEST)
        else:
            previous = load_previous(prev)
    taken = {s.name for s in chosen}
    for s in make_selectors(
        [b for b in baselines if b.strip()],
        store=store,
        embedder=embedder,
        embedder_name=embedder_name,
        seed=seed,
    ):
        if s.name not in taken:
            chosen.append(s)
            taken.add(s.name)
    if not chosen:
        raise ValueError("nothing to evaluate: give --predictions, --checkpoint or --baselines")
    if candidate is None:
        candidate = next((s.name for s in chosen if s.name not in (*BASELINES, PREVIOUS_BEST)), None)
    elif candidate not in taken:
        raise ValueError(f"candidate {candidate!r} is not among the selectors {sorted(taken)}")
    if previous is None and PREVIOUS_BEST in taken:
        previous = None  # compared in-run below

    runner = None
    after = None
    qa_items = [i for i in items if i.answer is not None]
    if chat is not None and qa_items:
        runner = QARunner(chat, store, max_side=qa_max_side, concurrency=qa_concurrency)
        qa_names = list(qa_selectors) if qa_selectors else [s.name for s in chosen]
        loop_runner = asyncio.Runner()

        def after(video: str, video_items: list[EvalItem], run: SelectionRun) -> None:
            jobs = []
            for item in video_items:
                if item.answer is None:
                    continue
                for name in qa_names:
                    sc = run.scored.get(name, {}).get(item.doc_id)
                    if sc is None:
                        continue
                    for k in qa_k:
                        sel = sc.selections.get(int(k))
                        if sel is not None:
                            jobs.append((item, name, int(k), list(sel)))
            loop_runner.run(runner.answer_video(jobs))

    try:
        run = run_selection(
            items,
            chosen,
            ks,
            store=store,
            num_candidates=num_candidates,
            progress=progress,
            after_video=after,
        )
    finally:
        if runner is not None:
            close = getattr(chat, "aclose", None)
            if close is not None:
                loop_runner.run(close())
            loop_runner.close()
    tables = grounding_tables(items, run, tolerance=tolerance)
    if previous is None and PREVIOUS_BEST in tables:
        previous = (PREVIOUS_BEST, {r["doc_id"]: r for r in tables[PREVIOUS_BEST].rows})
    meta = {
        "manifest": str(manifest),
        "benchmark": benchmark,
        "num_candidates": num_candidates,
        "index_unit": index_unit,
        "seed": seed,
        "write_k": write_k,
        "qa_model": getattr(chat, "model_id", None) if chat is not None else None,
    }
    report = build_report(
        items=items,
        run=run,
        tables=tables,
        ks=ks,
        tolerance=tolerance,
        primary=primary,
        candidate=candidate,
        previous=previous,
        answers=runner.answers if runner is not None else None,
        qa_k=list(qa_k) if runner is not None else None,
        meta=meta,
        n_boot=n_boot,
        seed=seed,
    )
    if save_predictions:
        saved = {}
        for name, by_doc in run.scored.items():
            if name in from_files:
                continue
            folder = out / "predictions" / name
            write_predictions(folder, by_doc, store, write_k, items=items)
            saved[name] = str(folder)
        report["predictions_written"] = saved
    paths = write_report(report, out, plots=plots)
    return EvalResult(report, paths, items, run)
