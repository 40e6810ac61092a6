#!/usr/bin/env python
"""Offline selector benchmark (CPU): train the `offline` backbone on synthetic ground truth, score held-out.

Steps (each timed):
  1. generate a synthetic train set and a disjoint held-out set (different seeds, different folders)
  2. write the train set's ground truth as VideoITG record shards (`records_from_ground_truth`)
  3. build the `offline` selector (EfficientNet-Lite0 ImageNet + SmolLM2-135M-Instruct, registry
     weights; random projector and head), save it as the initial checkpoint, and train from it on the
     CPU with `trainer.train.train` (frozen vision features cached; fixed small token budget)
  4. score every held-out question with the trained selector, the untrained initial checkpoint (the
     control: same backbone, random projector/head) and uniform sampling (`vidthinker.video.uniform_indices`
     over the same 1-fps candidate grid); random Top-K is reported as its expected value
  5. print recall@K and precision@K (K = 4, 8, 16) overall and by instruction type, the loss curve
     summary and wall times; write everything to <out>/results.json

recall@K = |TopK ∩ G| / |G|, precision@K = |TopK ∩ G| / K (G: ground-truth grid ids), mean over the
questions with a non-empty G. Ids are 1-fps grid ids throughout.

CPU note: on a shared, loaded box torch's default intra-op thread pool spins against other processes
and runs the LM 10-30x slower; `--threads 1` (default) avoids that.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TYPES = ("semantic_only", "motion_only", "semantic_motion", "no_clues")
METHODS = ("trained", "untrained", "uniform", "random")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/bench_selector_offline"), help="work folder")
    p.add_argument("--train-videos", type=int, default=12)
    p.add_argument("--heldout-videos", type=int, default=6)
    p.add_argument("--train-seed", type=int, default=1000)
    p.add_argument("--heldout-seed", type=int, default=2000)
    p.add_argument("--min-seconds", type=float, default=20)
    p.add_argument("--max-seconds", type=float, default=45)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--frames", type=int, default=64, help="frame cap (1-fps grid) for training and scoring")
    p.add_argument("--budget", type=int, default=128, help="visual token budget per sample (fixed)")
    p.add_argument("--instruction-tokens", type=int, default=48)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-5, help="LM + projector lr")
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-k", "--ks", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (see CPU note)")
    p.add_argument("--fresh", action="store_true", help="delete <out> first (else reuse generated sets)")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_set(folder: Path, n: int, seed: int, args) -> list:
    from vidthinker.formats import read_manifest
    from vidthinker.synth import generate_synthetic_set

    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        generate_synthetic_set(
            folder,
            n,
            seed,
            min_seconds=args.min_seconds,
            max_seconds=args.max_seconds,
            width=args.width,
            height=args.height,
        )
    return read_manifest(manifest)


def topk_grid(grid_ids, scores, k: int) -> set[int]:
    from trainer.inference import rank_frames

    ranked, _ = rank_frames(grid_ids, scores)  # score desc, ties: lower id first
    return set(ranked[:k])


def sel_metrics(selected: set[int], truth: set[int], k: int) -> tuple[float, float]:
    hit = len(selected & truth)
    return hit / len(truth), hit / k


def aggregate(rows: list[dict], ks: list[int]) -> dict:
    """{method: {group: {"n", "R@k", "P@k"}}} with group in overall + instruction types."""
    table: dict = {}
    for method in METHODS:
        table[method] = {}
        for group in ("overall", *TYPES):
            chosen = [r for r in rows if group == "overall" or r["type"] == group]
            entry = {"n": len(chosen)}
            for k in ks:
                for metric in ("R", "P"):
                    vals = [r[method][f"{metric}@{k}"] for r in chosen]
                    entry[f"{metric}@{k}"] = sum(vals) / len(vals) if vals else float("nan")
            table[method][group] = entry
    return table


def format_table(table: dict, ks: list[int]) -> str:
    cols = [f"R@{k}" for k in ks] + [f"P@{k}" for k in ks]
    lines = ["| group | n | method | " + " | ".join(cols) + " |", "|---|---:|---|" + "---:|" * len(cols)]
    for group in ("overall", *TYPES):
        for method in METHODS:
            e = table[method][group]
            cells = " | ".join(f"{e[c]:.3f}" for c in cols)
            lines.append(f"| {group} | {e['n']} | {method} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import shutil

    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    # 1. data
    t = time.perf_counter()
    train_rows = make_set(args.out / "train_set", args.train_videos, args.train_seed, args)
    held_rows = make_set(args.out / "heldout_set", args.heldout_videos, args.heldout_seed, args)
    times["generate_s"] = time.perf_counter() - t
    log(f"sets: {len(train_rows)} train videos, {len(held_rows)} held-out ({times['generate_s']:.0f} s)")

    # 2. shards
    from vidthinker.formats import records_from_ground_truth
    from vidthinker.shards import write_shard

    shards = args.out / "train_shards"
    shards.mkdir(exist_ok=True)
    records = records_from_ground_truth(train_rows)
    write_shard(records, shards / "gt-00000.parquet")
    log(f"shards: {len(records)} train records")

    # 3. model + training
    from trainer.config import TrainConfig, offline_config
    from trainer.model import FrameSelector
    from trainer.train import train

    t = time.perf_counter()
    torch.manual_seed(args.seed)
    model_cfg = offline_config(
        token_budget=args.budget, max_frames=args.frames, max_instruction_tokens=args.instruction_tokens
    )
    init_dir = args.out / "init"
    init_model = FrameSelector(model_cfg)
    init_model.save_pretrained(init_dir)
    times["build_init_s"] = time.perf_counter() - t
    log(f"offline backbone built and saved as the initial checkpoint ({times['build_init_s']:.0f} s)")

    run_dir = args.out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run each time (features live outside it)
    config = TrainConfig(
        model=model_cfg,
        init_from=str(init_dir),
        lr=args.lr,
        head_lr=args.head_lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        budget_range=None,  # fixed args.budget
        max_frames=args.frames,
        seed=args.seed,
        bf16=False,
        progress=False,
        resume=False,
        feature_cache_dir=str(args.out / "feature_cache"),
        encode_batch_size=16,
    )
    t = time.perf_counter()
    result = train(shards, run_dir, config, device="cpu")
    times["train_s"] = time.perf_counter() - t
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    step_s = [s["step_s"] for s in steps]
    times["train_steps_s"] = sum(step_s)
    times["train_setup_s"] = times["train_s"] - times["train_steps_s"]  # load, encode features, save
    losses = result.losses
    per_epoch = max(1, math.ceil(len(losses) / max(1.0, args.epochs)))
    epochs = [losses[i : i + per_epoch] for i in range(0, len(losses), per_epoch)]
    loss_summary = {
        "steps": len(losses),
        "samples": result.samples,
        "first": losses[0],
        "last": losses[-1],
        "min": min(losses),
        "epoch_means": [sum(e) / len(e) for e in epochs],
        "first4_mean": sum(losses[:4]) / len(losses[:4]),
        "last4_mean": sum(losses[-4:]) / len(losses[-4:]),
        "step_s_median": sorted(step_s)[len(step_s) // 2],
    }
    log(
        f"trained {len(losses)} steps on {result.samples} samples in {times['train_s']:.0f} s; loss {loss_summary}"
    )
    del result

    # 4. scoring
    from trainer.inference import Selector
    from vidthinker.video import uniform_indices

    t = time.perf_counter()
    trained = Selector.from_pretrained(run_dir, device="cpu", cache_dir=args.out / "feature_cache")
    times["load_trained_s"] = time.perf_counter() - t
    untrained = Selector(init_model, device="cpu", feature_cache=trained.cache)  # features shared

    rows: list[dict] = []
    score_s = {"trained": 0.0, "untrained": 0.0}
    for row in held_rows:
        questions = [p for p in row.qa if p.ground_truth is not None and p.ground_truth.frame_ids]
        if not questions:
            continue
        texts = [p.question for p in questions]
        t = time.perf_counter()
        trained.features(trained.plan(row.video, args.frames))  # encode once; timed apart from scoring
        times["encode_heldout_s"] = times.get("encode_heldout_s", 0.0) + time.perf_counter() - t
        scored = {}
        for name, sel in (("trained", trained), ("untrained", untrained)):
            t = time.perf_counter()
            scored[name] = sel.score_many(row.video, texts, args.frames)
            score_s[name] += time.perf_counter() - t
        grid = [int(g) for g in scored["trained"][0].grid_ids]
        for i, pair in enumerate(questions):
            truth = set(pair.ground_truth.frame_ids)
            entry = {
                "video": row.video_id,
                "qa_id": pair.qa_id,
                "type": getattr(
                    pair.ground_truth.instruction_type, "value", pair.ground_truth.instruction_type
                ),
                "gt": len(truth),
                "candidates": len(grid),
            }
            for name in ("trained", "untrained"):
                entry[name] = {}
                ids = [int(g) for g in scored[name][i].grid_ids]
                for k in args.ks:
                    r, p = sel_metrics(topk_grid(ids, scored[name][i].scores, k), truth, k)
                    entry[name][f"R@{k}"], entry[name][f"P@{k}"] = r, p
            entry["uniform"], entry["random"] = {}, {}
            in_grid = len(truth & set(grid))
            for k in args.ks:
                picked = {grid[j] for j in uniform_indices(len(grid), k)}
                r, p = sel_metrics(picked, truth, k)
                entry["uniform"][f"R@{k}"], entry["uniform"][f"P@{k}"] = r, p
                # expected value of K frames drawn at random from the grid
                kk = min(k, len(grid))
                entry["random"][f"R@{k}"] = kk * in_grid / len(grid) / len(truth)
                entry["random"][f"P@{k}"] = kk * in_grid / len(grid) / k
            rows.append(entry)
    times.update({f"score_{k}_s": v for k, v in score_s.items()})
    times["total_s"] = time.perf_counter() - t_all

    table = aggregate(rows, args.ks)
    print()
    print(format_table(table, args.ks))
    print()
    print(
        "loss:",
        json.dumps(
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in loss_summary.items()}, default=str
        ),
    )
    print("times (s):", json.dumps({k: round(v, 1) for k, v in times.items()}))
    print(f"held-out questions: {len(rows)}; train records: {len(records)}")
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "table": table,
                "loss": loss_summary,
                "losses": losses,
                "times": times,
                "questions": rows,
            },
            indent=1,
        )
        + "\n"
    )
    log(f"wrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":  # the decode worker is spawned: keep module import side-effect free
    sys.exit(main())
