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

Modules, one job each (this package exports their public API):

* ``grid``: ``VideoInfo``, the frame grid, the clip plan and uniform sampling (pure arithmetic).
* ``probing``: ``probe`` (PyAV); ``paths``: ``check_allowed``; ``errors``: the ``VideoError`` classes.
* ``decoding``: ``decode_frames`` / ``decode_grid_frames`` (decord, PyAV); ``isolation``: ``DecodeWorker``,
  the parent's side of the child process; ``worker``: the child's entry (``python -m vidthinker.video.worker``).
* ``encoding``: resizing, JPEG and data URLs for model requests.
"""

from vidthinker.video.decoding import Backend, decode_frames, decode_grid_frames
from vidthinker.video.encoding import encode_jpeg, fit_max_side, jpeg_data_url, mp4_data_url, resize_max_side
from vidthinker.video.errors import (
    CorruptVideo,
    EmptyVideo,
    NotAVideo,
    UnreadableVideo,
    UnsupportedVideo,
    VideoDecodeTimeout,
    VideoError,
    VideoNotFound,
    VideoPathNotAllowed,
)
from vidthinker.video.grid import (
    Clip,
    VideoInfo,
    grid_size,
    grid_timestamps,
    grid_to_frame_index,
    plan_clips,
    uniform_indices,
)
from vidthinker.video.isolation import DecodeWorker
from vidthinker.video.paths import check_allowed
from vidthinker.video.probing import probe

__all__ = [
    "Backend",
    "Clip",
    "CorruptVideo",
    "DecodeWorker",
    "EmptyVideo",
    "NotAVideo",
    "UnreadableVideo",
    "UnsupportedVideo",
    "VideoDecodeTimeout",
    "VideoError",
    "VideoInfo",
    "VideoNotFound",
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
    "mp4_data_url",
    "plan_clips",
    "probe",
    "resize_max_side",
    "uniform_indices",
]
