"""The record browser's frame strip: 1-fps thumbnails on a clip timeline, the record's picks highlighted.

Frames are decoded with `vidthinker.video.decode_grid_frames` (in the isolated decode worker, downscaled
there) and JPEG-encoded; the app caches the result per (video, size, mtime). Long videos show every
frame of the retrieved clips, the selected and candidate frames and a uniform sample of the rest, and a
full-length timeline bar, so one page never decodes thousands of frames.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

from vidthinker.schema import VideoITGRecord
from vidthinker.video import VideoError, decode_grid_frames, encode_jpeg, grid_size, probe, uniform_indices

THUMB_SIDE = 112
MAX_FULL_STRIP = 180
SAMPLE_REST = 48


@dataclass
class Thumbs:
    num_grid_frames: int
    jpegs: dict[int, bytes] = field(default_factory=dict)
    error: str | None = None


def wanted_frames(record: VideoITGRecord, num_grid_frames: int, clip_seconds: float, grid_fps: float) -> list[int]:
    """Which grid frames the strip shows: all of a short video; the record's frames and clips plus a sample."""
    if num_grid_frames <= MAX_FULL_STRIP:
        return list(range(num_grid_frames))
    per_clip = max(1, round(clip_seconds * grid_fps))
    keep = set(record.frame_num)
    if record.localization is not None:
        keep |= set(record.localization.candidate_frame_ids) | set(record.localization.duplicate_frame_ids)
    for clip in record.clip_num:
        keep |= set(range(clip * per_clip, (clip + 1) * per_clip))
    keep |= set(uniform_indices(num_grid_frames, SAMPLE_REST))
    return sorted(f for f in keep if 0 <= f < num_grid_frames)


def decode_thumbs(video: str, record: VideoITGRecord, *, side: int = THUMB_SIDE) -> Thumbs:
    """Thumbnails of the grid frames the strip shows (errors become a message, not an exception)."""
    grid_fps = record.provenance.grid_fps
    clip_seconds = record.provenance.clip_seconds
    try:
        info = probe(video)
        total = grid_size(info, grid_fps)
        ids = wanted_frames(record, total, clip_seconds, grid_fps)
        frames = decode_grid_frames(info, ids, grid_fps, max_side=side, timeout_s=60.0)
    except (VideoError, ValueError, OSError) as error:
        return Thumbs(num_grid_frames=0, error=f"{type(error).__name__}: {error}")
    return Thumbs(num_grid_frames=total, jpegs={i: encode_jpeg(f, quality=80) for i, f in zip(ids, frames)})


def video_key(video: str) -> tuple[str, int, int]:
    """Cache key of a video file (path, size, mtime)."""
    path = Path(video)
    try:
        stat = path.stat()
        return str(path), stat.st_size, stat.st_mtime_ns
    except OSError:
        return str(path), -1, -1


STRIP_CSS = """
<style>
.vt-legend{display:flex;gap:14px;font:12px sans-serif;margin:4px 0 8px;flex-wrap:wrap}
.vt-legend span{display:inline-flex;align-items:center;gap:4px}
.vt-swatch{display:inline-block;width:14px;height:10px;border-radius:2px}
.vt-timeline{position:relative;height:22px;background:#eceff4;border-radius:4px;margin:4px 0 10px}
.vt-timeline .vt-tclip{position:absolute;top:0;height:22px;border-left:1px solid #b8bec9;box-sizing:border-box}
.vt-timeline .vt-tclip.retrieved{background:rgba(46,134,222,.30)}
.vt-timeline .vt-tick{position:absolute;top:2px;width:3px;height:18px;background:#e8590c;border-radius:1px}
.vt-strip{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}
.vt-clip{border:1px solid #d0d5dd;border-radius:6px;padding:4px;background:#fafbfc}
.vt-clip.retrieved{border:2px solid #2e86de;background:#eaf3fc}
.vt-clip-label{font:11px sans-serif;color:#444;margin-bottom:3px}
.vt-clip.retrieved .vt-clip-label{color:#1c5fa8;font-weight:600}
.vt-frames{display:flex;gap:3px}
.vt-frame{margin:0;position:relative;border:3px solid transparent;border-radius:4px;line-height:0}
.vt-frame img{display:block;border-radius:2px}
.vt-frame figcaption{font:10px monospace;line-height:12px;text-align:center;color:#555}
.vt-frame.candidate{border-color:#ced4da}
.vt-frame.duplicate{border-color:#adb5bd;border-style:dashed;opacity:.55}
.vt-frame.rejected{border-color:#c92a2a;border-style:dotted;opacity:.55}
.vt-frame.selected{border-color:#e8590c;opacity:1}
.vt-frame.selected figcaption{color:#e8590c;font-weight:700}
.vt-frame.missing{width:60px;height:45px;background:repeating-linear-gradient(45deg,#eee,#eee 4px,#f8f8f8 4px,#f8f8f8 8px)}
.vt-gap{font:12px sans-serif;color:#888;align-self:center;padding:0 6px}
</style>
"""


