"""vidthinker.video.grid: the 1-fps grid, the clip plan and uniform sampling."""

from __future__ import annotations

import numpy as np
import pytest

from vidthinker import video
from vidthinker.video import Clip, VideoInfo


def fake_info(duration_s: float, fps: float = 30.0, num_frames: int | None = None) -> VideoInfo:
    n = num_frames if num_frames is not None else round(duration_s * fps)
    return VideoInfo("/v.mp4", duration_s, fps, n, 320, 240, "h264", 0, "mp4", False)


def test_grid_and_clips_for_23_4_seconds():
    info = fake_info(23.4)
    assert video.grid_size(info) == 24  # t = 0..23 s, all < 23.4
    assert video.grid_timestamps(info)[-1] == 23.0
    clips = video.plan_clips(info)
    assert len(clips) == 5
    assert clips[0] == Clip(0, 0.0, 5.0, (0, 1, 2, 3, 4))
    assert clips[4] == Clip(4, 20.0, 23.4, (20, 21, 22, 23))
    assert [g for c in clips for g in c.grid_ids] == list(range(24))
    assert video.grid_to_frame_index(info, [0, 1, 23]) == [0, 30, 690]


def test_grid_excludes_a_timestamp_equal_to_the_duration():
    info = fake_info(10.0)
    assert video.grid_size(info) == 10
    assert video.grid_size(fake_info(10.0 + 1e-9)) == 10  # float noise in a duration adds no frame
    assert video.grid_size(fake_info(10.001)) == 11
    assert [len(c.grid_ids) for c in video.plan_clips(info)] == [5, 5]


def test_grid_frame_index_clamps_and_rounds_half_up():
    # 10.02 s at 30 fps holds 300 frames (0..299); grid id 10 is t = 10 s -> frame 300 -> clamped.
    info = fake_info(10.02, num_frames=300)
    assert video.grid_to_frame_index(info, [9, 10]) == [270, 299]
    assert video.grid_to_frame_index(fake_info(4.0, fps=2.5), [1, 3]) == [3, 8]  # 2.5 -> 3, 7.5 -> 8
    ntsc = fake_info(60.0, fps=30000 / 1001)
    assert video.grid_to_frame_index(ntsc, [7, 59]) == [210, 1768]  # 209.79 -> 210, 1768.23 -> 1768
    with pytest.raises(ValueError):
        video.grid_to_frame_index(info, [11])
    with pytest.raises(ValueError):
        video.grid_to_frame_index(info, [-1])


def test_clip_plan_is_configurable():
    info = fake_info(12.0)
    two_fps = video.plan_clips(info, clip_seconds=5.0, grid_fps=2.0)
    assert [c.grid_ids for c in two_fps] == [tuple(range(10)), tuple(range(10, 20)), tuple(range(20, 24))]
    assert video.grid_timestamps(info, grid_fps=2.0)[:3] == [0.0, 0.5, 1.0]
    assert [c.grid_ids for c in video.plan_clips(info, clip_seconds=4.0)] == [
        (0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)
    ]  # fmt: skip
    with pytest.raises(ValueError):
        video.plan_clips(info, clip_seconds=2.5, grid_fps=1.0)  # half a grid frame per clip
    with pytest.raises(ValueError):
        video.plan_clips(info, grid_fps=0)


def test_uniform_indices():
    assert video.uniform_indices(5, 512) == [0, 1, 2, 3, 4]
    assert video.uniform_indices(10, 3) == [0, 4, 9]
    assert video.uniform_indices(10, 1) == [0]
    assert video.uniform_indices(10, 0) == [] and video.uniform_indices(0, 5) == []
    for total, n in [(513, 512), (600, 512), (3600, 512), (10_000, 7), (100, 99)]:
        ids = video.uniform_indices(total, n)
        assert len(ids) == n and ids == sorted(set(ids)) and ids[0] == 0 and ids[-1] == total - 1
        assert ids == np.linspace(0, total - 1, n).astype(int).tolist()
    with pytest.raises(ValueError):
        video.uniform_indices(-1, 3)
