"""Selector training: `train(shards_dir, out_dir, config)`.

(Over 500 lines: the loop with its distributed set-up, checkpoints and resume, which share its state.)

One process (CPU or one GPU) or, under `torchrun`, DDP or FSDP (`strategy`, see trainer/sharding.py;
NCCL on GPUs, gloo on CPU). bf16 autocast on CUDA,
fp32 on CPU; optional gradient checkpointing; AdamW with its own lr for the head; cosine schedule with
linear warmup; resumable checkpoints (model, optimizer, scheduler, step, RNG states) under
`<out>/checkpoints/step-N/`; metrics as JSONL in `<out>/metrics.jsonl`; the final model in Hugging Face
form (`<out>/config.json` + `<out>/model.safetensors`) with the data version (hash of the record files)
in its config metadata.

Data order: epoch e uses a permutation seeded by (seed, e), split across ranks like DistributedSampler
(padded to equal length); the token budget of micro-batch m is drawn from a generator seeded by
(seed, rank, m). Both are pure functions of their indices, so a resumed run sees exactly the batches
the uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from trainer.config import TrainConfig, load_train_config
from trainer.data import (
    Example,
    FeatureCache,
    LoadReport,
    VideoFeatures,
    build_examples,
    data_version,
    load_samples,
    selector_loss,
)
from trainer.model import FrameSelector
from trainer.sharding import (
    full_grad_norm,
    full_model_state,
    full_optimizer_state,
    load_full_optimizer_state,
    shard_selector,
)

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
STATE_NAME = "trainer_state.json"


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    total_steps: int
    completed: bool
    losses: list[float] = field(default_factory=list)  # per optimizer step (mean over ranks)
    data_version: str = ""
    checkpoint: Path | None = None
    elapsed_s: float = 0.0
    samples: int = 0
    cache_stats: dict[str, Any] = field(default_factory=dict)
    resumed_from: int | None = None
    # the trained FrameSelector (unwrapped), on this process; under FSDP its weights are this rank's shards
    model: Any = field(default=None, repr=False)
    skipped: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- distributed


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup_distributed(device: str | None = None) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    if dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device(device or "cpu")
    return DistInfo(rank, world, local_rank, dev, owns)


def _barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def _mean_across(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    tensor = torch.tensor(
        [value], dtype=torch.float64, device=info.device if info.device.type == "cuda" else "cpu"
    )
    dist.all_reduce(tensor)
    return float(tensor.item()) / info.world


# --------------------------------------------------------------------------- schedule and order


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    from transformers import get_cosine_schedule_with_warmup

    warmup = int(math.ceil(warmup_ratio * total_steps))
    return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def epoch_order(n: int, epoch: int, seed: int, rank: int, world: int) -> list[int]:
    """This rank's sample indices for an epoch (DistributedSampler-style: shuffled, padded, strided)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    per_rank = math.ceil(n / world)
    order += order[: per_rank * world - n]
    return order[rank::world]


def micro_budget(
    micro_index: int, seed: int, rank: int, budget_range: tuple[int, int] | None, default: int
) -> int:
    if budget_range is None:
        return default
    rng = random.Random(f"{seed}/{rank}/{micro_index}")
    return rng.randint(budget_range[0], budget_range[1])


def build_optimizer(model: FrameSelector, config: TrainConfig) -> torch.optim.AdamW:
    head = [p for p in model.head.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head}
    body = [p for p in model.trainable_parameters() if id(p) not in head_ids]
    groups = [
        {"params": body, "lr": config.lr, "name": "body"},
        {"params": head, "lr": config.head_lr, "name": "head"},
    ]
    kwargs: dict[str, Any] = {"weight_decay": config.weight_decay, "betas": (0.9, 0.999), "eps": 1e-8}
    if model.device.type == "cuda":
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


