"""Video access for VidThinker: probe, the 1-fps frame grid, the clip plan, frame decoding, and
frame encoding for model requests.

Conventions (shared by every stage, the selector and the evaluation):

* **Frame index** ``i`` is the i-th frame of the video stream in presentation (pts) order, counted from 0.
  This is decord's definition, and the PyAV backend computes the same one, so both backends agree.
* **Grid id** ``k`` (the paper's "1-fps frame id") has timestamp ``t_k = k / grid_fps`` seconds from the
  first frame, for ``k = 0 .. ceil(duration * grid_fps) - 1``: every grid timestamp is strictly earlier
  than the duration (timestamps within 1 µs of the end are dropped, so float noise in a container's
  duration cannot add a grid id). Its video frame index is ``min(floor(t_k * fps + 0.5), num_frames - 1)``
  (round half up, not Python's banker's ``round``).
* **Clip** ``c`` covers grid ids ``[c * P, (c + 1) * P)`` with ``P = clip_seconds * grid_fps`` (a whole
  number); with the defaults clip c is grid ids 5c..5c+4 and the last clip may be shorter.
* **Rotation** is the display-matrix rotation in degrees counter-clockwise, normalised to 0/90/180/270
  (FFmpeg's and PyAV's convention); ``decode_frames`` applies it, so frames come out as a player shows
  them, and ``VideoInfo.width``/``height`` are the displayed size. Non-square pixels (sample aspect ratio)
  are not corrected.

Decoding runs by default in a reusable child process (``DecodeWorker``), because decord's bundled FFmpeg
can segfault or spin forever on damaged input: a crash becomes ``CorruptVideo``, a hang becomes
``VideoDecodeTimeout``, and the next call gets a fresh worker. ``isolate=False`` decodes in-process
(faster, no timeout) for trusted files and benchmarks.

Remote URIs (http, s3, ...) are rejected: fetching is out of scope here, callers download first.
"""

from __future__ import annotations

import base64
import bisect
import io
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

__all__ = [
    "Backend",
    "Clip",
    "CorruptVideo",
    "DecodeWorker",
    "EmptyVideo",
    "NotAVideo",
    "UnsupportedVideo",
    "VideoDecodeTimeout",
    "VideoError",
    "VideoInfo",
    "VideoNotFound",
    "UnreadableVideo",
    "VideoPathNotAllowed",
    "check_allowed",
    "decode_frames",
    "decode_grid_frames",
    "encode_jpeg",
    "fit_max_side",
    "grid_size",
    "grid_timestamps",
    "grid_to_frame_index",
    "jpeg_data_url",
    "plan_clips",
    "probe",
    "resize_max_side",
    "uniform_indices",
]

Backend = Literal["auto", "decord", "pyav"]
PathLike = str | os.PathLike[str]

# decord 0.6 bundles FFmpeg 4.1 without an AV1 (or newer) decoder: send these straight to PyAV instead
# of paying for a failed open first.
_DECORD_UNSUPPORTED_CODECS = frozenset({"av1", "vvc", "evc"})

# How many frames past the last decodable one a request may point and still get that last frame.
# Containers without a frame count (mkv, webm) give an estimate from duration*fps that can overshoot by
# a frame or two; anything further out means data is missing.
_END_TOLERANCE_S = 0.5

# Stop looking for a first decodable frame after this many packets (bounds probe time on garbage).
_PROBE_MAX_PACKETS = 600

_GRID_EPS_S = 1e-6


# --------------------------------------------------------------------------------------------------
# Errors


class VideoError(Exception):
    """A video cannot be used. ``str(err)`` is ``"<path>: <reason>"``."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    # The default pickling replays ``args`` (the formatted message) into __init__, which needs two
    # arguments; errors cross the decode-worker pipe, so pickle the fields instead.
    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class VideoNotFound(VideoError):
    """The file does not exist."""


class UnreadableVideo(VideoError):
    """The path cannot be resolved or stat'ed: a symbolic link loop, permission denied, an I/O error."""


class VideoPathNotAllowed(VideoError):
    """The path (after resolving symlinks and ``..``) is outside the allowed roots."""


class NotAVideo(VideoError):
    """Not a media file, or a media file without a video stream (audio-only, a still image)."""


class EmptyVideo(VideoError):
    """Zero bytes, zero duration or zero frames."""


class CorruptVideo(VideoError):
    """Truncated or damaged data, a decoder failure or a decoder crash."""


