"""Annotation quality of the offline defaults against synthetic ground truth.

Annotates one synthetic set twice with the offline models (SmolLM2-135M-Instruct behind llama.cpp's
OpenAI-compatible server; EfficientNet-Lite0 for embeddings and the clip reports): once with stage 1
written by the LLM from the image network's clip reports ("offline captions"), once with stage 1
replaced by the synthetic set's true clip descriptions ("oracle captions", which isolates stages 2-3).
Prints frame and clip precision/recall and instruction-type accuracy by the ground truth's type.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/quality.py --videos 4
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vidthinker.worker.stage_models import open_stage_models
from vidthinker.config import load_settings
from vidthinker.formats import read_manifest
from vidthinker.pipeline import VideoAnnotator, annotate_rows
from vidthinker.quality.agreement import ground_truth_agreement
from vidthinker.synth import generate_synthetic_set


async def annotate(rows, settings, cache_dir):
    a = settings.annotate
    async with open_stage_models(settings.models, cache_dir, need_captioner=not a.oracle_captions) as models:
        annotator = VideoAnnotator(models, settings, run_id="quality", created_at=dt.datetime.now(dt.UTC))
        return await annotate_rows(annotator, rows, videos_in_flight=a.videos_in_flight)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-seconds", type=float, default=40)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vidthinker-quality-"))
    manifest = work / "synth" / "manifest.jsonl"
    if not manifest.exists():
        generate_synthetic_set(work / "synth", args.videos, args.seed, min_seconds=20, max_seconds=args.max_seconds)
    rows = read_manifest(manifest)[: args.videos]
    print(f"{len(rows)} videos, {sum(len(r.qa) for r in rows)} questions")
    header = f"{'stage 1':<16} {'type':<16} {'n':>4} {'frame P':>8} {'frame R':>8} {'clip P':>7} {'clip R':>7} {'type acc':>9} {'frames':>7}"
    print(header)
    for label, oracle in (("offline captions", False), ("oracle captions", True)):
        settings = load_settings(None, [f"annotate.oracle_captions={str(oracle).lower()}", "models.backend=offline"])
        started = time.perf_counter()
        records = asyncio.run(annotate(rows, settings, work / "cache"))
        wall = time.perf_counter() - started
        errors = sum(not r.ok for r in records)
        for kind, a in ground_truth_agreement(records, rows).items():
            print(f"{label:<16} {kind:<16} {a.records:>4} {a.frame_precision:>8.2f} {a.frame_recall:>8.2f} {a.clip_precision:>7.2f} "
                  f"{a.clip_recall:>7.2f} {a.type_accuracy:>9.2f} {a.mean_frames:>7.1f}")
        print(f"{label:<16} ({len(records)} records, {errors} errors, {wall:.0f} s)")


if __name__ == "__main__":
    main()
