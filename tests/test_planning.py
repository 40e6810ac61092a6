"""vidthinker.planning: probe a manifest video and cut it into clips on the frame grid (real H.264 files)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from vidthinker.config import VideoSettings
from vidthinker.planning import plan_manifest, plan_video, probe_and_plan
from vidthinker.schema import ManifestRow, QAPair
from vidthinker.video import mp4_data_url

QA = [QAPair(qa_id="q", question="What happens?")]


def write_video(path: Path, seconds: float, fps: float = 10.0) -> Path:
    """A grey H.264 mp4 of round(seconds * fps) frames at fps (so it lasts exactly `seconds`)."""
    frames = np.full((round(seconds * fps), 32, 48, 3), 90, np.uint8)
    url = mp4_data_url(frames, fps)
    path.write_bytes(base64.b64decode(url.split(",", 1)[1]))
    return path


def row(video: Path | str, video_id: str = "v") -> ManifestRow:
    return ManifestRow(video_id=video_id, video=str(video), qa=QA)


def spans(plan):
    return [(c.clip_id, c.start_s, c.end_s, c.frame_ids) for c in plan.clips]


@pytest.mark.parametrize(
    "seconds, expected",
    [
        (0.4, [(0, 0.0, 0.4, [0])]),  # shorter than a clip: one clip, one grid frame
        (5.0, [(0, 0.0, 5.0, [0, 1, 2, 3, 4])]),  # exactly one clip: no empty second clip
        (
            12.3,
            [(0, 0.0, 5.0, [0, 1, 2, 3, 4]), (1, 5.0, 10.0, [5, 6, 7, 8, 9]), (2, 10.0, 12.3, [10, 11, 12])],
        ),
    ],
)
def test_five_second_clips_on_the_one_fps_grid(tmp_path, seconds, expected):
    video = write_video(tmp_path / "v.mp4", seconds)
    plan = plan_video(row(video), VideoSettings())
    assert plan.error is None
    assert spans(plan) == expected
    assert plan.num_grid_frames == sum(len(c[3]) for c in expected)
    assert (
        plan.duration_s == pytest.approx(seconds)
        and plan.fps == 10.0
        and plan.num_frames == round(seconds * 10)
    )
    assert (plan.width, plan.height, plan.codec) == (48, 32, "h264")
    assert (plan.video_id, plan.video, plan.clip_seconds, plan.grid_fps) == ("v", str(video), 5.0, 1.0)


def test_a_finer_grid_puts_more_frames_in_each_clip(tmp_path):
    video = write_video(tmp_path / "v.mp4", 12.3)
    plan = plan_video(row(video), VideoSettings(clip_seconds=2.0, grid_fps=2.0))
    assert [c.frame_ids for c in plan.clips][:2] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # ceil(12.3 s * 2 fps) = 25 grid ids: the last one (12.0 s) alone in the last clip, cut at the video's end
    assert (
        len(plan.clips) == 7
        and plan.clips[-1].frame_ids == [24]
        and plan.clips[-1].end_s == pytest.approx(12.3)
    )
    assert plan.num_grid_frames == 25 and plan.grid_fps == 2.0


def test_probe_and_plan_returns_the_probe_result_with_the_plan(tmp_path):
    video = write_video(tmp_path / "v.mp4", 5.0)
    info, plan = probe_and_plan(row(video), VideoSettings())
    assert info is not None and info.path == str(video.resolve()) and info.duration_s == plan.duration_s


def test_a_missing_video_is_a_plan_with_no_clips_and_the_reason(tmp_path):
    info, plan = probe_and_plan(row(tmp_path / "gone.mp4"), VideoSettings())
    assert info is None and plan.clips == [] and plan.num_grid_frames == 0
    assert plan.error.startswith("VideoNotFound: ")


def test_a_file_that_is_not_a_video_names_why(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 10)
    plan = plan_video(row(text), VideoSettings())
    assert plan.clips == [] and plan.error is not None
    assert plan.error.split(":")[0] in {"NotAVideo", "CorruptVideo", "UnreadableVideo"}


def test_a_video_outside_the_allowed_roots_is_refused(tmp_path):
    (tmp_path / "allowed").mkdir()
    video = write_video(tmp_path / "v.mp4", 0.4)
    plan = plan_video(row(video), VideoSettings(allowed_roots=[tmp_path / "allowed"]))
    assert plan.clips == [] and plan.error.startswith("VideoPathNotAllowed: ")


def test_an_os_error_the_probe_did_not_name_stays_the_rows_error(tmp_path, monkeypatch):
    def refuse(path, allowed_roots=None):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("vidthinker.planning.probe", refuse)
    plan = plan_video(row(tmp_path / "v.mp4"), VideoSettings())
    assert plan.clips == [] and plan.error == "UnreadableVideo: cannot access the file (Permission denied)"


def test_plan_manifest_plans_every_row_in_order_and_reports_each(tmp_path):
    rows = [
        row(write_video(tmp_path / "a.mp4", 12.3), "a"),
        row(tmp_path / "gone.mp4", "b"),
        row(write_video(tmp_path / "c.mp4", 0.4), "c"),
    ]
    seen = []
    plans = plan_manifest(rows, VideoSettings(), on_planned=seen.append)
    assert [p.video_id for p in plans] == ["a", "b", "c"] and seen == plans
    assert [len(p.clips) for p in plans] == [3, 0, 1] and plans[1].error.startswith("VideoNotFound")
    assert plan_manifest([], VideoSettings()) == []
