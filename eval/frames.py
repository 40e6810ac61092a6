"""Decoded 1-fps grid frames, shared by every selector and the QA harness.

A `FrameStore` probes each video once and decodes each (video, grid id) once: the harness walks the
videos one at a time, and every selector and every question of that video reuses the same frames. It
keeps the frames of the last ``capacity`` videos only.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidthinker.video import (
    VideoInfo,
    decode_frames,
    grid_size,
    grid_to_frame_index,
    probe,
    uniform_indices,
)

VideoRef = VideoInfo | str | os.PathLike


def video_path(video: VideoRef) -> str:
    return video.path if isinstance(video, VideoInfo) else str(Path(video))


class FrameStore:
    """Probe and decode cache. ``max_side`` bounds the decoded size (one size serves embedders and the
    Video-LLM's JPEGs); ``isolate`` decodes in the crash-safe worker process (``vidthinker.video``)."""

    def __init__(
        self,
        *,
        max_side: int | None = 448,
        capacity: int = 2,
        isolate: bool = True,
        timeout_s: float = 300.0,
        grid_fps: float = 1.0,
    ) -> None:
        self.max_side = max_side
        self.capacity = max(1, int(capacity))
        self.isolate = isolate
        self.timeout_s = timeout_s
        self.grid_fps = grid_fps
        self._infos: dict[str, VideoInfo] = {}
        self._frames: OrderedDict[str, dict[int, np.ndarray]] = OrderedDict()
        self._lock = threading.RLock()
        # accounting (tests assert one decode per video)
        self.probe_calls = 0
        self.decode_calls: dict[str, int] = {}
        self.frames_decoded = 0

    def info(self, video: VideoRef) -> VideoInfo:
        if isinstance(video, VideoInfo):
            with self._lock:
                self._infos.setdefault(video.path, video)
            return video
        key = video_path(video)
        with self._lock:
            if key not in self._infos:
                self.probe_calls += 1
                self._infos[key] = probe(key)
            return self._infos[key]

    def grid_ids(self, video: VideoRef, cap: int | None = None) -> list[int]:
        """All grid ids of the video, or ``cap`` of them spread uniformly (``uniform_indices``)."""
        n = grid_size(self.info(video), self.grid_fps)
        if cap is None or n <= cap:
            return list(range(n))
        return uniform_indices(n, cap)

    def frame_indices(self, video: VideoRef, grid_ids: Sequence[int]) -> list[int]:
        """Original video frame index of each grid id."""
        return grid_to_frame_index(self.info(video), grid_ids, self.grid_fps)

    def grid_of_frames(self, video: VideoRef, frame_ids: Sequence[int]) -> np.ndarray:
        """Nearest grid id of original frame indices (the inverse of ``frame_indices`` on grid frames)."""
        info = self.info(video)
        n = grid_size(info, self.grid_fps)
        t = np.asarray(frame_ids, dtype=np.float64) / info.fps
        return np.clip(np.floor(t * self.grid_fps + 0.5), 0, n - 1).astype(np.int64)

    def frames(self, video: VideoRef, grid_ids: Sequence[int]) -> np.ndarray:
        """uint8 RGB frames (N, H, W, 3) of the grid ids, in the given order; missing ones decoded in one call."""
        info = self.info(video)
        key = info.path
        ids = [int(g) for g in grid_ids]
        with self._lock:
            cached = self._frames.get(key)
            if cached is None:
                cached = {}
                self._frames[key] = cached
                while len(self._frames) > self.capacity:
                    self._frames.popitem(last=False)
            else:
                self._frames.move_to_end(key)
            missing = sorted({g for g in ids if g not in cached})
            if missing:
                decoded = decode_frames(
                    info.path,
                    grid_to_frame_index(info, missing, self.grid_fps),
                    max_side=self.max_side,
                    info=info,
                    isolate=self.isolate,
                    timeout_s=self.timeout_s,
                )
                self.decode_calls[key] = self.decode_calls.get(key, 0) + 1
                self.frames_decoded += len(missing)
                cached.update(zip(missing, decoded))
            if not ids:
                return np.zeros((0, 1, 1, 3), np.uint8)
            return np.stack([cached[g] for g in ids])

    def forget(self, video: VideoRef) -> None:
        with self._lock:
            self._frames.pop(video_path(video) if not isinstance(video, VideoInfo) else video.path, None)
