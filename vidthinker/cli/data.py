"""Data in and out: `import` (LLaVA-Video-178K QA files as a manifest, VideoITG-40K JSON as records),
`export` (record shards as VideoITG-40K JSON) and `validate` (files or run folders against the data
contract). The formats and schema (pyarrow) load inside each command."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from vidthinker.cli.common import ExitCode, console, fail, out


class ImportFormat(StrEnum):
    llava_video = "llava-video"
    videoitg_json = "videoitg-json"


class ExportFormat(StrEnum):
    videoitg_json = "videoitg-json"


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
    from vidthinker.schema import SchemaError, VideoITGRecord, write_parquet

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
        raise fail(str(error)) from None


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
    from vidthinker.schema import SchemaError
    from vidthinker.shards import DuplicateRecordsError, unique_records_source

    if video_root is not None and manifest is not None:
        raise fail("give --video-root or --manifest, not both")
    root = video_root if manifest is None else manifest.absolute().parent
    absolute: list[str] = []
    try:
        with unique_records_source(shards, drop=drop_duplicates) as source:
            count = export_videoitg_json(source, out_file, include_errors=include_errors,
                                         video_root=root, absolute=absolute)
    except (SchemaError, DuplicateRecordsError) as error:
        raise fail(str(error)) from None
    out.print(f"exported {count} records → {out_file}")
    if absolute:
        console.print(f"[yellow]warning[/] {len(absolute)} records keep an absolute local video path "
                      f"(e.g. {escape(absolute[0])}), which resolves on this machine only; pass --video-root DIR "
                      "to write them relative to DIR like the release", highlight=False)


def validate(
    paths: Annotated[list[Path], typer.Argument(help="Parquet files, shard folders or run folders (with shards/) to check.")],
    table: Annotated[str, typer.Option(help="Expected table: ManifestRow, ClipPlan, ClipCaption, ClipRetrieval, FrameLocalization, VideoITGRecord.")] = "VideoITGRecord",
    jobs: Annotated[Optional[int], typer.Option(min=1, help="Files checked at once, each in its own process (default: CPUs, at most 4).")] = None,
) -> None:
    """Check parquet files or whole run folders against the data contract, shard by shard.

    Every row is validated; record shards are also checked against their manifests (counts, videos,
    content hash). Every bad file is listed with the reason; exit 1 when any is bad.
    """
    from vidthinker.schema import TABLE_MODELS, SchemaError
    from vidthinker.validate import default_jobs, validate_paths

    model = TABLE_MODELS.get(table)
    if model is None:
        raise fail(f"--table {table!r}: unknown table; known: {sorted(TABLE_MODELS)}")

    def report(check) -> None:
        if not check.ok:
            console.print(f"[bold red]bad:[/] {escape(str(check.path))}: {escape(check.problem)}", highlight=False, soft_wrap=True)

    try:
        result = validate_paths(paths, model, on_file=report, jobs=jobs or default_jobs())
    except SchemaError as error:
        raise fail(str(error)) from None
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
        raise fail(f"{len(bad)} bad file(s), listed above", ExitCode.FAILED)
