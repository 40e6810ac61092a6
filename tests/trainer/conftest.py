"""Shared fixtures of the selector tests: a synthetic grounded video set, record shards, a 30 fps video
whose frames encode their own index, and a small trained checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.extras import require

torch = require("torch", "train")
require("transformers", "train")

from trainer.config import TrainConfig, tiny_config

SYNTH_VIDEOS = 4


# --------------------------------------------------------------------------- index-encoding video


def index_frame(index: int, width: int = 96, height: int = 64) -> np.ndarray:
    """Three vertical stripes, one gray level 16 + 30*d per base-8 digit of the index."""
    digits = ((index // 64) % 8, (index // 8) % 8, index % 8)
    frame = np.empty((height, width, 3), np.uint8)
    third = width // 3
    for j, d in enumerate(digits):
        frame[:, j * third : (j + 1) * third if j < 2 else width] = 16 + 30 * d
    return frame


def read_index(frame: np.ndarray) -> int:
    third = frame.shape[1] // 3
    margin = max(1, third // 6)
    digits = [
        int(round((float(frame[:, j * third + margin : (j + 1) * third - margin].mean()) - 16) / 30))
        for j in range(3)
    ]
    return digits[0] * 64 + digits[1] * 8 + digits[2]


def write_index_video(path: Path, fps: int, num_frames: int, width: int = 96, height: int = 64) -> Path:
    from vidthinker.synth import encode_video

    encode_video((index_frame(i, width, height) for i in range(num_frames)), path, width, height, fps)
    return path


@pytest.fixture(scope="session")
def video30(tmp_path_factory) -> Path:
    """7.5 s at 30 fps (225 frames; 8 grid ids: k -> frame 30k)."""
    return write_index_video(tmp_path_factory.mktemp("video30") / "count30.mp4", fps=30, num_frames=225)


# --------------------------------------------------------------------------- synthetic set and shards


@pytest.fixture(scope="session")
def synthetic_manifest(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    try:
        from vidthinker.synth import generate_synthetic_set
    except ImportError:  # the project's generator is not there: a few index videos with made-up truth
        return _fallback_set(out)
    return generate_synthetic_set(out, SYNTH_VIDEOS, 0, min_seconds=10, max_seconds=14)


def _fallback_set(out: Path) -> Path:
    rows = []
    (out / "videos").mkdir(parents=True)
    for v in range(SYNTH_VIDEOS):
        video = write_index_video(out / "videos" / f"v{v}.mp4", fps=10, num_frames=120 + 10 * v)
        qa = [
            {
                "qa_id": f"v{v}-q{q}",
                "question": f"what happens around second {2 + 3 * q}?",
                "ground_truth": {"frame_ids": [2 + 3 * q, 3 + 3 * q]},
            }
            for q in range(3)
        ]
        rows.append({"video_id": f"v{v}", "video": str(video), "qa": qa})
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def _manifest_rows(manifest: Path):
    from vidthinker.formats import read_manifest

    return read_manifest(manifest)


def ground_truth_records(manifest: Path):
    from vidthinker.formats import records_from_ground_truth

    return records_from_ground_truth(_manifest_rows(manifest))


@pytest.fixture(scope="session")
def shards(tmp_path_factory, synthetic_manifest) -> Path:
    """Two parquet shards of ground-truth records, plus one failed record that training must skip."""
    from vidthinker.schema import VideoITGRecord, write_parquet

    records = ground_truth_records(synthetic_manifest)
    out = tmp_path_factory.mktemp("shards")
    half = len(records) // 2
    bad = records[0].model_copy(
        update={"id": "broken", "qa_id": "broken", "error": "stage2: timeout", "error_stage": "retrieve"}
    )
    write_parquet(records[:half] + [bad], VideoITGRecord, out / "part-00000.parquet")
    write_parquet(records[half:], VideoITGRecord, out / "part-00001.parquet")
    return out


@pytest.fixture(scope="session")
def small_shards(tmp_path_factory, synthetic_manifest) -> Path:
    """12 records over 2 videos: small enough to fit (memorise) in a few seconds."""
    from vidthinker.schema import VideoITGRecord, write_parquet

    records = ground_truth_records(synthetic_manifest)
    videos = sorted({r.video for r in records})[:2]
    out = tmp_path_factory.mktemp("small_shards")
    write_parquet([r for r in records if r.video in videos][:12], VideoITGRecord, out / "part-00000.parquet")
    return out


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster on one thread, and the 2-core machine is shared with other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fast_config(**overrides) -> TrainConfig:
    base = dict(
        model=tiny_config(), lr=2e-3, head_lr=2e-2, epochs=1, progress=False, budget_range=(64, 256), seed=0
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, shards) -> Path:
    from trainer.train import train

    out = tmp_path_factory.mktemp("trained")
    result = train(shards, out, fast_config(max_steps=6, feature_cache_dir=str(out / "cache")))
    assert result.completed
    return out
