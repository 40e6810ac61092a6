"""Probe each manifest video and cut it into clips on the frame grid: the input of stage 1."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from vidthinker.config import VideoSettings
from vidthinker.schema import ClipPlan, ClipSpan, ManifestRow
from vidthinker.video import VideoError, VideoInfo, plan_clips, probe


def plan_video(row: ManifestRow, settings: VideoSettings) -> ClipPlan:
    """The clip plan of one video; an unusable video gives a plan with no clips and the error."""
    return probe_and_plan(row, settings)[1]


def probe_and_plan(row: ManifestRow, settings: VideoSettings) -> tuple[VideoInfo | None, ClipPlan]:
    """(probe result, clip plan); the probe result is None when the video cannot be used."""
    base = {"video_id": row.video_id, "video": row.video, "clip_seconds": settings.clip_seconds, "grid_fps": settings.grid_fps}
    try:
        info = probe(row.video, allowed_roots=settings.allowed_roots)
        clips = plan_clips(info, clip_seconds=settings.clip_seconds, grid_fps=settings.grid_fps)
    except VideoError as error:
        return None, ClipPlan(**base, error=f"{type(error).__name__}: {error.reason}")
    except OSError as error:  # anything the probe did not name: still this row's error, never the manifest's
        return None, ClipPlan(**base, error=f"UnreadableVideo: cannot access the file ({error.strerror or error})")
    return info, ClipPlan(
        **base,
        duration_s=info.duration_s,
        fps=info.fps,
        num_frames=info.num_frames,
        width=info.width,
        height=info.height,
        codec=info.codec,
        num_grid_frames=sum(len(clip.grid_ids) for clip in clips),
        clips=[
            ClipSpan(clip_id=clip.clip_id, start_s=clip.start_s, end_s=clip.end_s, frame_ids=list(clip.grid_ids))
            for clip in clips
        ],
    )


def plan_manifest(
    rows: Iterable[ManifestRow], settings: VideoSettings, on_planned: Callable[[ClipPlan], None] | None = None
) -> list[ClipPlan]:
    plans = []
    for row in rows:
        plan = plan_video(row, settings)
        plans.append(plan)
        if on_planned is not None:
            on_planned(plan)
    return plans
