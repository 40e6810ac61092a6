"""Typer-compatible command functions (registered by the CLI as `vidthinker eval` and `vidthinker select`).

Parameters use `Annotated[..., typer.Option(...)]`, so the functions are also plain Python functions with
ordinary defaults (tests call them directly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def _ints(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def eval_command(
    manifest: Annotated[
        Path,
        typer.Option(
            "--manifest",
            "-m",
            help="Evaluation set: a VidThinker manifest (synthetic or labelled), or a VideoMME / MLVU / "
            "LongVideoBench / CG-Bench annotation file or folder.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Report folder: report.md, report.json, plots/, predictions/.")
    ],
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            "-p",
            help="Folder with one subfolder per selector holding results.jsonl / frame_indices.jsonl (lmms-eval "
            "format, read as VideoITG's lmms-eval wrappers read them: integer doc_id = the question's row in "
            "the evaluation split, first line of a repeated doc_id wins, other lines skipped and counted).",
        ),
    ] = None,
    baselines: Annotated[
        str,
        typer.Option(help="Baselines computed on the fly, comma-separated: uniform,random,similarity,aks."),
    ] = "uniform",
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint", help="Trained selector folder to run on the fly (repeatable; named by folder)."
        ),
    ] = None,
    benchmark: Annotated[
        str, typer.Option(help="auto, manifest, videomme, mlvu, longvideobench or cgbench.")
    ] = "auto",
    video_root: Annotated[
        Path | None, typer.Option(help="Folder of the benchmark's videos (default: the annotation's folder).")
    ] = None,
    k: Annotated[
        str, typer.Option("--k", "-k", help="K values (frames selected), comma-separated.")
    ] = "4,8,16,32",
    tolerance: Annotated[int, typer.Option(help="Temporal tolerance in seconds for the ± metrics.")] = 1,
    primary: Annotated[
        str, typer.Option(help="Metric the verdict is about, e.g. recall@8, f1_tol@8, ap.")
    ] = "recall@8",
    candidate: Annotated[
        str | None, typer.Option(help="Selector to judge (default: the first that is not a baseline).")
    ] = None,
    previous_best: Annotated[
        Path | None,
        typer.Option(help="Previous best: its predictions folder, or the report.json of its evaluation."),
    ] = None,
    index_unit: Annotated[
        str,
        typer.Option(
            help="Ids in prediction files: 'frame' (original video frames, lmms-eval) or 'grid' (1-fps ids)."
        ),
    ] = "frame",
    num_candidates: Annotated[
        int, typer.Option(help="Candidate grid frames per video (uniform subset when longer).")
    ] = 512,
    embedder: Annotated[
        str,
        typer.Option(
            help="Embedder of the similarity/AKS baselines: efficientnet-lite0 or a CLIP/SigLIP name or path."
        ),
    ] = "efficientnet-lite0",
    qa_base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible endpoint of the Video-LLM (e.g. vllm serve); enables QA."),
    ] = None,
    qa_model: Annotated[str | None, typer.Option(help="Served model name of the Video-LLM.")] = None,
    qa_k: Annotated[str, typer.Option(help="K values for downstream QA (ITG-K / UNI-K).")] = "8",
    qa_selectors: Annotated[str | None, typer.Option(help="Selectors to run QA for (default: all).")] = None,
    qa_max_side: Annotated[
        int, typer.Option(help="Longest side of the JPEG frames sent to the Video-LLM.")
    ] = 448,
    qa_concurrency: Annotated[int, typer.Option(help="QA requests in flight.")] = 8,
    write_k: Annotated[
        int | None,
        typer.Option(
            help="K of the frame_indices.jsonl written under predictions/ (default: the largest K), best "
            "frame first with integer lmms-eval doc ids: a VideoITG lmms-eval wrapper with num_frame <= K "
            "gets the num_frame best frames, so make K >= its num_frame."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random baseline and the bootstrap.")] = 0,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the confidence intervals.")] = 2000,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N videos (N >= 1).")] = None,
    device: Annotated[
        str | None, typer.Option(help="Device of trained selectors (default: CUDA when available).")
    ] = None,
) -> None:
    """Compare frame selectors on an evaluation set: grounding metrics, optional Video-LLM QA, report."""
    from eval.evaluate import evaluate

    chat = None
    if qa_base_url:
        if not qa_model:
            raise typer.BadParameter("--qa-model is needed with --qa-base-url")
        from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint

        chat = OpenAICompatChat(
            OpenAIEndpoint(base_url=qa_base_url, model=qa_model, max_in_flight=qa_concurrency)
        )
    if index_unit not in ("frame", "grid"):
        raise typer.BadParameter("--index-unit must be 'frame' or 'grid'")
    result = evaluate(
        manifest,
        out,
        predictions=predictions,
        benchmark=benchmark,
        video_root=video_root,
        baselines=[b for b in baselines.split(",") if b.strip()],
        checkpoints=list(checkpoint or []),
        ks=_ints(k),
        tolerance=tolerance,
        num_candidates=num_candidates,
        index_unit=index_unit,
        candidate=candidate,
        previous_best=previous_best,
        primary=primary,
        embedder_name=embedder,
        seed=seed,
        limit=limit,
        n_boot=bootstrap,
        write_k=write_k,
        chat=chat,
        qa_k=_ints(qa_k) or [8],
        qa_selectors=[s for s in (qa_selectors or "").split(",") if s.strip()] or None,
        qa_max_side=qa_max_side,
        qa_concurrency=qa_concurrency,
        device=device,
    )
    verdict = result.report.get("verdict") or {}
    typer.echo(
        json.dumps(
            {
                "report": str(result.paths["md"]),
                "json": str(result.paths["json"]),
                "questions": result.report["questions"],
                "failed_videos": len(result.report["failed_videos"]),
                "candidate": verdict.get("candidate"),
                "vs_uniform": (verdict.get("vs_uniform") or {}).get("verdict"),
                "vs_previous_best": (verdict.get("vs_previous_best") or {}).get("verdict"),
            }
        )
    )


def select_command(
    checkpoint: Annotated[
        Path, typer.Argument(help="Trained selector folder (config.json + model.safetensors).")
    ],
    manifest: Annotated[
        Path,
        typer.Argument(
            help="What to score: a benchmark's annotation file or folder (VideoMME parquet, MLVU, "
            "LongVideoBench, CG-Bench JSON: the files `vidthinker eval` reads), a VidThinker manifest "
            "(.jsonl/.parquet, LLaVA-Video .json), or JSONL rows {doc_id, video_path, question}."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for results.jsonl, frame_indices.jsonl and doc_ids.jsonl."
        ),
    ],
    benchmark: Annotated[
        str,
        typer.Option(
            help="auto, manifest, videomme, mlvu, longvideobench or cgbench. doc_id is lmms-eval's: the "
            "question's row in the file (its position in manifest order for a manifest), so give the "
            "task's evaluation split as released; doc_ids.jsonl says which question each doc_id is."
        ),
    ] = "auto",
    video_root: Annotated[
        Path | None,
        typer.Option(help="Folder of the benchmark's videos (default: the annotation file's folder)."),
    ] = None,
    k: Annotated[
        int,
        typer.Option(
            "--k",
            "-k",
            help="Frames kept per question in frame_indices.jsonl, best first. VideoITG's lmms-eval "
            "wrappers read index[:num_frame] and sort it, so any num_frame <= K gets the num_frame "
            "best frames; set K >= the largest num_frame (max_num_frames) you run the Video-LLM with "
            "(a larger num_frame gets only K frames). results.jsonl ranks every scored frame.",
        ),
    ] = 32,
    num_frames: Annotated[int, typer.Option(help="Frames scored per video (paper: 512).")] = 512,
    sampling: Annotated[
        str,
        typer.Option(
            help="Frames scored: 'grid': the 1-fps grid (as in training), all of it or num_frames spread "
            "evenly; 'uniform': num_frames spread evenly over all video frames (not the VideoITG "
            "sampler); 'videoitg': exactly lmms-eval's VideoITG sampler (every round(fps)-th frame, "
            "thinned to num_frames at int(i * count / num_frames)), to compare with the released "
            "model's results.jsonl frame for frame."
        ),
    ] = "grid",
    batch_size: Annotated[int, typer.Option(help="Questions scored per forward pass.")] = 8,
    prefetch: Annotated[int, typer.Option(help="Videos decoded ahead in background threads.")] = 2,
    cache_dir: Annotated[
        Path | None, typer.Option(help="On-disk frame-feature cache (reused across runs).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Device (default: CUDA when available).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N videos (N >= 1).")] = None,
    compile_blocks: Annotated[
        bool,
        typer.Option("--compile/--no-compile", help="torch.compile each transformer block (worth it on GPUs for long runs)."),
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Score a benchmark's or manifest's questions with a trained selector and write lmms-eval's frame files
    (point a VideoITG lmms-eval wrapper's frame_indices_jsonl at frame_indices.jsonl or results.jsonl)."""
    from eval.lmms_select import select_manifest
    from trainer.inference import SAMPLINGS, Selector

    if sampling not in SAMPLINGS:
        raise typer.BadParameter(f"--sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")

    selector = Selector.from_pretrained(
        checkpoint, device=device, cache_dir=cache_dir, sampling=sampling, batch_size=batch_size,
        compile=compile_blocks,
    )
    report = select_manifest(
        selector,
        manifest,
        out,
        k=k,
        num_frames=num_frames,
        prefetch=prefetch,
        limit=limit,
        progress=progress,
        benchmark=benchmark,
        video_root=video_root,
    )
    typer.echo(
        json.dumps(
            {
                "results": str(report.results),
                "frame_indices": str(report.frame_indices),
                "doc_ids": str(report.doc_ids),
                "videos": report.videos,
                "queries": report.queries,
                "failed_videos": len(report.failed_videos),
                "elapsed_s": round(report.elapsed_s, 2),
            }
        )
    )
