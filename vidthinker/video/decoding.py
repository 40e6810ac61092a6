"""Decoding frames: decord with a PyAV fallback, in the isolated worker process or in-process.

The decode functions run inside the worker (``vidthinker.video.worker``) by default, or in-process with
``isolate=False``; ``decode_frames`` turns a worker crash into ``CorruptVideo`` and a hang into
``VideoDecodeTimeout``.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import av
import numpy as np

from vidthinker.video.encoding import fit_max_side
from vidthinker.video.errors import CorruptVideo, PathLike, UnsupportedVideo, VideoDecodeTimeout
from vidthinker.video.grid import VideoInfo, grid_to_frame_index
from vidthinker.video.isolation import DecodeWorker, WorkerCrashed, WorkerTimeout, default_worker
from vidthinker.video.paths import check_allowed
from vidthinker.video.probing import pick_video_stream, probe

Backend = Literal["auto", "decord", "pyav"]

# decord 0.6 bundles FFmpeg 4.1 without an AV1 (or newer) decoder: send these straight to PyAV instead
# of paying for a failed open first.
_DECORD_UNSUPPORTED_CODECS = frozenset({"av1", "vvc", "evc"})

# How many frames past the last decodable one a request may point and still get that last frame.
# Containers without a frame count (mkv, webm) give an estimate from duration*fps that can overshoot by
# a frame or two; anything further out means data is missing.
_END_TOLERANCE_S = 0.5


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


def import_decord() -> Any:
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
    decord = import_decord()
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
        stream = pick_video_stream(container)
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


def _decode_isolated(req: _DecodeRequest, timeout_s: float, worker: DecodeWorker | None) -> np.ndarray:
    worker = worker or default_worker()
    try:
        # Look the function up at call time (not bound at import) so tests can substitute a crashing one.
        return worker.call(_decode_in_process, req, timeout_s=timeout_s)
    except WorkerTimeout:
        raise VideoDecodeTimeout(
            req.shown, f"decoding {len(req.indices)} frames took longer than {timeout_s:g} s; decoder killed"
        ) from None
    except WorkerCrashed as crash:
        if len(req.backends) > 1:
            # decord's old bundled FFmpeg is the usual culprit: give PyAV a fresh worker once.
            retry = replace(req, backends=req.backends[1:])
            try:
                return worker.call(_decode_in_process, retry, timeout_s=timeout_s)
            except WorkerTimeout:
                raise VideoDecodeTimeout(
                    req.shown, f"decoder crashed ({crash}); the PyAV retry took longer than {timeout_s:g} s"
                ) from None
            except WorkerCrashed as again:
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
