"""The few video operations the selector needs, delegated to `vidthinker.video` when it is importable.

The 1-fps grid (vidthinker.video's definition): grid id k is the frame shown at t = k / grid_fps seconds,
i.e. original video frame floor(k / grid_fps * fps + 0.5), clamped to the last frame; a video has
ceil(duration_s * grid_fps) grid ids. The fallbacks below (decord only) follow the same rules.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:  # the project's video layer (probe/decode with decord and a PyAV fallback)
    from vidthinker import video as _project_video
except Exception:  # noqa: BLE001 - not written yet, or its optional deps are missing
    _project_video = None


@dataclass(frozen=True)
class VideoMeta:
    path: str
    fps: float
    num_frames: int
    duration_s: float
    info: Any = None  # vidthinker.video.VideoInfo when the project layer probed it


def _project(name: str):
    return getattr(_project_video, name, None) if _project_video is not None else None


def probe(path: str | os.PathLike) -> VideoMeta:
    path = str(path)
    project_probe = _project("probe")
    if project_probe is not None:
        info = project_probe(path)
        return VideoMeta(
            path=path,
            fps=float(info.fps),
            num_frames=int(info.num_frames),
            duration_s=float(info.duration_s),
            info=info,
        )
    import decord

    reader = decord.VideoReader(path, num_threads=1)
    fps = float(reader.get_avg_fps())
    return VideoMeta(path=path, fps=fps, num_frames=len(reader), duration_s=len(reader) / fps if fps else 0.0)


def grid_to_video_frame(grid_ids, fps: float, num_frames: int, grid_fps: float = 1.0) -> np.ndarray:
    """Original video frame index of each grid id: floor(k / grid_fps * fps + 0.5), clamped to the last."""
    ids = np.asarray(grid_ids, dtype=np.float64)
    frames = np.floor(ids / grid_fps * fps + 0.5).astype(np.int64)
    return np.clip(frames, 0, max(0, num_frames - 1))


def num_grid_frames(meta: VideoMeta, grid_fps: float = 1.0) -> int:
    """ceil(duration * grid_fps): every grid timestamp k / grid_fps lies inside the video."""
    project_grid = _project("grid_size")
    if project_grid is not None and meta.info is not None:
        return int(project_grid(meta.info, grid_fps))
    if meta.duration_s <= 0:
        return 0
    return max(0, math.ceil(meta.duration_s * grid_fps - 1e-6 * grid_fps))


def grid_frames(meta: VideoMeta, grid_ids, grid_fps: float = 1.0) -> list[int]:
    project_map = _project("grid_to_frame_index")
    if project_map is not None and meta.info is not None:
        return [int(i) for i in project_map(meta.info, grid_ids, grid_fps)]
    return [int(i) for i in grid_to_video_frame(grid_ids, meta.fps, meta.num_frames, grid_fps)]


def uniform_indices(total: int, n: int) -> list[int]:
    """n indices spread evenly over range(total) (all of them when total <= n)."""
    project_uniform = _project("uniform_indices")
    if project_uniform is not None:
        return [int(i) for i in project_uniform(total, n)]
    if total <= n:
        return list(range(total))
    return [int(i) for i in np.linspace(0, total - 1, n).round().astype(np.int64)]


def sample_grid_ids(n_grid: int, cap: int) -> list[int]:
    """All grid ids when there are at most `cap`, else `uniform_indices(n_grid, cap)`."""
    if n_grid <= cap:
        return list(range(n_grid))
    ids = sorted(set(uniform_indices(n_grid, cap)))
    return ids


def decode_frames(
    path: str | os.PathLike,
    frame_indices,
    max_side: int | None = None,
    *,
    isolate: bool = True,
    meta: VideoMeta | None = None,
) -> np.ndarray:
    """RGB uint8 frames (N, H, W, 3) at the given original frame indices (isolate: decode in a child
    process with a timeout, so a crashing decoder cannot take the trainer down)."""
    indices = [int(i) for i in frame_indices]
    project_decode = _project("decode_frames")
    if project_decode is not None:
        info = meta.info if meta is not None else None
        return np.asarray(project_decode(str(path), indices, max_side=max_side, isolate=isolate, info=info))
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    frames = reader.get_batch(indices).asnumpy()
    if max_side is not None and max(frames.shape[1:3]) > max_side:
        from PIL import Image

        h, w = frames.shape[1:3]
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        frames = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])
    return frames


_hash_lock = threading.Lock()
_hash_memo: dict[tuple[str, int, int], str] = {}


def content_hash(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes (memoised per path, size and mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        if key in _hash_memo:
            return _hash_memo[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _hash_lock:
        _hash_memo[key] = value
    return value
