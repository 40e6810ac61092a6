"""Encoding rendered frames as H.264 mp4: PyAV's bundled libx264 in-process, or the system ffmpeg.

Both paths use the same fixed x264 options and one keyframe per 5 s clip, so a video's bytes depend
only on its frames and the x264 build.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vidthinker.synth.scene import CLIP_SECONDS

# threads=1: x264 output then depends only on its input. bf=0: with B-frames (and mb-tree) this x264 build
# (core 165, in the PyAV wheel) reads uninitialised memory in its lookahead, so the bytes varied with heap
# contents (caught with MALLOC_PERTURB_); without B-frames they are reproducible, and decode order = display order.
X264_OPTIONS = {"crf": "18", "preset": "veryfast", "threads": "1", "bf": "0"}


def _pyav_has_libx264() -> bool:
    try:
        import av

        return "libx264" in av.codecs_available
    except Exception:  # noqa: BLE001 - any import/codec problem means "use ffmpeg"
        return False


def encode_video(
    frames: Iterable[np.ndarray], path: Path, width: int, height: int, fps: int, backend: str | None = None
) -> str:
    """Write H.264 yuv420p mp4. Preferred: PyAV's bundled libx264 in-process (no subprocess, no pipe);
    fallback: raw RGB frames piped to the system (Debian) ffmpeg's libx264. Returns the backend used."""
    backend = backend or ("pyav-libx264" if _pyav_has_libx264() else "ffmpeg-libx264")
    gop = str(CLIP_SECONDS * fps)  # one keyframe per clip: cheap random access on the 1-fps grid
    if backend == "pyav-libx264":
        import av

        with av.open(str(path), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = {**X264_OPTIONS, "g": gop}
            for i, img in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return backend
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("no H.264 encoder: PyAV lacks libx264 and ffmpeg is not on PATH")
    cmd = [
        ffmpeg,
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-threads",
        "1",
        "-crf",
        X264_OPTIONS["crf"],
        "-preset",
        X264_OPTIONS["preset"],
        "-bf",
        X264_OPTIONS["bf"],
        "-g",
        gop,
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-f",
        "mp4",
        str(path),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for img in frames:
            proc.stdin.write(np.ascontiguousarray(img).tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {err.strip()[-500:]}")
    return backend
