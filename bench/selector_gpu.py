#!/usr/bin/env python
"""Selector GPU benchmark: 512-frame scoring latency/memory (7B class), training throughput/MFU (1.5B class).

Figures printed (one run, one device):
  matmul      achieved dense matmul rate (bf16 8192^3 on CUDA): the yardstick for the floors below
  score       Variant C scoring of one video: vision encode (SigLIP-so400m sizes) + LM pass (Qwen2-7B
              sizes) over T frames * s^2 tokens + the instruction; latency, peak memory, and the FLOP
              floor (model FLOPs / measured matmul rate) with the ratio latency / floor
  train       Qwen2-1.5B-class training steps from cached frame features (frozen vision encoder, as in
              training): samples/s and model FLOP utilisation (6*N*tokens + attention, over the measured
              matmul rate and over the nominal peak) with and without gradient checkpointing

Each figure is taken per setting, so one run on a lent GPU says which levers pay:
  --compile off|on|both       torch.compile each transformer block (FrameSelector.compile_blocks)
  --sdpa-backend B [B ...]    auto (PyTorch's choice), cudnn, flash, efficient, math
  --accum N                   micro-batches per optimizer step (amortises AdamW over N fwd/bwd passes)
  --sweep                     compile both, sdpa auto+cudnn, training with/without checkpointing
A setting that fails (a kernel that cannot run, out of memory) is reported and the run goes on. The
closing lines compare the best setting with the issue's goals (scoring <= 1.3x floor, training >= 55% MFU).

Weights are random (no hub here); shapes and kernels are what matter. CUDA is required unless
`--tiny`, which runs a tiny config on the CPU (fp32) so this script itself is exercised by the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainer.config import (
    SelectorConfig,
    qwen2_config,
    siglip_so400m_config,
    tiny_qwen2_config,
    tiny_siglip_config,
    tokens_per_side,
    vision_layers_run,
)

NOMINAL_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16
SDPA_BACKENDS = {"auto": None, "cudnn": "CUDNN_ATTENTION", "flash": "FLASH_ATTENTION",
                 "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}
SELECT_LAYER = -2  # LLaVA-style penultimate-layer features, as the production preset
GOAL_SCORE_OVER_FLOOR = 1.3
GOAL_TRAIN_MFU = 0.55
COMPILE_MODES = {"off": [False], "on": [True], "both": [False, True]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny random config on the CPU (tests the script)"
    )
    parser.add_argument("--frames", type=int, default=512, help="frames scored per video (default 512)")
    parser.add_argument("--budget", type=int, default=16384, help="visual token budget (default 16384)")
    parser.add_argument("--instruction-tokens", type=int, default=64, help="instruction length in tokens")
    parser.add_argument("--score-lm", default="7b", help="Qwen2 size for scoring (7b, 1.5b, 0.5b)")
    parser.add_argument("--train-lm", default="1.5b", help="Qwen2 size for training (1.5b, 0.5b, 7b)")
    parser.add_argument(
        "--train-frames", type=int, default=None, help="frames per training sample (default --frames)"
    )
    parser.add_argument("--train-batch", type=int, default=1, help="samples per training step")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per setting")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up iterations")
    parser.add_argument("--repeats", type=int, default=5, help="timed scoring repetitions")
    parser.add_argument(
        "--questions",
        type=int,
        default=4,
        help="questions per video for the batching figure: one padded batch vs one at a time (0: skip)",
    )
    parser.add_argument(
        "--attn",
        default="sdpa",
        choices=["sdpa", "flash_attention_2", "eager"],
        help="attention implementation (sdpa uses the flash/cuDNN kernels when it can)",
    )
    parser.add_argument(
        "--compile",
        default="off",
        choices=sorted(COMPILE_MODES),
        help="torch.compile each transformer block: off, on, or both (one figure each)",
    )
    parser.add_argument(
        "--sdpa-backend",
        nargs="+",
        default=["auto"],
        choices=sorted(SDPA_BACKENDS),
        help="scaled-dot-product attention kernels to try (auto: PyTorch picks)",
    )
    parser.add_argument("--accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    parser.add_argument(
        "--sweep", action="store_true", help="compile off+on, sdpa auto+cudnn (auto+math with --tiny)"
    )
    parser.add_argument("--skip-train", action="store_true", help="only the scoring benchmark")
    parser.add_argument("--skip-score", action="store_true", help="only the training benchmark")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- FLOP model


def lm_flops(cfg: dict, seq: int, with_embeddings: bool = False) -> float:
    """Forward FLOPs of a Qwen2-style decoder over `seq` tokens: 2*N_matmul*seq + attention (QK^T, AV)."""
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = h // heads
    per_layer = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h + 3 * h * inter
    matmul = 2.0 * layers * per_layer * seq
    attention = 4.0 * layers * seq * seq * heads * head_dim  # full (non-causal) attention
    return matmul + attention


def vit_flops(cfg: dict, images: int, select_layer: int = -1) -> float:
    """Forward FLOPs of the layers a SigLIP tower runs up to `select_layer` (the rest are cut off)."""
    h, inter, depth = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    layers = vision_layers_run(depth, select_layer)
    tokens = (cfg["image_size"] // cfg["patch_size"]) ** 2
    per_layer = 4 * h * h + 2 * h * inter
    patch = 2.0 * tokens * 3 * cfg["patch_size"] ** 2 * h
    return images * (patch + 2.0 * layers * per_layer * tokens + 4.0 * layers * tokens * tokens * h)


def trainable_matmul_params(cfg: dict) -> float:
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = h // heads
    return layers * (h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h + 3 * h * inter)


# --------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def matmul_rate(device: torch.device, tiny: bool) -> float:
    """Achieved FLOP/s of a large dense matmul (bf16 on CUDA, fp32 on CPU)."""
    n = 512 if tiny else 8192
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, repeats=5 if tiny else 20, warmup=2)
    return 2.0 * n**3 / seconds


def sdpa_context(backend: str):
    """Restrict scaled-dot-product attention to one kernel family ("auto": no restriction)."""
    if SDPA_BACKENDS[backend] is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, SDPA_BACKENDS[backend])])


def reset_compiled() -> None:
    """Forget compiled graphs (kernel choices are baked in when a graph is traced)."""
    import torch._dynamo

    torch._dynamo.reset()


def failure(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error).strip() else ''}"


def gib(nbytes: float) -> float | None:
    return None if math.isnan(nbytes) else nbytes / 2**30


def fmt_gib(value: float | None) -> str:
    return "n/a (CPU)" if value is None else f"{value:.2f} GiB"


def build(
    variant: str, vision_cfg: dict, text_cfg: dict, attn: str, dtype: torch.dtype, device: torch.device
):
    from trainer.model import FrameSelector

    config = SelectorConfig(
        variant=variant,
        vision={"kind": "siglip", "config": vision_cfg, "select_layer": SELECT_LAYER},
        text={"config": text_cfg, "tokenizer": "bytes"},
        attn_implementation=attn,
    )
    with torch.device(device):
        model = FrameSelector(config, load_pretrained=False, dtype=dtype)
    return model.to(device)


# --------------------------------------------------------------------------- benchmarks


def score_settings(args) -> list[tuple[bool, str]]:
    """(compile, sdpa backend) pairs, eager ones first: compiling is one-way for a built model."""
    return [(c, b) for c in COMPILE_MODES[args.compile] for b in args.sdpa_backend]


def bench_score(args, device, rate, vision_cfg, text_cfg) -> list[dict]:
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    model = build("C", vision_cfg, text_cfg, args.attn, dtype, device).eval()
    frames = torch.randint(
        0, 256, (args.frames, vision_cfg["image_size"], vision_cfg["image_size"], 3), dtype=torch.uint8
    ).numpy()
    ids = torch.randint(3, text_cfg["vocab_size"], (args.instruction_tokens,))
    encode_bs = 8 if args.tiny else 64
    grid = vision_cfg["image_size"] // vision_cfg["patch_size"]
    side = tokens_per_side(args.frames, args.budget, grid)
    seq = args.frames * side * side + args.instruction_tokens
    f_vit = vit_flops(vision_cfg, args.frames, SELECT_LAYER)
    f_lm = lm_flops(text_cfg, seq)
    floor = (f_vit + f_lm) / rate
    results = []
    compiled = False
    for compile_blocks, backend in score_settings(args):
        setting = {"compile": compile_blocks, "sdpa_backend": backend, "frames": args.frames,
                   "tokens_per_frame": side * side, "lm_tokens": seq, "flops_vit": f_vit, "flops_lm": f_lm,
                   "floor_s": floor, "floor_lm_s": f_lm / rate}
        try:
            if compile_blocks and not compiled:
                model.compile_blocks()
                compiled = True
            if compiled:
                reset_compiled()
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)

            def encode(backend=backend):  # features stay on the device (inference does not round-trip through the cache)
                with sdpa_context(backend):
                    return model.encode_frames(frames, batch_size=encode_bs, to_cpu=False)

            feats = encode()

            @torch.inference_mode()
            def score(backend=backend, feats=feats):
                with sdpa_context(backend):
                    return model([feats], [ids], budget=args.budget).logits

            t_compile = time.perf_counter()
            score()  # compiles here when compiling; not part of the timed figures
            sync(device)
            t_compile = time.perf_counter() - t_compile
            t_encode = timed(encode, device, repeats=max(1, args.repeats // 2), warmup=1)
            t_score = timed(score, device, repeats=args.repeats, warmup=args.warmup)
            peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else float("nan")
            total = t_encode + t_score
            setting.update({
                "first_call_s": t_compile,
                "encode_s": t_encode,
                "lm_score_s": t_score,
                "total_s": total,
                "peak_mem_gib": gib(peak),
                "latency_over_floor": total / floor,
                "lm_over_floor": t_score / (f_lm / rate),
            })
            if args.questions > 1:
                setting.update(bench_question_batching(args, model, feats, text_cfg, backend, device))
        except Exception as error:  # noqa: BLE001 - report the setting, go on with the next
            setting["error"] = failure(error)
        feats = None
        results.append(setting)
    model = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return results


def bench_question_batching(args, model, feats, text_cfg, backend, device) -> dict:
    """Several questions about one video: one forward over a right-padded batch (a padding mask, so
    SDPA cannot use its mask-free flash kernels) against one mask-free forward per question. Instruction
    lengths differ (as real ones do), so the batch really is padded."""
    lengths = [max(1, args.instruction_tokens + 8 * (i % 3) - 8) for i in range(args.questions)]
    ids = [torch.randint(3, text_cfg["vocab_size"], (n,)) for n in lengths]

    @torch.inference_mode()
    def batched():
        with sdpa_context(backend):
            return model([feats] * len(ids), ids, budget=args.budget).logits

    @torch.inference_mode()
    def one_by_one():
        with sdpa_context(backend):
            return [model([feats], [one], budget=args.budget).logits for one in ids]

    repeats = max(1, args.repeats // 2)
    t_batched = timed(batched, device, repeats=repeats, warmup=1)
    t_single = timed(one_by_one, device, repeats=repeats, warmup=1)
    return {"questions": len(ids), "batched_s_per_question": t_batched / len(ids),
            "single_s_per_question": t_single / len(ids)}


def train_settings(args) -> list[tuple[bool, bool, str]]:
    """(gradient checkpointing, compile, sdpa backend) triples."""
    return [(ck, c, b) for c in COMPILE_MODES[args.compile] for ck in (False, True) for b in args.sdpa_backend]


def bench_train(args, device, rate, vision_cfg, text_cfg, checkpointing: bool, compile_blocks: bool = False,
                backend: str = "auto") -> dict:
    from trainer.data import selector_loss

    frames = args.train_frames or args.frames
    result = {"gradient_checkpointing": checkpointing, "compile": compile_blocks, "sdpa_backend": backend,
              "frames": frames, "accum": args.accum, "batch": args.train_batch}
    model = optimizer = feats = None
    try:
        reset_compiled()
        model = build("C", vision_cfg, text_cfg, args.attn, torch.float32, device)
        model.train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        if compile_blocks:
            model.compile_blocks()
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=2e-5, fused=device.type == "cuda")
        grid = vision_cfg["image_size"] // vision_cfg["patch_size"]
        feats = [
            torch.randn(frames, grid, grid, vision_cfg["hidden_size"], dtype=torch.float16, device=device)
            for _ in range(args.train_batch)
        ]
        ids = [
            torch.randint(3, text_cfg["vocab_size"], (args.instruction_tokens,)) for _ in range(args.train_batch)
        ]
        labels = (torch.rand(args.train_batch, frames, device=device) < 0.05).float()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)

        def step():
            optimizer.zero_grad(set_to_none=True)
            for _ in range(args.accum):
                with sdpa_context(backend), torch.autocast(
                    device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
                ):
                    out = model(feats, ids, budget=args.budget)
                loss = selector_loss(out.logits, labels, out.frame_mask) / args.accum
                with sdpa_context(backend):
                    loss.backward()
            torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), 1.0)
            optimizer.step()

        first = time.perf_counter()
        step()  # compiles here when compiling; not part of the timed figures
        sync(device)
        result["first_step_s"] = time.perf_counter() - first
        seconds = timed(step, device, repeats=args.steps, warmup=max(0, args.warmup - 1))
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else float("nan")
    except torch.OutOfMemoryError:
        result["error"] = "out of memory"
    except Exception as error:  # noqa: BLE001 - report the setting, go on with the next
        result["error"] = failure(error)
    model = optimizer = feats = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if "error" in result:
        return result
    grid = vision_cfg["image_size"] // vision_cfg["patch_size"]
    side = tokens_per_side(frames, args.budget, grid)
    seq = frames * side * side + args.instruction_tokens
    samples = args.train_batch * args.accum
    model_flops = 3.0 * lm_flops(text_cfg, seq) * samples  # fwd + bwd (2x); recompute not counted
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    nominal = next((v for k, v in NOMINAL_PEAK_TFLOPS.items() if k in name), None)
    result.update({
        "lm_tokens": seq,
        "step_s": seconds,
        "samples_per_s": samples / seconds,
        "peak_mem_gib": gib(peak),
        "mfu_vs_measured_matmul": model_flops / seconds / rate,
        "mfu_vs_nominal_peak": (model_flops / seconds / (nominal * 1e12)) if nominal else None,
        "trainable_matmul_params": trainable_matmul_params(text_cfg),
    })
    return result


def describe(setting: dict) -> str:
    parts = [f"compile={'on ' if setting['compile'] else 'off'}", f"sdpa={setting['sdpa_backend']}"]
    if "gradient_checkpointing" in setting:
        parts.insert(0, f"ckpt={'on ' if setting['gradient_checkpointing'] else 'off'}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.accum < 1 or args.train_batch < 1:
        print("error: --accum and --train-batch must be >= 1", file=sys.stderr)
        return 2
    if args.sweep:
        args.compile = "both"
        args.sdpa_backend = ["auto", "math" if args.tiny else "cudnn"]
    if args.tiny:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
        args.frames = min(args.frames, 32)
        args.budget = min(args.budget, 512)
        args.instruction_tokens = min(args.instruction_tokens, 16)
        args.steps, args.warmup, args.repeats = min(args.steps, 2), 1, min(args.repeats, 2)
        score_vision = train_vision = tiny_siglip_config()
        score_text = train_text = tiny_qwen2_config()
    else:
        if not torch.cuda.is_available():
            print("error: CUDA is required (use --tiny for the CPU smoke run)", file=sys.stderr)
            return 2
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
        score_vision = train_vision = siglip_so400m_config()
        score_text, train_text = qwen2_config(args.score_lm), qwen2_config(args.train_lm)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rate = matmul_rate(device, args.tiny)
    import transformers

    report: dict = {
        "device": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn": args.attn,
        "matmul_tflops": rate / 1e12,
        "tiny": args.tiny,
    }
    print(f"device {name}  torch {torch.__version__}  transformers {transformers.__version__}  attn {args.attn}")
    kind = "fp32 512^3" if args.tiny else "bf16 8192^3"
    print(f"matmul      {rate / 1e12:8.2f} TFLOP/s measured ({kind})", flush=True)
    if not args.skip_score:
        report["score"] = bench_score(args, device, rate, score_vision, score_text)
        label = "tiny" if args.tiny else f"SigLIP-so400m + Qwen2-{args.score_lm}"
        first = report["score"][0]
        print(f"score       {label}: {first['frames']} frames x {first['tokens_per_frame']} tok = "
              f"{first['lm_tokens']} LM tokens   FLOP floor {first['floor_s'] * 1e3:.1f} ms "
              f"(LM {first['floor_lm_s'] * 1e3:.1f} ms)")
        for s in report["score"]:
            if "error" in s:
                print(f"  [{describe(s)}] failed: {s['error']}")
                continue
            print(
                f"  [{describe(s)}] encode {s['encode_s'] * 1e3:8.1f} ms  LM {s['lm_score_s'] * 1e3:8.1f} ms  "
                f"total {s['total_s'] * 1e3:8.1f} ms  latency/floor {s['latency_over_floor']:.2f}x "
                f"(LM {s['lm_over_floor']:.2f}x)  peak mem {fmt_gib(s['peak_mem_gib'])}  "
                f"first call {s['first_call_s']:.1f} s", flush=True
            )
            if "questions" in s:
                print(
                    f"    {s['questions']} questions/video: padded batch {s['batched_s_per_question'] * 1e3:8.1f} ms "
                    f"per question, one at a time {s['single_s_per_question'] * 1e3:8.1f} ms per question "
                    f"({s['single_s_per_question'] / s['batched_s_per_question']:.2f}x)", flush=True
                )
    if not args.skip_train:
        report["train"] = []
        label = "tiny" if args.tiny else f"Qwen2-{args.train_lm}"
        for ckpt, compile_blocks, backend in train_settings(args):
            t = bench_train(args, device, rate, train_vision, train_text, ckpt, compile_blocks, backend)
            report["train"].append(t)
            if "error" in t:
                print(f"train       {label} [{describe(t)}] {t['frames']} frames: failed: {t['error']}")
                continue
            nominal = (
                f"{t['mfu_vs_nominal_peak'] * 100:.1f}%" if t["mfu_vs_nominal_peak"] is not None else "n/a"
            )
            print(
                f"train       {label} [{describe(t)}] {t['frames']} frames ({t['lm_tokens']} tok) x "
                f"{t['batch'] * t['accum']}/step: {t['samples_per_s']:.3f} samples/s  step {t['step_s'] * 1e3:.1f} ms  "
                f"peak {fmt_gib(t['peak_mem_gib'])}  "
                f"MFU {t['mfu_vs_measured_matmul'] * 100:.1f}% of measured matmul, {nominal} of nominal peak",
                flush=True,
            )
    report["goals"] = goals(report)
    for line in report["goals"]["lines"]:
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def goals(report: dict) -> dict:
    """The best setting of each benchmark against the issue's goals."""
    out: dict = {"lines": []}
    scored = [s for s in report.get("score", []) if "error" not in s]
    if scored:
        best = min(scored, key=lambda s: s["latency_over_floor"])
        met = best["latency_over_floor"] <= GOAL_SCORE_OVER_FLOOR
        out["score"] = {"best": describe(best), "latency_over_floor": best["latency_over_floor"], "met": met}
        out["lines"].append(
            f"goal        scoring <= {GOAL_SCORE_OVER_FLOOR}x floor: best {best['latency_over_floor']:.2f}x "
            f"[{describe(best)}] -> {'met' if met else 'NOT met'}"
        )
    trained = [t for t in report.get("train", []) if "error" not in t]
    if trained:
        best = max(trained, key=lambda t: t["mfu_vs_measured_matmul"])
        met = best["mfu_vs_measured_matmul"] >= GOAL_TRAIN_MFU
        out["train"] = {"best": describe(best), "mfu": best["mfu_vs_measured_matmul"], "met": met}
        out["lines"].append(
            f"goal        training >= {GOAL_TRAIN_MFU:.0%} MFU: best {best['mfu_vs_measured_matmul']:.1%} "
            f"[{describe(best)}] -> {'met' if met else 'NOT met'}"
        )
    return out


if __name__ == "__main__":
    raise SystemExit(main())
