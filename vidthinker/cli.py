"""`vidthinker`: the command line. Commands stay thin: they parse, validate settings, show progress,
and call the library. Heavy imports (torch, Ray, Airflow) happen inside the commands that need them,
so `vidthinker --help` answers at once."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from vidthinker import __version__
from vidthinker.config import ConfigError, Settings, load_command_settings
from vidthinker.redact import install_log_redaction, redact, redact_exception
from vidthinker.schema import SchemaError

class _RedactingTyper(typer.Typer):
    """typer.Typer whose uncaught exceptions (printed by typer as a traceback ending in their message)
    are redacted first, with their causes (vidthinker.redact)."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as error:
            seen, link = set(), error
            while link is not None and id(link) not in seen:
                seen.add(id(link))
                redact_exception(link)
                link = link.__cause__ or link.__context__
            raise


app = _RedactingTyper(
    name="vidthinker",
    help=(
        "Build instruction-grounded video datasets (VideoITG format) and train/benchmark the VideoITG "
        "frame selector.\n\nSettings come from --config FILE (TOML/YAML), VIDTHINKER_SECTION__KEY "
        "environment variables and --set section.key=value, in rising priority. "
        "Run `vidthinker config show` to see the values in force."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the settings in force.", no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console(stderr=True)
out = Console()


class ExitCode:
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    UNAVAILABLE = 3  # a model endpoint cannot be used at start-up
    TRANSIENT = 4  # shards failed transiently (endpoint/infrastructure): rerun the same command to repair them
    LOCKED = 5  # another run is writing the out folder


def _fail(message: str, code: int = ExitCode.BAD_INPUT) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(redact(message))}", highlight=False)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"vidthinker {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Optional[Path], typer.Option("--config", "-c", help="Settings file (.toml/.yaml). Env: VIDTHINKER_CONFIG.")
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", "-s", help="Override one setting, e.g. --set video.clip_seconds=4 (repeatable)."),
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    install_log_redaction()  # every log line of every command (and library) goes through vidthinker.redact
    ctx.obj = {"config": config, "overrides": set_ or []}


def _settings(ctx: typer.Context, **command_overrides: object) -> Settings:
    """vidthinker.config.load_command_settings; a bad setting exits 2 with the message."""
    try:
        return load_command_settings(ctx, **command_overrides)
    except ConfigError as error:
        raise _fail(str(error)) from None


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Progress]:
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        bar.add_task(description, total=total, status="")
        yield bar


# --------------------------------------------------------------------------- synth


@app.command()
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

    settings = _settings(ctx, synth__videos=videos, synth__seed=seed, synth__min_seconds=min_seconds, synth__max_seconds=max_seconds)
    cfg = settings.synth
    with progress_bar("synthesising videos", cfg.videos) as bar:
        def advance(message: str) -> None:
            bar.update(bar.task_ids[0], advance=1, status=message)

        manifest = generate_synthetic_set(
            out_dir, cfg.videos, cfg.seed, min_seconds=cfg.min_seconds, max_seconds=cfg.max_seconds,
            width=cfg.width, height=cfg.height, fps=cfg.fps, progress=advance,
        )
    out.print(f"wrote {cfg.videos} videos and {manifest}")


# --------------------------------------------------------------------------- probe / plan


@app.command()
def probe(
    ctx: typer.Context,
    videos: Annotated[list[Path], typer.Argument(help="Video files to probe.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """Print duration, fps, frame count, size, codec and rotation of video files."""
    import dataclasses

    from vidthinker.video import VideoError
    from vidthinker.video import probe as probe_video

    settings = _settings(ctx)
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


@app.command()
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
    from vidthinker.schema import ClipPlan, write_parquet

    settings = _settings(ctx, video__clip_seconds=clip_seconds, video__grid_fps=grid_fps)
    try:
        rows = read_manifest(manifest)
    except SchemaError as error:
        raise _fail(str(error)) from None
    with progress_bar("planning clips", len(rows)) as bar:
        plans = plan_manifest(rows, settings.video, lambda p: bar.update(bar.task_ids[0], advance=1, status=p.video_id))
    write_parquet(plans, ClipPlan, out_file)
    bad = [p for p in plans if p.error]
    clips = sum(len(p.clips) for p in plans)
    out.print(f"planned {len(plans) - len(bad)}/{len(plans)} videos into {clips} clips → {out_file}")
    for p in bad:
        console.print(f"[yellow]unusable video[/] {p.video_id}: {escape(p.error or '')}", highlight=False)


# --------------------------------------------------------------------------- annotate


class Backend(StrEnum):
    offline = "offline"
    openai = "openai"


class CaptionMode(StrEnum):
    shared = "shared"
    per_question = "per_question"


class EngineName(StrEnum):
    local = "local"
    ray = "ray"


@app.command()
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

    settings = _settings(
        ctx, models__backend=backend.value if backend else None, models__base_url=base_url, models__caption_model=model,
        annotate__caption_mode=caption_mode.value if caption_mode else None, annotate__oracle_captions=oracle,
        engine__name=engine.value if engine else None, engine__ray_address=ray_address, engine__shard_size=shard_size,
        engine__workers=workers, engine__redo_stale=True if redo_stale else None,
    )
    try:
        rows = read_manifest(manifest)
    except SchemaError as error:
        raise _fail(str(error)) from None
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
            raise _fail(str(error), ExitCode.LOCKED) from None
        except unavailable as error:
            raise _fail(str(error), ExitCode.UNAVAILABLE) from None
        except (ValueError, EngineUnavailable) as error:  # repeated video ids; stale shards; no Ray, or no cluster at --ray-address
            raise _fail(str(error)) from None


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


# --------------------------------------------------------------------------- import / export / validate


class ImportFormat(StrEnum):
    llava_video = "llava-video"
    videoitg_json = "videoitg-json"


class ExportFormat(StrEnum):
    videoitg_json = "videoitg-json"


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="File to import; for llava-video also a folder (every *_qa_processed.json under it).")],
    fmt: Annotated[ImportFormat, typer.Option("--format", "-f", help="llava-video → manifest; videoitg-json → records.")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Manifest (.jsonl/.parquet) or records shard (.parquet).")],
    video_root: Annotated[Optional[Path], typer.Option(help=(
        "llava-video: the folder the items' video paths are relative to (default: each file's own folder, "
        "the subset folder of the release; for a source folder, DIR mirrors it: DIR/<subset>/<video>). "
        "videoitg-json: joined onto the rows' relative video paths (default: kept as released)."))] = None,
) -> None:
    """Import LLaVA-Video-178K QA files (as released) as a manifest, or VideoITG-40K JSON as records."""
    from vidthinker import formats
    from vidthinker.schema import VideoITGRecord, write_parquet

    try:
        if fmt is ImportFormat.llava_video:
            files = formats.llava_video_files(source)
            rows = formats.import_llava_video(source, video_root=video_root)
            formats.write_manifest(rows, out_file)
            out.print(f"imported {sum(len(r.qa) for r in rows)} QA pairs over {len(rows)} videos "
                      f"from {len(files)} file(s) → {out_file}")
        else:
            records = formats.import_videoitg_json(source, video_root=video_root)
            write_parquet(records, VideoITGRecord, out_file)
            out.print(f"imported {len(records)} records → {out_file}")
    except SchemaError as error:
        raise _fail(str(error)) from None


@app.command()
def export(
    shards: Annotated[Path, typer.Option("--shards", help="Folder of record shards (parquet), or one shard.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = ExportFormat.videoitg_json,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="File to write.")] = Path("videoitg.json"),
    include_errors: Annotated[bool, typer.Option(help="Also export records that carry an error.")] = False,
    video_root: Annotated[Optional[Path], typer.Option(help=(
        "Write video paths relative to this folder, as the release does (pass the folder that holds "
        "LLaVA-Video-178K/); a video outside it is an error."))] = None,
    manifest: Annotated[Optional[Path], typer.Option(help=(
        "Use this manifest's folder as --video-root (relative manifest paths are relative to it)."))] = None,
    drop_duplicates: Annotated[bool, typer.Option("--drop-duplicates", help=(
        "A record id in two shard files (two runs wrote one folder) is an error naming both files; with this "
        "flag the first copy is kept."))] = False,
) -> None:
    """Export record shards as VideoITG-40K JSON: its exact columns and values ("Yes"/"No", relative videos)."""
    from vidthinker.formats import export_videoitg_json
    from vidthinker.shards import DuplicateRecordsError, unique_records_source

    if video_root is not None and manifest is not None:
        raise _fail("give --video-root or --manifest, not both")
    root = video_root if manifest is None else manifest.absolute().parent
    absolute: list[str] = []
    try:
        with unique_records_source(shards, drop=drop_duplicates) as source:
            count = export_videoitg_json(source, out_file, include_errors=include_errors,
                                         video_root=root, absolute=absolute)
    except (SchemaError, DuplicateRecordsError) as error:
        raise _fail(str(error)) from None
    out.print(f"exported {count} records → {out_file}")
    if absolute:
        console.print(f"[yellow]warning[/] {len(absolute)} records keep an absolute local video path "
                      f"(e.g. {escape(absolute[0])}), which resolves on this machine only; pass --video-root DIR "
                      "to write them relative to DIR like the release", highlight=False)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Parquet files, shard folders or run folders (with shards/) to check.")],
    table: Annotated[str, typer.Option(help="Expected table: ManifestRow, ClipPlan, ClipCaption, ClipRetrieval, FrameLocalization, VideoITGRecord.")] = "VideoITGRecord",
    jobs: Annotated[Optional[int], typer.Option(min=1, help="Files checked at once, each in its own process (default: CPUs, at most 4).")] = None,
) -> None:
    """Check parquet files or whole run folders against the data contract, shard by shard.

    Every row is validated; record shards are also checked against their manifests (counts, videos,
    content hash). Every bad file is listed with the reason; exit 1 when any is bad.
    """
    from vidthinker.schema import TABLE_MODELS
    from vidthinker.validate import default_jobs, validate_paths

    model = TABLE_MODELS.get(table)
    if model is None:
        raise _fail(f"--table {table!r}: unknown table; known: {sorted(TABLE_MODELS)}")

    def report(check) -> None:
        if not check.ok:
            console.print(f"[bold red]bad:[/] {escape(str(check.path))}: {escape(check.problem)}", highlight=False, soft_wrap=True)

    try:
        result = validate_paths(paths, model, on_file=report, jobs=jobs or default_jobs())
    except SchemaError as error:
        raise _fail(str(error)) from None
    for skipped in result.skipped:
        console.print(f"skipped {escape(str(skipped))}: a shard manifest, not a parquet input", highlight=False, soft_wrap=True)
    bad = result.bad
    if len(result.files) == 1 and not bad:
        out.print(f"{result.files[0].path}: {result.rows} valid {table} rows")
    else:
        checked = sum(1 for f in result.files if f.manifest)
        out.print(f"{len(result.files) - len(bad)} of {len(result.files)} files good: {result.rows} valid {table} rows"
                  + (f", {checked} matched against their manifests" if checked else ""))
    if bad:
        raise _fail(f"{len(bad)} bad file(s), listed above", ExitCode.FAILED)


# --------------------------------------------------------------------------- config


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the settings in force (after file, environment and --set) as JSON."""
    out.print_json(json.dumps(_settings(ctx.parent or ctx).dump()))


# --------------------------------------------------------------------------- demo (the main job)


@app.command()
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

    settings = _settings(ctx)
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


# --------------------------------------------------------------------------- commands defined beside their code


def _register(name: str, module: str, function: str, help_text: str) -> None:
    """Register a command function that lives beside its code; those modules import torch, Ray or
    matplotlib only inside the function, so `vidthinker --help` stays fast."""
    import importlib

    target = getattr(importlib.import_module(module), function)
    app.command(name=name, help=help_text)(target)


_register("train", "trainer.commands", "train_command", "Train the VideoITG selector on record shards (see --help).")
_register("select", "eval.commands", "select_command", "Score a benchmark split or manifest with a selector checkpoint; write lmms-eval files (integer doc ids): results.jsonl, frame_indices.jsonl, doc_ids.jsonl.")
_register("eval", "eval.commands", "eval_command", "Compare frame selectors (grounding metrics, optional Video-LLM QA); write report.md/report.json.")
_register("quality", "vidthinker.quality.command", "quality_command", "Compute and store quality figures of a run (per shard and per run, with drift).")
_register("dashboard", "vidthinker.dashboard", "dashboard", "Serve the annotation-quality dashboard over a folder of runs.")
_register("serve-args", "vidthinker.serving", "serve_args_command", "Print the vllm serve flags (--max-model-len, --limit-mm-per-prompt) the settings need.")
_register("publish", "vidthinker.publish.command", "publish", "Publish record shards as a Hugging Face dataset (uploads only what changed; tags the version).")

from vidthinker.orchestration.local_stack import app as _airflow_app  # noqa: E402 - imports typer only

app.add_typer(_airflow_app, name="airflow", help="A local Airflow stack for the DAGs on loopback: up, down, status.")


def run() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
