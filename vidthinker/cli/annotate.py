"""The main job's commands: `synth` (synthetic videos with ground truth), `probe` and `plan` (videos and
their clips), `annotate` (the three stages into record shards) and `demo` (all of it end to end). The
library (PyAV, the engines, the models) loads inside each command."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from vidthinker.cli.common import ExitCode, command_settings, console, fail, out, progress_bar
from vidthinker.redact import redact


def synth(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write videos/, manifest.jsonl and truth/ into.")],
    videos: Annotated[Optional[int], typer.Option("--videos", "-n", help="How many videos (default: synth.videos).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed; the same seed gives the same set.")] = None,
    min_seconds: Annotated[Optional[float], typer.Option(help="Shortest video length in seconds.")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(help="Longest video length in seconds.")] = None,
) -> None:
    """Generate deterministic synthetic videos with grounded QA pairs and exact ground truth.

    Each video shows shapes, colours, text overlays and motion at known times over plain or
    real-footage backgrounds; its questions cover the paper's four instruction types and carry the
    relevant 1-fps frame ids and 5 s clip ids.
    """
    from vidthinker.synth import generate_synthetic_set

    settings = command_settings(ctx, synth__videos=videos, synth__seed=seed, synth__min_seconds=min_seconds, synth__max_seconds=max_seconds)
    cfg = settings.synth
    with progress_bar("synthesising videos", cfg.videos) as bar:
        def advance(message: str) -> None:
            bar.update(bar.task_ids[0], advance=1, status=message)

        manifest = generate_synthetic_set(
            out_dir, cfg.videos, cfg.seed, min_seconds=cfg.min_seconds, max_seconds=cfg.max_seconds,
            width=cfg.width, height=cfg.height, fps=cfg.fps, progress=advance,
        )
    out.print(f"wrote {cfg.videos} videos and {manifest}")


def probe(
    ctx: typer.Context,
    videos: Annotated[list[Path], typer.Argument(help="Video files to probe.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """Print duration, fps, frame count, size, codec and rotation of video files."""
    import dataclasses

    from vidthinker.video import VideoError
    from vidthinker.video import probe as probe_video

    settings = command_settings(ctx)
    table = Table("video", "duration s", "fps", "frames", "size", "codec", "rotation", "error")
    failed = 0
    for path in videos:
        try:
            info = probe_video(path, allowed_roots=settings.video.allowed_roots)
        except VideoError as error:
            failed += 1
            if as_json:
                out.print_json(json.dumps({"video": str(path), "error": f"{type(error).__name__}: {error}"}))
            else:
                table.add_row(str(path), "", "", "", "", "", "", f"[red]{type(error).__name__}: {error.reason}")
            continue
        if as_json:
            out.print_json(json.dumps(dataclasses.asdict(info), default=str))
        else:
            table.add_row(str(path), f"{info.duration_s:.2f}", f"{info.fps:.3f}", str(info.num_frames),
                          f"{info.width}x{info.height}", info.codec, str(info.rotation), "")
    if not as_json:
        out.print(table)
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)


def plan(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="Manifest (.jsonl, .parquet, LLaVA-Video .json).")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Parquet file of ClipPlan rows to write.")],
    clip_seconds: Annotated[Optional[float], typer.Option(help="Clip length in seconds (default 5).")] = None,
    grid_fps: Annotated[Optional[float], typer.Option(help="Frame grid rate (default 1 fps).")] = None,
) -> None:
    """Probe every manifest video and cut it into clips on the frame grid (the input of stage 1).

    A video that cannot be used becomes a plan row with its error; the others are planned anyway.
    """
    from vidthinker.formats import read_manifest
    from vidthinker.planning import plan_manifest
    from vidthinker.schema import ClipPlan, SchemaError, write_parquet

    settings = command_settings(ctx, video__clip_seconds=clip_seconds, video__grid_fps=grid_fps)
    try:
        rows = read_manifest(manifest)
    except SchemaError as error:
        raise fail(str(error)) from None
    with progress_bar("planning clips", len(rows)) as bar:
        plans = plan_manifest(rows, settings.video, lambda p: bar.update(bar.task_ids[0], advance=1, status=p.video_id))
    write_parquet(plans, ClipPlan, out_file)
    bad = [p for p in plans if p.error]
    clips = sum(len(p.clips) for p in plans)
    out.print(f"planned {len(plans) - len(bad)}/{len(plans)} videos into {clips} clips → {out_file}")
    for p in bad:
        console.print(f"[yellow]unusable video[/] {p.video_id}: {escape(p.error or '')}", highlight=False)


class Backend(StrEnum):
    offline = "offline"
    openai = "openai"


class CaptionMode(StrEnum):
    shared = "shared"
    per_question = "per_question"


class EngineName(StrEnum):
    local = "local"
    ray = "ray"


def annotate(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="Manifest (.jsonl, .parquet, LLaVA-Video .json).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder: shards/, cache/, summary.json.")],
    backend: Annotated[Optional[Backend], typer.Option(help="offline: registry weights on a loopback llama.cpp server; openai: an OpenAI-compatible endpoint such as `vllm serve`.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="Endpoint for --backend openai, e.g. http://vllm:8000/v1. API key from VIDTHINKER_API_KEY or OPENAI_API_KEY.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Served model for stage 1 (and 2, unless models.retrieval_model is set).")] = None,
    caption_mode: Annotated[Optional[CaptionMode], typer.Option(help="shared: one stage-1 call per clip for all of a video's questions; per_question: one call per clip and question.")] = None,
    oracle: Annotated[Optional[bool], typer.Option("--oracle/--no-oracle", help="Use the manifest's clip_descriptions as stage-1 output (measures stages 2-3 alone).")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Annotate only the first N videos (N >= 1).")] = None,
    engine: Annotated[Optional[EngineName], typer.Option(help="local: this process, one shard after another; ray: a pool of Ray actors (embedded local Ray unless --ray-address or RAY_ADDRESS). Default: engine.name.")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to run on (--engine ray), e.g. 10.0.0.5:6379. Default: engine.ray_address, else RAY_ADDRESS, else embedded local Ray.")] = None,
    shard_size: Annotated[Optional[int], typer.Option(help="Videos per shard (default: engine.shard_size).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Ray actors (default: the cluster's CPUs / engine.cpus_per_worker).")] = None,
    redo_stale: Annotated[bool, typer.Option("--redo-stale", help="Annotate again (overwriting them) the finished shards in OUT made with other annotation settings (models, prompts, annotate/video settings); without it such a rerun stops with an error. Setting: engine.redo_stale.")] = False,
    retry_errors: Annotated[bool, typer.Option("--retry-errors", help="Also redo the finished shards holding permanent model-reply errors (a reply that was not valid JSON or off the schema after its repair retry) and ask those calls again; failed calls are never cached, good replies replay from the cache.")] = False,
) -> None:
    """Annotate a manifest with the three VidThinker stages and write record shards.

    Stage 1 captions every 5 s clip for each question, stage 2 retrieves the clips that answer it and
    names its instruction type, stage 3 picks frames in them. A video or reply that fails becomes
    records with an error; the run goes on. Videos go into shards of --shard-size (OUT/shards/*.parquet,
    each with a manifest); a rerun into the same OUT skips finished shards and redoes interrupted ones,
    replaying paid model calls from OUT/cache. Finished shards made with other annotation settings
    (models, prompt templates, annotate/video settings) stop the run before any work, unless
    --redo-stale annotates them again. Shards whose manifest rows changed since (an edited, added or
    removed question, a replaced video file) are redone on their own.

    Errors are transient (the endpoint or infrastructure: timeouts, 429/5xx, connection errors, auth, an
    endpoint that stays down) or permanent (the input, or the model's reply). A shard whose share of
    transient errors exceeds annotate.max_transient_error_share (default 0) is failed: its records are
    kept for inspection in OUT/shards/_failed/ and a rerun redoes it (unchanged calls come from the
    cache). When the endpoint goes down, no further video is started. One run at a time writes OUT
    (lock file OUT/.vidthinker.lock).

    Exit codes: 0 every shard finished (permanent input/reply errors do not fail a run); 1 a shard could
    not be written; 2 bad input, configuration or stale shards; 3 a model endpoint is unreachable or does
    not serve the model at start-up; 4 shards failed transiently (one line names how many and the top
    reason; rerun to repair); 5 another run is writing OUT.
    """
    from vidthinker.engine import run_annotation
    from vidthinker.formats import read_manifest
    from vidthinker.models import ModelUnavailable
    from vidthinker.schema import SchemaError

    settings = command_settings(
        ctx, models__backend=backend.value if backend else None, models__base_url=base_url, models__caption_model=model,
        annotate__caption_mode=caption_mode.value if caption_mode else None, annotate__oracle_captions=oracle,
        engine__name=engine.value if engine else None, engine__ray_address=ray_address, engine__shard_size=shard_size,
        engine__workers=workers, engine__redo_stale=True if redo_stale else None,
    )
    try:
        rows = read_manifest(manifest)
    except SchemaError as error:
        raise fail(str(error)) from None
    rows = rows[:limit] if limit else rows
    summary = _run_with_progress(rows, out_dir, settings, run_annotation, ModelUnavailable, retry_errors=retry_errors,
                                 command=" ".join(sys.argv))
    _print_summary(summary, out_dir)
    written = len(summary.shards) - len(summary.skipped_shards) - sum(m.state == "failed" for m in summary.shards)
    out.print(f"shards: {written} written, {len(summary.skipped_shards)} already finished (skipped), "
              f"{len(summary.failed_shards)} failed; engine {summary.engine} with {summary.workers} worker(s) → {out_dir / 'shards'}")
    for shard_id, why in sorted(summary.failed_shards.items()):
        console.print(f"[red]shard failed[/] {shard_id}: {escape(redact(why))}", highlight=False)
    exit_for(summary)


def exit_for(summary) -> None:
    """Exit 1 when a shard failed for a non-transient reason, else 4 (with one line) when shards failed
    transiently; return when every shard finished."""
    if set(summary.failed_shards) - set(summary.transient_failures):
        raise typer.Exit(ExitCode.FAILED)
    line = summary.transient_failure_line()
    if line:
        console.print(f"[bold red]failed:[/] {escape(redact(line))}", highlight=False)
        raise typer.Exit(ExitCode.TRANSIENT)


def _run_with_progress(rows, out_dir, settings, run_annotation, unavailable, **kw):
    """Run `run_annotation` with a progress bar by videos (shards found finished count at once)."""
    from vidthinker.engine import EngineUnavailable
    from vidthinker.shards import FolderLocked

    with progress_bar("annotating videos", len(rows)) as bar:
        task = bar.task_ids[0]

        def done(row, records):
            failed = sum(not r.ok for r in records)
            bar.update(task, advance=1, status=escape(row.video_id) + (f" [red]{failed} errors" if failed else ""))

        def shard_done(result):
            if result.status == "skipped":
                bar.update(task, advance=result.videos, status=f"{result.shard_id} already finished")
            elif result.status == "failed":
                bar.update(task, status=f"[red]{result.shard_id} failed")

        try:
            return run_annotation(rows, out_dir, settings, on_video_done=done, on_shard_done=shard_done, **kw)
        except FolderLocked as error:
            raise fail(str(error), ExitCode.LOCKED) from None
        except unavailable as error:
            raise fail(str(error), ExitCode.UNAVAILABLE) from None
        except (ValueError, EngineUnavailable) as error:  # repeated video ids; stale shards; no Ray, or no cluster at --ray-address
            raise fail(str(error)) from None


def _print_summary(summary, out_dir: Path) -> None:
    table = Table("stage", "calls", "prompt tok", "completion tok", "model s", "wall s", title=f"run {summary.run_id} → {out_dir}")
    for stage, stats in summary.stages.items():
        table.add_row(stage, str(stats.calls), str(stats.prompt_tokens), str(stats.completion_tokens), f"{stats.model_latency_s:.1f}", f"{stats.wall_s:.1f}")
    out.print(table)
    by_class = ", ".join(f"{n} {c}" for c, n in sorted(summary.errors_by_class.items()))
    out.print(f"{summary.records} records ({summary.ok} ok, {summary.errors} errors{f': {by_class}' if by_class else ''}) "
              f"over {summary.videos} videos in {summary.wall_s:.1f} s")
    if summary.repaired:
        out.print("repaired: " + ", ".join(f"{n} record(s) with {c} errors" for c, n in sorted(summary.repaired.items())))
    for reason, count in sorted(summary.errors_by_reason.items()):
        out.print(f"  errors {reason}: {count}")


def demo(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path("runs/demo"),
    videos: Annotated[int, typer.Option("--videos", "-n", help="Synthetic videos to make.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic set.")] = 0,
    max_seconds: Annotated[float, typer.Option(help="Longest synthetic video, in seconds.")] = 30.0,
) -> None:
    """The main job end to end on embedded defaults (offline models, local engine).

    Synthesises grounded videos, annotates them with the three stages on the offline models (real
    registry weights), exports VideoITG JSON, and scores the annotations against the synthetic ground
    truth. Writes OUT/synth/, OUT/annotate/ (shards, summary.json, quality/), OUT/videoitg.json and
    OUT/quality.json. Look at it with `vidthinker dashboard --out OUT`.
    """
    from vidthinker.engine import run_annotation
    from vidthinker.formats import export_videoitg_json, iter_records, read_manifest
    from vidthinker.models import ModelUnavailable
    from vidthinker.quality.agreement import ground_truth_agreement
    from vidthinker.quality.run import compute_run_quality
    from vidthinker.synth import generate_synthetic_set

    settings = command_settings(ctx)
    cfg = settings.synth
    with progress_bar("synthesising videos", videos) as bar:
        manifest_path = generate_synthetic_set(
            out_dir / "synth", videos, seed, min_seconds=min(cfg.min_seconds, max_seconds), max_seconds=max_seconds,
            width=cfg.width, height=cfg.height, fps=cfg.fps,
            progress=lambda m: bar.update(bar.task_ids[0], advance=1, status=m),
        )
    rows = read_manifest(manifest_path)
    summary = _run_with_progress(rows, out_dir / "annotate", settings, run_annotation, ModelUnavailable)
    _print_summary(summary, out_dir / "annotate")
    records = list(iter_records(out_dir / "annotate" / "shards"))
    exported = export_videoitg_json(records, out_dir / "videoitg.json")
    agreement = ground_truth_agreement(records, rows)
    compute_run_quality(out_dir / "annotate", manifest=rows)  # quality/*.json: what the dashboard shows
    (out_dir / "quality.json").write_text(json.dumps({k: v.model_dump() for k, v in agreement.items()}, indent=1) + "\n")
    table = Table("instruction type", "records", "frame P", "frame R", "clip P", "clip R", "type acc", "frames/QA",
                  title="agreement with the synthetic ground truth")
    for key, a in agreement.items():
        table.add_row(key, str(a.records), f"{a.frame_precision:.2f}", f"{a.frame_recall:.2f}", f"{a.clip_precision:.2f}",
                      f"{a.clip_recall:.2f}", f"{a.type_accuracy:.2f}", f"{a.mean_frames:.1f}")
    out.print(table)
    out.print(f"exported {exported} records → {out_dir / 'videoitg.json'}")