class VideoDecodeTimeout(VideoError):
    """Decoding did not finish within the time limit (the worker was killed)."""


class UnsupportedVideo(VideoError):
    """Valid input this module does not handle: a remote URI, or a codec the chosen backend lacks."""


# --------------------------------------------------------------------------------------------------
# Paths


def _local_path(path: PathLike) -> Path:
    text = os.fspath(path)
    if "://" not in text:
        return Path(text)
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() != "file":
        raise UnsupportedVideo(
            text,
            f"'{parts.scheme}://' URIs are not supported: only local paths and file:// URIs are read "
            "(remote fetching is out of scope for vidthinker.video; download the file first)",
        )
    if parts.netloc not in ("", "localhost"):
        raise UnsupportedVideo(
            text, f"file:// URI names a remote host '{parts.netloc}'; only local files are read"
        )
    return Path(urllib.request.url2pathname(parts.path))


def check_allowed(path: PathLike, allowed_roots: Iterable[PathLike] | PathLike | None = None) -> Path:
    """Return the resolved local path of ``path`` (a path or file:// URI) if it lies under one of
    ``allowed_roots``; ``None`` allows everything, an empty list nothing.

    Symlinks and ``..`` are resolved before the check, so a link inside a root that points outside it is
    refused. Raises ``VideoPathNotAllowed`` (or ``UnsupportedVideo`` for remote URIs). The file need not
    exist: refusing before looking keeps the answer from revealing what exists outside the roots.
    """
    try:
        resolved = Path(os.path.abspath(_local_path(path))).resolve()
    except RuntimeError:  # Python < 3.13 raises this for a symlink loop (3.13 leaves it to stat: ELOOP)
        raise UnreadableVideo(path, "cannot resolve the path: symbolic link loop") from None
    except OSError as err:
        raise UnreadableVideo(path, f"cannot resolve the path ({err.strerror or err})") from None
    if allowed_roots is None:
        return resolved
    if isinstance(allowed_roots, (str, os.PathLike)):
        allowed_roots = [allowed_roots]
    roots = [Path(os.path.abspath(_local_path(r))).resolve() for r in allowed_roots]
    if any(resolved.is_relative_to(root) for root in roots):
        return resolved
    shown = ", ".join(str(r) for r in roots) or "none configured"
    raise VideoPathNotAllowed(path, f"resolves to {resolved}, which is outside the allowed roots ({shown})")


# --------------------------------------------------------------------------------------------------
# Probe


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


# Leading bytes of container formats that carry video. A file that starts like one of these but cannot
# be opened is damaged (CorruptVideo), not some other kind of file (NotAVideo).
def _sniff_container(head: bytes) -> str | None:
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return "MP4/MOV"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "AVI"
    if head.startswith(b"FLV"):
        return "FLV"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "MPEG-PS"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "MPEG-TS"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "ASF/WMV"
    return None


def _check_isobmff(path: Path, size: int) -> tuple[str | None, bool]:
    """Walk the top-level MP4 boxes; return (why the file is truncated or None, whether a track
    declares itself video).

    FFmpeg opens an MP4 whose data was cut short (moov first, mdat cut) as if it were whole, and decord
    then fails or misbehaves only when it reaches the missing bytes. The box sizes tell us up front, for
    the price of a few small reads. The handler check lets a damaged index that FFmpeg can no longer
    read as video be told apart from an audio-only file.
    """
    seen: set[bytes] = set()
    moov: tuple[int, int] | None = None
    offset = 0
    with path.open("rb") as f:
        for _ in range(100_000):  # bounds the walk on adversarial input
            if offset + 8 > size:
                break
            f.seek(offset)
            header = f.read(16)
            box_size, box_type = struct.unpack(">I4s", header[:8])
            name = box_type.decode("latin-1")
            header_len = 8
            if box_size == 1:
                if len(header) < 16:
                    return f"truncated: the '{name}' box header at offset {offset} is cut short", False
                (box_size,) = struct.unpack(">Q", header[8:16])
                header_len = 16
            elif box_size == 0:  # "extends to the end of the file"
                box_size = size - offset
            if box_size < header_len:
                problem = (
                    f"damaged MP4 structure: box '{name}' at offset {offset} has an invalid size {box_size}"
                )
                return problem, False
            if offset + box_size > size:
                problem = (
                    f"truncated: the '{name}' box at offset {offset} declares {box_size} bytes but only "
                    f"{size - offset} remain (file cut short or still being written?)"
                )
                return problem, False
            seen.add(box_type)
            if box_type == b"moov" and moov is None:
                moov = (offset, box_size)
            offset += box_size
        if moov is None:
            if b"moof" in seen:  # fragmented MP4 whose index lives in fragments: nothing to check here
                return None, False
            return (
                "truncated MP4: no 'moov' box (the index is missing; file cut short or still being written?)",
                False,
            )
        f.seek(moov[0])
        index = f.read(min(moov[1], 64 << 20))
    # A 'hdlr' box is [size][b"hdlr"][version/flags][pre_defined][handler type], e.g. b"vide".
    at = index.find(b"hdlr")
    while at != -1:
        if index[at + 12 : at + 16] == b"vide":
            return None, True
        at = index.find(b"hdlr", at + 4)
    return None, False


