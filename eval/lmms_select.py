"""``vidthinker select`` over a benchmark split or a manifest: read the questions with their lmms-eval doc
ids, score them with a trained selector, write the lmms-eval frame files.

Reading benchmark annotation files is the evaluation's job (``eval.benchmarks``, the same items
``vidthinker eval`` reads); scoring and writing ``results.jsonl``, ``frame_indices.jsonl`` and
``doc_ids.jsonl`` is the trainer's (``trainer.inference.select_jobs``). The import contract keeps that
direction: eval imports trainer, never the reverse.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from eval.benchmarks import ADAPTERS, detect_benchmark, load_items, read_records
from trainer.inference import Query, Selector, SelectReport, VideoJob, read_manifest_queries, select_jobs


def detect_kind(manifest: str | Path, benchmark: str = "auto") -> str:
    """'manifest' (VidThinker manifest, LLaVA-Video JSON, generic rows) or a benchmark name of
    ``eval.benchmarks`` (VideoMME, MLVU, LongVideoBench, CG-Bench files, told apart by their fields)."""
    if benchmark in ("manifest", "synthetic"):
        return "manifest"
    if benchmark != "auto":
        if benchmark not in ADAPTERS:
            raise ValueError(
                f"unknown benchmark {benchmark!r}; choose from auto, manifest, {', '.join(ADAPTERS)}"
            )
        return benchmark
    try:
        first = read_records(manifest)[:1]
    except (OSError, ValueError, TypeError):
        return "manifest"  # not a plain record file: read_manifest says what is wrong with it
    if not first or not isinstance(first[0], dict) or "qa" in first[0] or "conversations" in first[0]:
        return "manifest"
    try:
        return detect_benchmark(first[0])
    except ValueError:
        return "manifest"  # generic rows {doc_id, video_path, question}


def read_queries(
    manifest: str | Path, benchmark: str = "auto", *, video_root: str | Path | None = None
) -> list[VideoJob]:
    """Questions grouped by video (first-appearance order), each with its lmms-eval doc_id.

    * A benchmark file (``benchmark`` = videomme, mlvu, longvideobench, cgbench, or detected): the items
      ``eval.benchmarks.load_items`` reads, ``vidthinker eval``'s; doc_id = the row in the file (lmms-eval's
      doc_id when the file is the task's split), qa_id = the benchmark's question id.
    * A VidThinker manifest or generic rows ``{doc_id, video_path, question}``:
      ``trainer.inference.read_manifest_queries`` (doc_id = the question's position in manifest order, or
      the row's ``doc_id``).
    """
    manifest = Path(manifest)
    kind = detect_kind(manifest, benchmark)
    if kind == "manifest":
        return read_manifest_queries(manifest)
    items = load_items(manifest, kind, video_root=video_root)
    jobs: OrderedDict[str, VideoJob] = OrderedDict()
    for item in items:
        jobs.setdefault(item.video, VideoJob(item.video)).queries.append(
            Query(item.lmms_doc_id, item.question, item.video_id, item.doc_id)
        )
    return list(jobs.values())


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
    benchmark: str = "auto",
    video_root: str | Path | None = None,
) -> SelectReport:
    """Score every question of a manifest or benchmark file (``read_queries``; ``limit``: the first N
    videos) with ``trainer.inference.select_jobs``, which writes results.jsonl, frame_indices.jsonl
    (Top-``k``, best first) and doc_ids.jsonl into ``out_dir``."""
    if not isinstance(selector, Selector):
        selector = Selector.from_pretrained(selector)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = read_queries(manifest, benchmark, video_root=video_root)
    if limit is not None:
        jobs = jobs[:limit]
    return select_jobs(
        selector, jobs, out_dir, k=k, num_frames=num_frames, prefetch=prefetch, progress=progress
    )