def _legend() -> str:
    items = [("#e8590c", "selected frame (frame_num)"), ("rgba(46,134,222,.5)", "retrieved clip (clip_num)"),
             ("#ced4da", "candidate"), ("#adb5bd", "dropped near-duplicate"), ("#c92a2a", "rejected by VLM check")]
    return '<div class="vt-legend">' + "".join(
        f'<span><i class="vt-swatch" style="background:{c}"></i>{html.escape(t)}</span>' for c, t in items) + "</div>"


def _timeline(record: VideoITGRecord, total: int, per_clip: int) -> str:
    if total <= 0:
        return ""
    clips = math.ceil(total / per_clip)
    parts = []
    for c in range(clips):
        left = 100 * c * per_clip / total
        width = 100 * min(per_clip, total - c * per_clip) / total
        cls = "vt-tclip retrieved" if c in set(record.clip_num) else "vt-tclip"
        parts.append(f'<div class="{cls}" data-clip-id="{c}" style="left:{left:.3f}%;width:{width:.3f}%"></div>')
    for f in record.frame_num:
        parts.append(f'<div class="vt-tick" data-frame-id="{f}" style="left:{100 * (f + 0.5) / total:.3f}%"></div>')
    return f'<div class="vt-timeline" data-testid="frame-timeline">{"".join(parts)}</div>'


def strip_html(record: VideoITGRecord, thumbs: Thumbs) -> str:
    """The frame strip as HTML; every frame tile carries data-frame-id, selected ones the class 'selected'."""
    grid_fps = record.provenance.grid_fps
    per_clip = max(1, round(record.provenance.clip_seconds * grid_fps))
    selected = set(record.frame_num)
    retrieved = set(record.clip_num)
    loc = record.localization
    candidates = set(loc.candidate_frame_ids) if loc else set()
    duplicates = set(loc.duplicate_frame_ids) if loc else set()
    rejected = set(loc.rejected_frame_ids) if loc else set()
    header = STRIP_CSS + _legend()
    if thumbs.error:
        return (header + f'<div class="vt-strip" data-testid="frame-strip" data-record-id="{html.escape(record.id)}" '
                f'data-error="1"><p>Cannot show frames: {html.escape(thumbs.error)}</p></div>')
    shown = sorted(thumbs.jpegs)
    by_clip: dict[int, list[int]] = {}
    for f in shown:
        by_clip.setdefault(f // per_clip, []).append(f)
    blocks, previous = [], None
    for clip, frames in sorted(by_clip.items()):
        if previous is not None and clip > previous + 1:
            blocks.append(f'<div class="vt-gap">… {clip - previous - 1} clips …</div>')
        previous = clip
        start, end = clip * per_clip / grid_fps, (clip + 1) * per_clip / grid_fps
        tiles = []
        for f in frames:
            classes = ["vt-frame"]
            classes += [name for name, ids in (("candidate", candidates), ("duplicate", duplicates),
                                               ("rejected", rejected), ("selected", selected)) if f in ids]
            data = base64.b64encode(thumbs.jpegs[f]).decode()
            tiles.append(f'<figure class="{" ".join(classes)}" data-frame-id="{f}" title="frame {f} · t={f / grid_fps:g} s">'
                         f'<img alt="frame {f}" src="data:image/jpeg;base64,{data}"><figcaption>{f}</figcaption></figure>')
        cls = "vt-clip retrieved" if clip in retrieved else "vt-clip"
        blocks.append(f'<div class="{cls}" data-clip-id="{clip}"><div class="vt-clip-label">Clip {clip} · '
                      f'{start:g}–{end:g} s{" · retrieved" if clip in retrieved else ""}</div>'
                      f'<div class="vt-frames">{"".join(tiles)}</div></div>')
    missing = sorted(selected - set(shown))
    note = (f'<p class="vt-missing">selected frames beyond the video: {missing}</p>' if missing else "")
    return (header + _timeline(record, thumbs.num_grid_frames, per_clip)
            + f'<div class="vt-strip" data-testid="frame-strip" data-record-id="{html.escape(record.id)}">'
            + "".join(blocks) + "</div>" + note)

