"""The 1-fps frame grid and the clip rules (pure arithmetic on a probed ``VideoInfo``; no decoder).

The trainer and the evaluation use these rules too, so a grid id means the same frame everywhere; the
conventions are in the package docstring (``vidthinker.video``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

_GRID_EPS_S = 1e-6


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns about a video.

    ``path`` is the resolved absolute path. ``width``/``height`` are the displayed size (rotation
    applied), i.e. the shape ``decode_frames`` returns without ``max_side``. ``num_frames`` is the
    container's frame count when it stores one (mp4/mov); otherwise (mkv, webm, ...) it is estimated as
    ``round(duration_s * fps)`` and ``num_frames_estimated`` is True. ``codec`` is FFmpeg's codec name
    ("h264", "av1"), ``container`` FFmpeg's demuxer name ("mov,mp4,m4a,3gp,3g2,mj2").
    """

    path: str
    duration_s: float
    fps: float
    num_frames: int
    width: int
    height: int
    codec: str
    rotation: int
    container: str
    has_audio: bool
    num_frames_estimated: bool = False


@dataclass(frozen=True)
class Clip:
    """Clip ``clip_id`` spans [start_s, end_s) and holds the listed grid ids (ascending)."""

    clip_id: int
    start_s: float
    end_s: float
    grid_ids: tuple[int, ...]


def _check_grid_fps(grid_fps: float) -> None:
    if not grid_fps > 0:
        raise ValueError(f"grid_fps must be > 0, got {grid_fps}")


def grid_size(info: VideoInfo, grid_fps: float = 1.0) -> int:
    """Number of grid ids: ``ceil(duration * grid_fps)``, so that every grid timestamp < duration."""
    _check_grid_fps(grid_fps)
    return max(0, math.ceil(info.duration_s * grid_fps - _GRID_EPS_S * grid_fps))


def grid_timestamps(info: VideoInfo, grid_fps: float = 1.0) -> list[float]:
    """Timestamp in seconds of each grid id: ``k / grid_fps``."""
    return [k / grid_fps for k in range(grid_size(info, grid_fps))]


def grid_to_frame_index(info: VideoInfo, grid_ids: Iterable[int], grid_fps: float = 1.0) -> list[int]:
    """Video frame index of each grid id: ``min(floor(k / grid_fps * fps + 0.5), num_frames - 1)``.

    Raises ValueError for ids outside ``range(grid_size(info, grid_fps))``.
    """
    n = grid_size(info, grid_fps)
    out = []
    for k in grid_ids:
        k = int(k)
        if not 0 <= k < n:
            raise ValueError(f"grid id {k} is outside 0..{n - 1} for {info.path} at {grid_fps:g} fps")
        out.append(min(math.floor(k / grid_fps * info.fps + 0.5), info.num_frames - 1))
    return out


def plan_clips(info: VideoInfo, clip_seconds: float = 5.0, grid_fps: float = 1.0) -> list[Clip]:
    """Split the grid into clips of ``clip_seconds * grid_fps`` grid ids (which must be a whole number).

    With the defaults, clip k covers grid ids 5k..5k+4 and spans [5k, min(5k + 5, duration)) seconds;
    the last clip may be shorter. A video with g grid ids has ceil(g / 5) clips.
    """
    _check_grid_fps(grid_fps)
    per_clip_f = clip_seconds * grid_fps
    per_clip = round(per_clip_f)
    if per_clip < 1 or abs(per_clip_f - per_clip) > 1e-9:
        raise ValueError(
            f"clip_seconds * grid_fps must be a whole number >= 1 of grid frames, got {per_clip_f:g}"
        )
    n = grid_size(info, grid_fps)
    clips = []
    for c in range(math.ceil(n / per_clip)):
        ids = tuple(range(c * per_clip, min((c + 1) * per_clip, n)))
        clips.append(Clip(c, c * clip_seconds, min((c + 1) * clip_seconds, info.duration_s), ids))
    return clips


def uniform_indices(total: int, n: int) -> list[int]:
    """``n`` evenly spread ids from ``range(total)``, first and last included; all of them if total <= n.

    Same ids as ``np.linspace(0, total - 1, n).astype(int)`` (the usual Video-LLM sampler), but computed in
    integers so no float edge case can differ. Sorted and unique: the step is >= 1 when total > n.
    """
    if total < 0 or n < 0:
        raise ValueError(f"total and n must be >= 0, got total={total}, n={n}")
    if total <= n:
        return list(range(total))
    if n == 1:
        return [0]
    return [i * (total - 1) // (n - 1) for i in range(n)]