def _pick_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    # Cover art in audio files shows up as a one-frame "video" stream flagged attached_pic.
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _rotation_of(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    # Frames carry the display matrix as side data (PyAV reports it counter-clockwise). Very old muxers
    # left only a "rotate" tag, which counts clockwise.
    ccw = round(getattr(frame, "rotation", 0) or 0)  # PyAV >= 13
    if ccw == 0 and "rotate" in stream.metadata:
        try:
            ccw = -int(float(stream.metadata["rotate"]))
        except ValueError:
            ccw = 0
    ccw %= 360
    return ccw if ccw in (0, 90, 180, 270) else 90 * round(ccw / 90) % 360


def _open_container(path: Path, shown: PathLike, kind: str | None) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as err:
        detail = getattr(err, "strerror", None) or str(err)
        if kind is not None:
            raise CorruptVideo(shown, f"looks like {kind} but FFmpeg cannot open it ({detail})") from None
        raise NotAVideo(shown, f"not a media file FFmpeg can open ({detail})") from None


def probe(path: PathLike, *, allowed_roots: Iterable[PathLike] | PathLike | None = None) -> VideoInfo:
    """Validate a local video and read its metadata; decodes its first frame to prove it decodes.

    Raises, in the order checked: ``UnsupportedVideo`` (remote URI), ``VideoPathNotAllowed``,
    ``VideoNotFound``, ``EmptyVideo`` (0 bytes), ``CorruptVideo`` (MP4 boxes cut short, or a video
    container FFmpeg cannot open), ``NotAVideo`` (not media, still image, no video stream),
    ``EmptyVideo`` (no frames / zero duration), ``CorruptVideo`` (no frame decodes).
    Runs in-process: FFmpeg's demuxers are robust; the risky part (decord) only runs in ``decode_frames``.
    """
    resolved = check_allowed(path, allowed_roots)
    try:
        st = resolved.stat()
    except FileNotFoundError:
        raise VideoNotFound(path, "file not found") from None
    except OSError as err:  # ELOOP, EACCES, EIO: this row's error, not the manifest's
        raise UnreadableVideo(path, f"cannot access the file ({err.strerror or err})") from None
    if resolved.is_dir():
        raise NotAVideo(path, "is a directory, not a video file")
    if st.st_size == 0:
        raise EmptyVideo(path, "file is empty (0 bytes)")
    try:
        with resolved.open("rb") as f:
            head = f.read(512)
    except OSError as err:
        raise UnreadableVideo(path, f"cannot read the file ({err.strerror})") from None
    kind = _sniff_container(head)
    declares_video = False
    if kind == "MP4/MOV":
        problem, declares_video = _check_isobmff(resolved, st.st_size)
        if problem:
            raise CorruptVideo(path, problem)

    with _open_container(resolved, path, kind) as container:
        fmt = container.format.name
        if fmt == "image2" or fmt.endswith("_pipe"):
            raise NotAVideo(path, f"a still image ({fmt}), not a video")
        stream = _pick_video_stream(container)
        if stream is None:
            if declares_video:
                raise CorruptVideo(
                    path, "the MP4 index declares a video track that FFmpeg cannot read (damaged?)"
                )
            if not container.streams:
                raise EmptyVideo(path, "the file contains no audio or video streams (nothing was recorded?)")
            if kind is not None and not container.streams.audio:
                # A video container whose tracks read as neither audio nor video: its index is damaged.
                raise CorruptVideo(
                    path, f"no readable audio or video stream in this {kind} file (damaged index?)"
                )
            extra = " (only cover art)" if container.streams.video else ""
            raise NotAVideo(path, f"no video stream (audio-only?){extra}")
        has_audio = bool(container.streams.audio)
        codec = stream.codec_context.codec.canonical_name
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0

        duration_s: float | None = None
        if stream.duration and stream.time_base:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base
        num_frames = int(stream.frames or 0)
        estimated = False

        first, packets = _first_frame(container, stream, path)
        if packets == 0:
            raise EmptyVideo(path, "the video stream contains no frames")
        if first is None:
            raise CorruptVideo(path, f"no frame decodes in the first {packets} packets of the video stream")
        rotation = _rotation_of(first, stream)
        coded_w, coded_h = first.width, first.height

    if fps <= 0 and num_frames > 0 and duration_s:
        fps = num_frames / duration_s
    if fps <= 0:
        raise UnsupportedVideo(path, "the video stream has no frame rate")
    if num_frames <= 0:
        if duration_s is None:
            num_frames = _count_packets(resolved, path)
        else:
            num_frames = max(1, math.floor(duration_s * fps + 0.5))
            estimated = True
    if duration_s is None:
        duration_s = num_frames / fps
    if duration_s <= 0:
        raise EmptyVideo(path, "zero duration")
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    return VideoInfo(
        path=str(resolved),
        duration_s=duration_s,
        fps=fps,
        num_frames=num_frames,
        width=width,
        height=height,
        codec=codec,
        rotation=rotation,
        container=fmt,
        has_audio=has_audio,
        num_frames_estimated=estimated,
    )


def _first_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, shown: PathLike
) -> tuple[av.VideoFrame | None, int]:
    """Decode until the first frame; return it (or None) and the number of packets read."""
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
            # The empty packet at EOF flushes frames the decoder still holds back (B-frame delay).
            for frame in packet.decode():
                return frame, packets
            if packets >= _PROBE_MAX_PACKETS:
                break
    except av.FFmpegError as err:
        if packets == 0:
            raise CorruptVideo(shown, f"cannot read the video stream ({err})") from None
        raise CorruptVideo(shown, f"decoding the first frame failed ({err})") from None
    return None, packets


