"""Writing a synthetic set: plan, render and encode each video, then its truth file and manifest row.

Each video is made in a fresh spawned process (see `generate_synthetic_set`); files appear atomically
(`vidthinker.io`), so a reader never sees half a video, truth file or manifest.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vidthinker.io import atomic_path, atomic_write_text
from vidthinker.schema import ManifestRow
from vidthinker.synth.encode import encode_video
from vidthinker.synth.footage import footage_availability
from vidthinker.synth.layout import plan_scene
from vidthinker.synth.render import render_frames
from vidthinker.synth.selection import choose_questions
from vidthinker.synth.truth import clip_descriptions, scene_truth


def make_video(
    out_dir: Path,
    index: int,
    seed: int,
    *,
    min_seconds: float,
    max_seconds: float,
    width: int,
    height: int,
    fps: int,
    footage_ok: dict[str, str | None] | None = None,
    backend: str | None = None,
) -> tuple[ManifestRow, dict]:
    """Plan, render, encode one video and write its truth file; returns its manifest row and truth."""
    out_dir = Path(out_dir)
    footage_ok = footage_availability() if footage_ok is None else footage_ok
    scene = plan_scene(
        index,
        seed,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        width=width,
        height=height,
        fps=fps,
        footage_ok=footage_ok,
    )
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    (out_dir / "truth").mkdir(parents=True, exist_ok=True)
    video_path = out_dir / "videos" / f"{scene.video_id}.mp4"
    with atomic_path(video_path) as tmp:  # the encoders name the mp4 format, so the temporary name may differ
        used = encode_video(render_frames(scene), tmp, width, height, fps, backend)
    truth = scene_truth(scene, used)
    rng = np.random.default_rng([seed, index, 1])  # questions: separate stream from the layout
    row = ManifestRow(
        video_id=scene.video_id,
        video=f"videos/{scene.video_id}.mp4",
        qa=choose_questions(scene, rng),
        source="synthetic",
        clip_descriptions=clip_descriptions(scene),
    )
    atomic_write_text(out_dir / "truth" / f"{scene.video_id}.json", json.dumps(truth, indent=1) + "\n")
    return row, truth


def generate_synthetic_set(
    out_dir: Path,
    videos: int,
    seed: int,
    *,
    min_seconds: float = 20,
    max_seconds: float = 240,
    width: int = 320,
    height: int = 240,
    fps: int = 10,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write `videos` synthetic grounded videos, their truth files and `manifest.jsonl`; return its path."""
    out_dir = Path(out_dir)
    if videos < 1:
        raise ValueError("videos must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if width % 2 or height % 2 or width < 96 or height < 72:
        # yuv420p needs even sizes; below 96x72 the >= 24 px objects and the text band no longer fit
        raise ValueError(f"width and height must be even and at least 96x72, got {width}x{height}")
    if not isinstance(fps, int) or fps < 1:
        raise ValueError("fps must be a positive integer")
    if min_seconds < 6 or math.ceil(min_seconds) > math.floor(max_seconds):
        raise ValueError(
            f"need 6 <= min_seconds <= max_seconds with a whole second between them, got {min_seconds}..{max_seconds}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    footage_ok = footage_availability()
    lines = []
    kwargs = {
        "min_seconds": min_seconds, "max_seconds": max_seconds, "width": width, "height": height, "fps": fps,
        "footage_ok": footage_ok,
    }
    # Each video is rendered and encoded in a fresh spawned process: x264's output bytes were seen to
    # depend on the state of a long-lived process (a test session that had run other work first), and
    # a clean process is what `vidthinker synth` gives. It also uses every core.
    workers = max(1, min(videos, os.cpu_count() or 1))
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(make_video, out_dir, index, seed, **kwargs) for index in range(videos)]
        for index, future in enumerate(futures):
            row, truth = future.result()
            lines.append(row.model_dump_json())
            if progress is not None:
                progress(
                    f"{row.video_id}: {truth['duration_s']} s, {len(truth['objects'])} objects, "
                    f"{len(truth['texts'])} words, {len(row.qa)} questions ({index + 1}/{videos})"
                )
    manifest = out_dir / "manifest.jsonl"
    atomic_write_text(manifest, "\n".join(lines) + "\n")
    return manifest
