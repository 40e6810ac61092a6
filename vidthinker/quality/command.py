"""`vidthinker quality`: compute a run's quality figures, store them in RUN/quality/ and print a summary
(registered in `vidthinker.cli`). Imports typer only at the top: the figures load when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def quality_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (with shards/) to measure.")],
    manifest: Annotated[Path | None, typer.Option("--manifest", "-m", help="Manifest with ground truth (default: found beside the run or its synthetic videos).")] = None,
    previous: Annotated[int, typer.Option(help="Compare with up to this many earlier sibling runs (drift).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full RunQuality JSON instead of a summary.")] = False,
) -> None:
    """Compute a run's quality figures and store them in RUN/quality/ (run.json and one file per shard).

    Figures: error rate by stage, reason and class (transient / permanent), frames and clips per QA, instruction-type mix, none/all
    retrievals, caption length, tokens/calls/latency per stage, near-duplicate questions, agreement
    with ground truth where the manifest has it, and drift (PSI / JS) against earlier runs.
    """
    from rich.console import Console
    from rich.table import Table

    from vidthinker.quality.run import compute_run_quality
    from vidthinker.quality.runs import RUN_FILE, previous_runs, quality_dir, shard_paths
    from vidthinker.schema import SchemaError
    from vidthinker.shards import MOVE_REMEDY, DuplicateRecordsError, check_duplicate_ids

    console = Console()
    try:
        check_duplicate_ids(shard_paths(out), remedy=MOVE_REMEDY)  # figures over duplicated records would be wrong
        result = compute_run_quality(out, manifest=manifest, previous_runs=previous_runs(out, previous) if previous else ())
    except (SchemaError, OSError, DuplicateRecordsError) as error:
        Console(stderr=True).print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        console.print_json(result.model_dump_json())
        return
    console.print(f"run {result.name}: {result.records} records ({result.ok} ok, {result.errors} errors, "
                  f"{100 * result.error_rate:.1f}%) over {result.videos} videos in {len(result.shards)} shards")
    console.print(f"frames/QA p50 {result.frames_per_qa.quantiles.get('p50', 0):g} · clips/QA p50 "
                  f"{result.clips_per_qa.quantiles.get('p50', 0):g} · none {100 * result.retrieval.none_share:.1f}% · "
                  f"all {100 * result.retrieval.all_share:.1f}% · tokens/record {result.tokens_per_record.mean or 0:.0f}")
    table = Table("stage", "calls", "prompt tok", "completion tok", "model s", "errors")
    for stage, cost in result.stages.items():
        errors = result.errors_by_stage.get(stage)
        table.add_row(stage, str(cost.calls), str(cost.prompt_tokens), str(cost.completion_tokens),
                      f"{cost.latency_s:.1f}", str(errors.errors if errors else 0))
    console.print(table)
    if result.errors_by_class:
        console.print("errors by class: " + ", ".join(f"{k} {n}" for k, n in result.errors_by_class.items()))
    if result.agreement and "all" in result.agreement:
        a = result.agreement["all"]
        console.print(f"ground truth ({a.records}): frame P {a.frame_precision:.2f} R {a.frame_recall:.2f} · "
                      f"clip P {a.clip_precision:.2f} R {a.clip_recall:.2f} · type acc {a.type_accuracy:.2f}")
    if result.drift:
        flagged = [f"{c.metric} {c.level}" for c in result.drift.checks if c.level != "ok"]
        console.print(f"drift vs {', '.join(result.drift.baseline_runs)}: {result.drift.level}"
                      + (f" ({'; '.join(flagged)})" if flagged else ""))
    console.print(f"→ {quality_dir(Path(out)) / RUN_FILE}")
