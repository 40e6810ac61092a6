"""Typer-compatible command functions (to be registered by the CLI as `vidthinker eval`).

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
