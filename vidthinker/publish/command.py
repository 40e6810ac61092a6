"""`vidthinker publish`: the command (registered by vidthinker.cli), its options, output and exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidthinker.publish import DEFAULT_LICENSE
from vidthinker.publish.errors import PublishError, ReviewGateError


def publish(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (with shards/) or the annotate DAG's out_dir.")],
    repo_id: Annotated[str, typer.Option("--repo-id", "-r", help="Dataset repository on the hub, e.g. my-org/videoitg-annotations.")],
    revision: Annotated[str | None, typer.Option(help="Branch to publish to (created from main when missing). Default: main.")] = None,
    private: Annotated[bool, typer.Option("--private/--public", help="Visibility when the repository is created.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Build the layout and show what would change; upload nothing.")] = False,
    license: Annotated[str, typer.Option(help="License id for the dataset card.")] = DEFAULT_LICENSE,
    video_root: Annotated[Path | None, typer.Option(help="Publish video paths relative to this folder (default: folder/file name).")] = None,
    tag: Annotated[str | None, typer.Option(help="Tag for this version (default: v<N+1>).")] = None,
    data_file_mb: Annotated[float | None, typer.Option(min=0.001, help="Size of a published data file in MB (shards are repacked; default VIDTHINKER_PUBLISH__DATA_FILE_MB or 256).")] = None,
) -> None:
    """Publish the good records of a run as a Hugging Face dataset (data/train-*.parquet, dataset card
    with statistics, stats/quality.json), uploading only files whose content changed, and tag the version.

    Token: HF_TOKEN or `hf auth login`. HF_ENDPOINT selects another hub. Exit 0 on success, 2 on bad
    input or a release the review gate refuses (setting publish.min_reviewed_frame_precision: the reviewed
    frame precision's Wilson 95% lower bound must reach it), 1 when the hub refuses or cannot be reached.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from vidthinker.config import ConfigError, load_command_settings
    from vidthinker.publish.layout import data_file_size
    from vidthinker.publish.upload import publish_dataset
    from vidthinker.quality.runs import shard_paths
    from vidthinker.redact import redact
    from vidthinker.schema import SchemaError
    from vidthinker.shards import MOVE_REMEDY, DuplicateRecordsError, check_duplicate_ids

    console = Console(stderr=True)
    try:
        settings = load_command_settings(ctx, publish__data_file_mb=data_file_mb)
    except ConfigError as error:
        console.print(f"[bold red]error:[/] {escape(redact(str(error)))}", highlight=False)
        raise typer.Exit(2) from None
    try:
        check_duplicate_ids(shard_paths(out), remedy=MOVE_REMEDY)  # a published dataset must not hold a record twice
    except (DuplicateRecordsError, SchemaError) as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None
    try:
        result = publish_dataset(out, repo_id, revision=revision, private=private, dry_run=dry_run, license=license,
                                 video_root=video_root, tag=tag, data_file_bytes=data_file_size(settings),
                                 min_reviewed_frame_precision=settings.publish.min_reviewed_frame_precision)
    except PublishError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        bad_input = isinstance(error, ReviewGateError) or "no parquet shards" in str(error) or "must look like" in str(error)
        raise typer.Exit(2 if bad_input else 1) from None
    table = Table("file", "action", "bytes", "source", title=f"{repo_id}@{result.revision} ({result.status})")
    for f in result.files:
        table.add_row(f.path, f.action, f"{f.size:,}", f.source or "")
    Console().print(table)
    Console().print(f"{result.records} records in {result.data_files} data files · uploaded {result.uploaded_bytes:,} bytes"
                    + (f" · commit {result.commit[:12]}" if result.commit else "") + (f" · tag {result.tag}" if result.tag else "")
                    + (f" · {result.note}" if result.note else "") + f"\nlayout: {result.layout}")
