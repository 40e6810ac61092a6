"""Typer-compatible command function (registered by the CLI as `vidthinker train`; `vidthinker select` is
`eval.commands.select_command`, since it reads benchmark files).

Parameters use `Annotated[..., typer.Option(...)]`, so the functions are also plain Python functions
with ordinary defaults (tests call them directly).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer


def train_command(
    shards: Annotated[
        Path, typer.Argument(help="Folder of VideoITG record parquet shards (or a VideoITG-40K JSON file).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder: checkpoints, metrics.jsonl and the final model.")
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Training config (.yaml/.json): TrainConfig fields, `model` = preset name or SelectorConfig.",
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Model preset overriding the config's model: tiny, tiny-b, offline, qwen2-7b, qwen2-1.5b."
        ),
    ] = None,
    init_from: Annotated[
        Path | None, typer.Option(help="Start from this selector checkpoint instead of a fresh model.")
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Epochs over the records (paper: 1).")] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps (overrides --epochs for the schedule).")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate of projector + LM (paper: 2e-5).")] = None,
    head_lr: Annotated[
        float | None, typer.Option(help="Learning rate of the scoring head (paper: 2e-4).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Samples per micro-batch per process.")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Micro-batches per optimizer step.")] = None,
    gradient_checkpointing: Annotated[
        bool | None,
        typer.Option(
            "--gradient-checkpointing/--no-gradient-checkpointing",
            help="Recompute LM activations in backward to save memory.",
        ),
    ] = None,
    compile_blocks: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile each transformer block (faster GPU steps after a one-off compile).",
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="Under torchrun: 'ddp' (a full copy per GPU) or 'fsdp' (weights, gradients and AdamW "
            "sharded over GPUs: needed for 7B selectors on 80 GB cards).",
        ),
    ] = None,
    save_every: Annotated[
        int | None, typer.Option(help="Save a resumable checkpoint every N steps (0: at the end only).")
    ] = None,
    video_root: Annotated[
        Path | None, typer.Option(help="Base folder for relative video paths in the records.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume", help="Continue from the newest checkpoint in --out if there is one."
        ),
    ] = True,
    seed: Annotated[int | None, typer.Option(help="Seed for init, data order and token budgets.")] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Force a device (e.g. cpu); default: CUDA when available. Under torchrun each process takes its LOCAL_RANK GPU."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    drop_duplicates: Annotated[
        bool,
        typer.Option(
            "--drop-duplicates",
            help="A record id in two shard files (two runs wrote one folder) is an error naming both files; "
            "with this flag the first copy is kept.",
        ),
    ] = False,
) -> None:
    """Train the VideoITG frame selector on record shards (1 process, or DDP under `torchrun`)."""
    from trainer.config import load_train_config, preset_config
    from trainer.train import train

    overrides = dict(
        init_from=str(init_from) if init_from else None,
        epochs=epochs,
        max_steps=max_steps,
        lr=lr,
        head_lr=head_lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        gradient_checkpointing=gradient_checkpointing,
        compile=compile_blocks,
        strategy=strategy,
        save_every_steps=save_every,
        video_root=str(video_root) if video_root else None,
        seed=seed,
    )
    cfg = load_train_config(config, **overrides)
    if preset:
        cfg.model = preset_config(preset)
    cfg.resume = resume
    cfg.progress = progress
    from vidthinker.shards import DuplicateRecordsError, unique_records_source

    try:
        with unique_records_source(shards, drop=drop_duplicates) as source:
            result = train(source, out, cfg, device=device)
    except DuplicateRecordsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    summary = {
        "out": str(result.out_dir),
        "step": result.step,
        "total_steps": result.total_steps,
        "completed": result.completed,
        "final_loss": result.losses[-1] if result.losses else None,
        "data_version": result.data_version,
        "samples": result.samples,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
        "elapsed_s": round(result.elapsed_s, 2),
    }
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun: one summary, not one per process
        typer.echo(json.dumps(summary))