def _count_packets(path: Path, shown: PathLike) -> int:
    # Only for streams that state neither a frame count nor a duration (raw elementary streams).
    count = 0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = _pick_video_stream(container)
            assert stream is not None
            for packet in container.demux(stream):
                count += packet.size > 0
    except av.FFmpegError as err:
        raise CorruptVideo(shown, f"reading the video stream failed after {count} frames ({err})") from None
    return count


# --------------------------------------------------------------------------------------------------
# Frame grid and clip plan


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


# --------------------------------------------------------------------------------------------------
# Resizing and encoding


def fit_max_side(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Size after scaling so the longer side is at most ``max_side`` (aspect kept, never upscaled)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    scale = max_side / max(width, height)
    return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))


def _check_frame(frame: np.ndarray) -> None:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB frame, got {frame.dtype} {frame.shape}")


def resize_max_side(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale an RGB frame so its longer side is at most ``max_side``; returns it unchanged if it fits."""
    _check_frame(frame)
    h, w = frame.shape[:2]
    new_w, new_h = fit_max_side(w, h, max_side)
    if (new_w, new_h) == (w, h):
        return frame
    from PIL import Image

    # Pillow's BILINEAR widens its kernel when shrinking, i.e. it antialiases.
    return np.asarray(Image.fromarray(frame).resize((new_w, new_h), Image.Resampling.BILINEAR))


def encode_jpeg(frame: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of a uint8 (H, W, 3) RGB frame."""
    _check_frame(frame)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def jpeg_data_url(frame: np.ndarray, *, max_side: int | None = None, quality: int = 85) -> str:
    """``data:image/jpeg;base64,...`` URL of a frame (downscaled to ``max_side``), for image content parts."""
    data = encode_jpeg(resize_max_side(frame, max_side), quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def mp4_data_url(frames: np.ndarray, fps: float, *, max_side: int | None = None) -> str:
    """``data:video/mp4;base64,...`` of uint8 (N, H, W, 3) RGB frames as H.264, for models that take a
    clip as one video part (vLLM's ``video_url``)."""
    import av

    if len(frames) == 0:
        raise ValueError("no frames to encode")
    frames = np.stack([resize_max_side(f, max_side) for f in frames])
    # yuv420p needs even sizes.
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "h264", rate=max(1, round(fps)))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return "data:video/mp4;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------------------------------
# Decoding (runs in the worker process, or in-process with isolate=False)


@dataclass(frozen=True)
class _DecodeRequest:
    path: str  # resolved path to open
    shown: str  # path as the caller gave it, for messages
    indices: tuple[int, ...]  # in the caller's order, duplicates allowed
    num_frames: int
    fps: float
    rotation: int
    size: tuple[int, int] | None  # output (width, height) as displayed (after rotation); None = native
    backends: tuple[str, ...]  # tried in order; a later one only after an exception (not a crash)


class _MissingFrames(Exception):
    """The stream holds fewer decodable frames than requested (backend-neutral; becomes CorruptVideo)."""


def _import_decord() -> Any:
    import decord

    # decord otherwise prints FFmpeg's complaints about damaged input to stderr; we report them as errors.
    decord.logging.set_level(decord.logging.QUIET)
    return decord


def _clamp_to_available(indices: Sequence[int], available: int, req: _DecodeRequest) -> list[int]:
    """Map requested indices onto the frames that exist; tolerate a small overshoot at the end."""
    if available <= 0:
        raise _MissingFrames("no frame can be read from the video stream")
    tolerance = max(2, math.ceil(req.fps * _END_TOLERANCE_S))
    last = available - 1
    worst = max(indices)
    if worst > last + tolerance:
        raise _MissingFrames(
            f"frame {worst} requested but only {available} of the {req.num_frames} frames the header "
            "announces can be read (truncated or damaged data?)"
        )
    return [min(i, last) for i in indices]


def _decode_decord(req: _DecodeRequest) -> dict[int, np.ndarray]:
    decord = _import_decord()
    # decord applies the rotation itself (checked against ffmpeg for 90/180/270) and resizes after
    # rotating, so it takes the displayed size.
    width, height = req.size if req.size else (-1, -1)
    reader = decord.VideoReader(req.path, ctx=decord.cpu(0), width=width, height=height, num_threads=0)
    wanted = _clamp_to_available(req.indices, len(reader), req)
    unique = sorted(set(wanted))
    batch = reader.get_batch(unique).asnumpy()
    by_index = {i: batch[j] for j, i in enumerate(unique)}
    return {i: by_index[w] for i, w in zip(req.indices, wanted)}


def _decode_pyav(req: _DecodeRequest) -> dict[int, np.ndarray]:
    width, height = req.size or (None, None)
    if req.rotation in (90, 270):
        width, height = height, width  # PyAV scales the frame as stored, we rotate after

    def to_rgb(frame: av.VideoFrame) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
        if req.rotation:  # counter-clockwise, as np.rot90
            rgb = np.ascontiguousarray(np.rot90(rgb, k=req.rotation // 90))
        return rgb

    with av.open(req.path, metadata_errors="ignore") as container:
        stream = _pick_video_stream(container)
        if stream is None:
            raise _MissingFrames("no video stream")
        stream.thread_type = "AUTO"

        # Demux-only pass (no decoding, cheap next to decoding): frame i is the i-th smallest pts, as in
        # decord, and keyframe positions tell us when seeking beats decoding forward. It also counts the
        # frames really present when the file is cut short.
        pts_list: list[int] = []
        key_pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    pts_list = []
                    break
                pts_list.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.append(packet.pts)
        except av.FFmpegError:
            pass  # damaged or cut short: keep what was read, _clamp_to_available judges the rest
        if not pts_list:
            return _decode_pyav_sequential(container, stream, req, to_rgb)

        pts_list.sort()
        rank_of = {p: r for r, p in enumerate(pts_list)}
        key_ranks = sorted({rank_of[p] for p in key_pts}) or [0]
        wanted = _clamp_to_available(req.indices, len(pts_list), req)

        def rank(frame: av.VideoFrame) -> int:
            p = frame.pts
            if p is None:
                return -1
            r = rank_of.get(p)
            return r if r is not None else max(0, bisect.bisect_left(pts_list, p))

        def restart(from_rank: int) -> Iterator[av.VideoFrame]:
            container.seek(pts_list[from_rank], stream=stream, backward=True, any_frame=False)
            return container.decode(stream)

        frames: dict[int, np.ndarray] = {}
        decoder: Iterator[av.VideoFrame] | None = None
        current = -1  # rank of `last`
        last: av.VideoFrame | None = None
        for target in sorted(set(wanted)):
            if last is not None and current >= target:
                # Decoding went past `target` without producing it (a damaged frame the decoder dropped):
                # use the next frame that decoded.
                frames[target] = to_rgb(last)
                continue
            key = key_ranks[max(0, bisect.bisect_right(key_ranks, target) - 1)]
            seeked = decoder is None or key > current + 1
            if seeked:
                # The demux pass left the file at its end, so the first target always seeks.
                decoder = restart(key)
                current, last = -1, None
            assert decoder is not None
            try:
                while (frame := next(decoder, None)) is not None:
                    r = rank(frame)
                    if seeked and r > target and key > 0:
                        # The seek landed past the target (an odd index): start over from the beginning.
                        decoder, seeked = restart(0), False
                        continue
                    seeked = False
                    current, last = r, frame
                    if current >= target:
                        break
            except av.FFmpegError as err:
                raise _MissingFrames(f"decoding failed near frame {target} ({err})") from None
            if last is None or current < target:
                raise _MissingFrames(
                    f"frame {target} could not be decoded: the stream ends after frame {current} "
                    "(truncated or damaged data?)"
                )
            frames[target] = to_rgb(last)
        return {i: frames[w] for i, w in zip(req.indices, wanted)}


def _decode_pyav_sequential(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    req: _DecodeRequest,
    to_rgb: Callable[[av.VideoFrame], np.ndarray],
) -> dict[int, np.ndarray]:
    # Without timestamps the only frame numbering is decode order: read from the start, no seeking.
    container.seek(0)
    wanted = set(req.indices)
    frames: dict[int, np.ndarray] = {}
    available = 0
    last: av.VideoFrame | None = None
    try:
        for frame in container.decode(stream):
            if available in wanted:
                frames[available] = to_rgb(frame)
            last = frame
            available += 1
            if len(frames) == len(wanted):
                break
    except av.FFmpegError as err:
        raise _MissingFrames(f"decoding failed after frame {available} ({err})") from None
    if len(frames) < len(wanted):
        _clamp_to_available(req.indices, available, req)  # raises if too far past the end
        assert last is not None
        tail = to_rgb(last)
        for i in req.indices:
            frames.setdefault(i, tail)
    return frames


def _decode_in_process(req: _DecodeRequest) -> np.ndarray:
    """Decode ``req.indices`` with the first backend that works; stack them in the requested order."""
    failures: list[str] = []
    for backend in req.backends:
        try:
            frames = _decode_decord(req) if backend == "decord" else _decode_pyav(req)
        except _MissingFrames as err:
            failures.append(f"{backend}: {err}")
            continue
        except MemoryError:  # the request is too big (use max_side), not the file broken
            raise
        except Exception as err:  # noqa: BLE001 - decord raises DECORDError/RuntimeError/IndexError
            failures.append(f"{backend}: {type(err).__name__}: {str(err).strip()[:300]}")
            continue
        return np.stack([frames[i] for i in req.indices])
    reasons = [f.split(": ", 1)[1] for f in failures]
    if len(set(reasons)) == 1:  # both backends saw the same missing data: say it once
        raise CorruptVideo(req.shown, reasons[0])
    raise CorruptVideo(req.shown, "decoding failed: " + "; ".join(failures))


# --------------------------------------------------------------------------------------------------
# Isolation: one reusable child process


class _WorkerCrashed(Exception):
    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        if exitcode is not None and exitcode < 0:
            try:
                how = f"killed by {signal.Signals(-exitcode).name}"
            except ValueError:
                how = f"killed by signal {-exitcode}"
        else:
            how = f"exit code {exitcode}"
        super().__init__(how)


class _WorkerTimeout(Exception):
    pass


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what to do, the child just serves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # Linux: die with the parent even if stuck inside a decoder
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001, S110 - not Linux/glibc: the pipe EOF still ends an idle worker
        pass
    try:  # import once here, so the first request's time limit does not pay for it
        _import_decord()
    except Exception:  # noqa: BLE001, S110 - no decord: "auto" uses PyAV, "decord" reports the error
        pass
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        except Exception as err:  # noqa: BLE001 - the request itself did not unpickle
            conn.send(("error", RuntimeError(f"decode worker could not read the request: {err!r}")))
            continue
        if message is None:
            return
        fn, args = message
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as err:  # noqa: BLE001 - report everything; the worker keeps serving
            reply = ("error", err)
        try:
            conn.send(reply)
        except Exception as err:  # noqa: BLE001 - e.g. an exception that does not pickle
            conn.send(("error", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]!s} ({err!r})")))


class DecodeWorker:
    """A reusable child process that runs decode calls with a time limit.

    One call at a time (a lock serialises threads); create several workers for parallel decoding. The
    process starts on first use as ``python -m vidthinker.video_worker`` (``subprocess``, not
    ``multiprocessing``: no inherited locks or FFmpeg state, and the parent's ``__main__`` script, e.g.
    the ``airflow`` entry point inside a task, is never re-run; see ``vidthinker.childproc``) with a
    minimal environment. It is killed on a timeout and replaced on the next call after a crash or a kill.
    ``python`` picks another interpreter (default: this one); ``start_method`` is accepted for
    compatibility and ignored.
    """

    def __init__(
        self, *, start_method: str | None = None, start_timeout_s: float = 120.0, python: str | None = None
    ) -> None:
        del start_method  # the child is always a fresh interpreter running vidthinker.video_worker
        self._python = python
        self._start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._owner = os.getpid()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def _start(self) -> multiprocessing.connection.Connection:
        if self._owner != os.getpid():
            # A forked copy of this object: the process and pipe belong to the parent; leave them be.
            self._process = self._conn = None
            self._owner = os.getpid()
        if self._process is not None and self._process.poll() is None and self._conn is not None:
            return self._conn
        self._discard()
        from vidthinker import childproc

        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [self._python or childproc.python_executable(), "-m", "vidthinker.video_worker",
                 str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # the worker prints nothing; FFmpeg/decord warnings go to stderr
                pass_fds=(theirs.fileno(),),
                env=childproc.minimal_environment(),
                cwd=os.getcwd() if os.path.isdir(os.getcwd()) else None,
            )  # fmt: skip
        except OSError as err:
            ours.close()
            raise RuntimeError(f"decode worker could not start ({err})") from None
        finally:
            theirs.close()
        parent_conn = multiprocessing.connection.Connection(ours.detach())
        self._process, self._conn = process, parent_conn
        try:
            parent_conn.send(("sys.path", [p for p in sys.path if isinstance(p, str)]))
            if not parent_conn.poll(self._start_timeout_s):
                raise RuntimeError(f"decode worker did not start within {self._start_timeout_s:g} s")
            parent_conn.recv()
        except (EOFError, OSError) as err:
            code = self._discard()
            raise RuntimeError(f"decode worker died while starting ({err!r}, exit code {code})") from None
        except RuntimeError:
            self._discard()
            raise
        return parent_conn

    def _discard(self) -> int | None:
        """Kill and forget the process; return its exit code."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        try:
            return process.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def call(self, fn: Callable[..., Any], *args: Any, timeout_s: float) -> Any:
        """Run ``fn(*args)`` in the worker (fn must be importable by name); re-raise its exceptions.

        Raises ``_WorkerTimeout`` after ``timeout_s`` (the worker is killed) and ``_WorkerCrashed`` if
        the process died.
        """
        with self._lock:
            conn = self._start()
            try:
                conn.send((fn, args))
                ready = conn.poll(timeout_s)
            except (OSError, EOFError):
                raise _WorkerCrashed(self._discard()) from None
            if not ready:
                self._discard()
                raise _WorkerTimeout()
            try:
                status, payload = conn.recv()
            except (OSError, EOFError):
                raise _WorkerCrashed(self._discard()) from None
        if status == "ok":
            return payload
        raise payload

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except OSError:
                    pass
            self._discard()


_default_worker: DecodeWorker | None = None
_default_worker_lock = threading.Lock()


def _get_default_worker() -> DecodeWorker:
    global _default_worker
    with _default_worker_lock:
        if _default_worker is None:
            _default_worker = DecodeWorker()
        return _default_worker


def _forget_default_worker() -> None:
    # After fork (Ray, Airflow, Celery workers) the child must not share the parent's worker or locks.
    global _default_worker, _default_worker_lock
    _default_worker = None
    _default_worker_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_default_worker)


def _decode_isolated(req: _DecodeRequest, timeout_s: float, worker: DecodeWorker | None) -> np.ndarray:
    worker = worker or _get_default_worker()
    try:
        # Look the function up at call time (not bound at import) so tests can substitute a crashing one.
        return worker.call(_decode_in_process, req, timeout_s=timeout_s)
    except _WorkerTimeout:
        raise VideoDecodeTimeout(
            req.shown, f"decoding {len(req.indices)} frames took longer than {timeout_s:g} s; decoder killed"
        ) from None
    except _WorkerCrashed as crash:
        if len(req.backends) > 1:
            # decord's old bundled FFmpeg is the usual culprit: give PyAV a fresh worker once.
            retry = replace(req, backends=req.backends[1:])
            try:
                return worker.call(_decode_in_process, retry, timeout_s=timeout_s)
            except _WorkerTimeout:
                raise VideoDecodeTimeout(
                    req.shown, f"decoder crashed ({crash}); the PyAV retry took longer than {timeout_s:g} s"
                ) from None
            except _WorkerCrashed as again:
                raise CorruptVideo(
                    req.shown, f"the decoder process crashed ({crash}; PyAV retry: {again}): damaged data?"
                ) from None
        raise CorruptVideo(req.shown, f"the decoder process crashed ({crash}): damaged data?") from None


def _decord_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("decord") is not None


def decode_frames(
    path: PathLike,
    frame_indices: Iterable[int],
    *,
    max_side: int | None = None,
    backend: Backend = "auto",
    timeout_s: float = 60.0,
    isolate: bool = True,
    allowed_roots: Iterable[PathLike] | PathLike | None = None,
    info: VideoInfo | None = None,
    worker: DecodeWorker | None = None,
) -> np.ndarray:
    """Decode the given video frame indices; return uint8 RGB ``(N, H, W, 3)`` in the requested order.

    Duplicates are allowed. Rotation metadata is applied. ``max_side`` downscales (in the worker, so only
    small frames cross the process boundary). ``backend``: "decord" (batch random access), "pyav", or
    "auto" = decord, then PyAV if decord fails or crashes, PyAV directly for codecs decord lacks (AV1).
    ``isolate=True`` decodes in a child process with a ``timeout_s`` limit per attempt (a crash becomes
    ``CorruptVideo``, a timeout ``VideoDecodeTimeout``); ``isolate=False`` decodes in-process with no
    time limit. ``info`` (from ``probe(path)``) skips probing again; ``worker`` picks a ``DecodeWorker``
    other than the shared default. Indices outside ``range(num_frames)`` raise ValueError; all probe
    errors can be raised.
    """
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be 'auto', 'decord' or 'pyav', got {backend!r}")
    if info is None:
        info = probe(path, allowed_roots=allowed_roots)
    elif allowed_roots is not None:
        check_allowed(path, allowed_roots)
    indices = [int(i) for i in frame_indices]
    bad = [i for i in indices if not 0 <= i < info.num_frames]
    if bad:
        raise ValueError(f"frame indices {bad[:5]} outside 0..{info.num_frames - 1} for {path}")
    out_w, out_h = fit_max_side(info.width, info.height, max_side)
    if not indices:
        return np.empty((0, out_h, out_w, 3), dtype=np.uint8)

    if backend == "auto":
        use_decord = info.codec not in _DECORD_UNSUPPORTED_CODECS and _decord_available()
        backends: tuple[str, ...] = ("decord", "pyav") if use_decord else ("pyav",)
    elif backend == "decord" and info.codec in _DECORD_UNSUPPORTED_CODECS:
        raise UnsupportedVideo(
            path, f"decord's bundled FFmpeg 4.1 cannot decode {info.codec}; use backend='pyav' or 'auto'"
        )
    else:
        backends = (backend,)

    req = _DecodeRequest(
        path=info.path,
        shown=os.fspath(path),
        indices=tuple(indices),
        num_frames=info.num_frames,
        fps=info.fps,
        rotation=info.rotation,
        size=None if (out_w, out_h) == (info.width, info.height) else (out_w, out_h),
        backends=backends,
    )
    if isolate:
        return _decode_isolated(req, timeout_s, worker)
    return _decode_in_process(req)


def decode_grid_frames(
    info: VideoInfo, grid_ids: Iterable[int], grid_fps: float = 1.0, **kwargs: Any
) -> np.ndarray:
    """``decode_frames`` for grid ids (see ``grid_to_frame_index``); keyword arguments pass through."""
    indices = grid_to_frame_index(info, grid_ids, grid_fps)
    return decode_frames(info.path, indices, info=info, **kwargs)