# --------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    root = Path(out_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / STATE_NAME).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def save_checkpoint(
    out_dir: Path,
    step: int,
    model: FrameSelector,
    optimizer,
    scheduler,
    info: DistInfo,
    state: dict[str, Any],
    keep: int,
    sharded: bool = False,
) -> Path:
    """A resumable checkpoint; with `sharded` (FSDP) every rank takes part in gathering the full state."""
    final = out_dir / CHECKPOINT_DIR / f"step-{step:08d}"
    # A checkpoint is a folder that every DDP/FSDP rank writes into between barriers, so it needs a
    # temporary name all ranks agree on; vidthinker.io replaces single files under unique mkstemp names,
    # so the folder is swapped here (written last: the state file; then one os.replace by rank 0).
    tmp = out_dir / CHECKPOINT_DIR / f".tmp-step-{step:08d}"
    if info.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier(info)
    torch.save(_rng_state(), tmp / f"rng_state_rank{info.rank}.pt")
    weights = full_model_state(model) if sharded else None
    optim_state = full_optimizer_state(model, optimizer) if sharded else None
    if info.is_main:
        model.save_pretrained(tmp, state_dict=weights)
        torch.save(optim_state if sharded else optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    _barrier(info)
    if info.is_main:
        (tmp / STATE_NAME).write_text(json.dumps(state, indent=2) + "\n")  # written last: marks complete
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        older = sorted((p for p in final.parent.glob("step-*") if p != final), key=lambda p: p.name)
        for stale in older[: max(0, len(older) - max(0, keep - 1))]:
            shutil.rmtree(stale, ignore_errors=True)
    _barrier(info)
    return final


# --------------------------------------------------------------------------- the loop


def _progress(enabled: bool, total: int, start: int):
    if not enabled:
        return None, None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
    task = progress.add_task("train", total=total, completed=start, info="")
    return progress, task


def _collate(batch: list[Example], features: VideoFeatures):
    feats = [features.get(ex.sample.video) for ex in batch]
    ids = [ex.input_ids for ex in batch]
    max_t = max(int(ex.labels.shape[0]) for ex in batch)
    labels = torch.zeros(len(batch), max_t)
    for i, ex in enumerate(batch):
        labels[i, : ex.labels.shape[0]] = ex.labels
    return feats, ids, labels


def train(
    shards_dir: str | Path,
    out_dir: str | Path,
    config: TrainConfig | dict | str | Path | None = None,
    *,
    device: str | None = None,
) -> TrainResult:
    """Train a selector on record shards (or VideoITG JSON); returns what happened. See module doc."""
    if config is None or isinstance(config, (str, Path)):
        config = load_train_config(config)
    elif isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    out_dir = Path(out_dir)
    info = setup_distributed(device)
    started = time.perf_counter()
    try:
        return _train(Path(shards_dir), out_dir, config, info, started)
    finally:
        if info.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    shards_dir: Path, out_dir: Path, config: TrainConfig, info: DistInfo, started: float
) -> TrainResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)

    # data first (the shards' training index and a stat per video): missing videos stop the run before a
    # model is built or any feature is computed
    report = LoadReport()
    samples = load_samples(shards_dir, config.video_root, report, max_missing_share=config.max_missing_videos)
    if not samples:
        raise ValueError(
            f"{shards_dir}: no usable records ({report.records} read, {report.skipped_error} with "
            f"errors, {report.skipped_missing_video} with missing videos)"
        )

    resume_from = latest_checkpoint(out_dir) if config.resume else None
    if resume_from is not None:
        model = FrameSelector.from_pretrained(resume_from)
    elif config.init_from:
        model = FrameSelector.from_pretrained(config.init_from)
    else:
        model = FrameSelector(config.model)
    model.to(info.device)
    model.train()
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    cap = int(config.max_frames or model.config.max_frames)

    # ---- data
    version = data_version(shards_dir)
    failures: dict[str, str] = {}
    examples = build_examples(samples, model, cap, model.config.grid_fps, failures)
    cache = FeatureCache(config.feature_cache_dir or out_dir / "feature_cache")
    features = VideoFeatures(model, cache, cap, model.config.grid_fps, config.encode_batch_size)
    videos = sorted({ex.sample.video for ex in examples})
    for video in videos[info.rank :: info.world]:  # each rank encodes its share once; the rest read the cache
        try:
            features.get(video)
        except Exception as error:  # noqa: BLE001 - a video that does not decode is dropped, not fatal
            failures[video] = f"{type(error).__name__}: {error}"
            log.warning("dropping %s: %s", video, failures[video])
    if info.enabled:  # every rank drops the same videos
        gathered: list[dict[str, str]] = [{} for _ in range(info.world)]
        dist.all_gather_object(gathered, failures)
        for part in gathered:
            failures.update(part)
    examples = [ex for ex in examples if ex.sample.video not in failures]
    if not examples:
        raise ValueError(f"{shards_dir}: no trainable samples (video failures: {failures})")
    if failures and info.is_main:
        (out_dir / "data_failures.json").write_text(json.dumps(failures, indent=1) + "\n")
    _barrier(info)

    # ---- schedule
    per_rank = math.ceil(len(examples) / info.world)
    micro_per_epoch = math.ceil(per_rank / config.batch_size)
    steps_per_epoch = max(1, math.ceil(micro_per_epoch / config.grad_accum))
    total_steps = int(config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch)))

    use_bf16 = config.bf16 and info.device.type == "cuda"
    sharded = config.strategy == "fsdp" and info.enabled
    strategy = config.strategy if info.enabled else "single"  # what checkpoints and the model record
    if sharded:  # after the features are cached: the vision encoder stays whole (see trainer/sharding.py)
        shard_selector(model, info.device, info.world, use_bf16)
    if config.compile:  # after sharding, as FSDP2 asks
        log.info("compiled %d transformer blocks", model.compile_blocks())
    optimizer = build_optimizer(model, config)
    scheduler = cosine_with_warmup(optimizer, total_steps, config.warmup_ratio)
    step = 0
    if resume_from is not None:
        state = json.loads((resume_from / STATE_NAME).read_text())
        saved_strategy = state.get("strategy", "ddp") if state.get("world_size", 1) > 1 else None
        if saved_strategy and info.enabled and saved_strategy != config.strategy:
            raise ValueError(
                f"{resume_from} was written by a {saved_strategy} run; resume it with strategy={saved_strategy} "
                f"(its optimizer state is laid out for that), not {config.strategy}"
            )
        if state.get("data_version") != version:
            log.warning(
                "resuming %s trained on %s with data %s", resume_from, state.get("data_version"), version
            )
        if state.get("world_size", 1) != info.world:
            log.warning(
                "resuming a world-size-%s run with %s processes: the data order changes",
                state.get("world_size"),
                info.world,
            )
        optim_file = resume_from / "optimizer.pt"
        if sharded:
            load_full_optimizer_state(model, optimizer, torch.load(optim_file, map_location="cpu", weights_only=False))
        else:
            optimizer.load_state_dict(torch.load(optim_file, map_location=info.device, weights_only=False))
        scheduler.load_state_dict(torch.load(resume_from / "scheduler.pt", weights_only=False))
        rng_file = resume_from / f"rng_state_rank{info.rank}.pt"
        if rng_file.is_file():
            _set_rng_state(torch.load(rng_file, weights_only=False))
        step = int(state["step"])
        total_steps = int(state.get("total_steps", total_steps))

    net: torch.nn.Module = model
    if info.enabled and not sharded:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[info.local_rank] if info.device.type == "cuda" else None)
    metrics_path = out_dir / "metrics.jsonl"
    result = TrainResult(
        out_dir=out_dir,
        step=step,
        total_steps=total_steps,
        completed=False,
        data_version=version,
        samples=len(examples),
        resumed_from=step if resume_from is not None else None,
        skipped={
            "error_records": report.skipped_error,
            "missing_video": report.skipped_missing_video,
            "failed_videos": len(failures),
        },
    )
    stop_at = (
        total_steps if config.stop_after_steps is None else min(total_steps, int(config.stop_after_steps))
    )
    progress, task = _progress(config.progress and info.is_main, total_steps, step)
    orders: dict[int, list[int]] = {}

    def micro_batch(index: int) -> list[Example]:
        epoch, pos = divmod(index, micro_per_epoch)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = epoch_order(len(examples), epoch, config.seed, info.rank, info.world)
        order = orders[epoch]
        return [examples[i] for i in order[pos * config.batch_size : (pos + 1) * config.batch_size]]

    def state_dict(loss: float | None) -> dict[str, Any]:
        return {
            "step": step,
            "total_steps": total_steps,
            "micro_index": step * config.grad_accum,
            "epoch": step * config.grad_accum / micro_per_epoch,
            "data_version": version,
            "world_size": info.world,
            "strategy": strategy,
            "seed": config.seed,
            "last_loss": loss,
            "train_config": config.to_dict(),
            "saved_at": dt.datetime.now(dt.UTC).isoformat(),
        }

    last_loss = None
    with progress if progress is not None else contextlib.nullcontext():
        while step < stop_at:
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            step_loss, n_frames, n_samples = 0.0, 0, 0
            for accum in range(config.grad_accum):
                index = step * config.grad_accum + accum
                batch = micro_batch(index)
                feats, ids, labels = _collate(batch, features)
                budget = micro_budget(
                    index, config.seed, info.rank, config.budget_range, model.config.token_budget
                )
                sync = accum == config.grad_accum - 1 or not info.enabled
                if sharded:  # FSDP: reduce-scatter gradients only on the last micro-batch
                    model.set_requires_gradient_sync(sync)
                ctx = contextlib.nullcontext() if sync or sharded else net.no_sync()
                with ctx:
                    with torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                        out = net(feats, ids, budget=budget)
                    loss = selector_loss(
                        out.logits, labels.to(info.device), out.frame_mask, config.pos_weight_cap
                    )
                    (loss / config.grad_accum).backward()
                step_loss += float(loss.detach()) / config.grad_accum
                n_frames += int(out.frame_mask.sum())
                n_samples += len(batch)
            grad_norm = full_grad_norm(
                torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), config.max_grad_norm)
            )
            optimizer.step()
            scheduler.step()
            step += 1
            last_loss = _mean_across(step_loss, info)
            result.losses.append(last_loss)
            elapsed = time.perf_counter() - t0
            if info.is_main and (step % max(1, config.log_every_steps) == 0 or step == stop_at):
                record = {
                    "step": step,
                    "total_steps": total_steps,
                    "epoch": step * config.grad_accum / micro_per_epoch,
                    "loss": last_loss,
                    "lr": optimizer.param_groups[0]["lr"],
                    "head_lr": optimizer.param_groups[1]["lr"],
                    "grad_norm": float(grad_norm),
                    "budget": budget,
                    "frames": n_frames * info.world,
                    "samples_per_s": n_samples * info.world / max(elapsed, 1e-9),
                    "step_s": elapsed,
                    "time": dt.datetime.now(dt.UTC).isoformat(),
                }
                with metrics_path.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
            if progress is not None:
                progress.update(task, completed=step, info=f"loss {last_loss:.4f}")
            if config.save_every_steps and step % config.save_every_steps == 0 and step < stop_at:
                result.checkpoint = save_checkpoint(
                    out_dir,
                    step,
                    model,
                    optimizer,
                    scheduler,
                    info,
                    state_dict(last_loss),
                    config.keep_checkpoints,
                    sharded,
                )

    result.step = step
    result.completed = step >= total_steps
    if not result.completed or config.save_every_steps:
        result.checkpoint = save_checkpoint(
            out_dir, step, model, optimizer, scheduler, info, state_dict(last_loss), config.keep_checkpoints,
            sharded,
        )
    weights = full_model_state(model) if result.completed and sharded else None
    if result.completed and info.is_main:
        model.save_pretrained(
            out_dir,
            state_dict=weights,
            metadata={
                "data_version": version,
                "trained_on": str(shards_dir),
                "train_samples": len(examples),
                "steps": step,
                "world_size": info.world,
                "strategy": strategy,
                "final_loss": last_loss,
                "train_config": config.to_dict(),
                "encoder_id": model.encoder_id(),
                "trained_at": dt.datetime.now(dt.UTC).isoformat(),
            },
        )
    _barrier(info)
    result.elapsed_s = time.perf_counter() - started
    result.cache_stats = cache.stats.as_dict()
    result.model = model
    return result


@torch.no_grad()
def evaluate_loss(
    model: FrameSelector,
    examples: list[Example],
    features: VideoFeatures,
    budget: int | None = None,
    cap: float = 5.0,
    batch_size: int = 8,
) -> float:
    """Mean selector loss over examples at a fixed token budget (model left in the mode it was in)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            feats, ids, labels = _collate(batch, features)
            out = model(feats, ids, budget=budget)
            total += float(selector_loss(out.logits, labels.to(model.device), out.frame_mask, cap)) * len(
                batch
            )
            count += len(batch)
    finally:
        model.train(was_training)
    return total / max(1, count)
