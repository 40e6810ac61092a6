"""Test media for tests/video/, made with ffmpeg, plus stand-ins for a crashing or hanging decoder.

Imported by the tests as a top-level module (tests/video/ appended to sys.path by its conftest) so that the
spawned decode worker can import the stand-ins by name too.

Every test frame encodes its own index: three vertical stripes, each a flat gray level 16 + 30*d for one
base-8 digit d of the index (left = most significant). Flat areas survive H.264/AV1 compression within a
few levels, so ``frame_id`` reads the index back exactly.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

WIDTH, HEIGHT, FPS = 320, 240, 30
SECONDS = 12
NUM_FRAMES = SECONDS * FPS  # 360 < 8**3 distinct ids
GOP = 25  # not a multiple of the fps, so grid frames fall at varying distances from keyframes


def level(digit: int) -> int:
    return 16 + 30 * digit


def make_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    digits = ((index // 64) % 8, (index // 8) % 8, index % 8)
    frame = np.empty((height, width, 3), np.uint8)
    third = width // 3
    for j, d in enumerate(digits):
        frame[:, j * third : (j + 1) * third if j < 2 else width] = level(d)
    return frame


def frame_id(frame: np.ndarray) -> int:
    """Index encoded in an upright frame (stripes vertical)."""
    width = frame.shape[1]
    third = width // 3
    margin = max(1, third // 6)  # stay clear of the blurred stripe edges
    digits = []
    for j in range(3):
        mean = float(frame[:, j * third + margin : (j + 1) * third - margin].mean())
        digits.append(round((mean - 16) / 30))
    return digits[0] * 64 + digits[1] * 8 + digits[2]


def _ffmpeg(*args: str, input: bytes | None = None) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], input=input, check=True)


def _encode_known(path: Path, codec_args: list[str], num_frames: int) -> None:
    raw = b"".join(make_frame(i).tobytes() for i in range(num_frames))
    _ffmpeg(
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
        *codec_args, "-pix_fmt", "yuv420p", str(path), input=raw,
    )  # fmt: skip


def av1_encoder() -> str | None:
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("libsvtav1", "libaom-av1"):
        if f" {name} " in out:
            return name
    return None


def make_media(root: Path) -> dict[str, Path]:
    """Write every fixture file under ``root``; return them by file name ("av1.mkv" is absent without an AV1 encoder)."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg not found")
    m: dict[str, Path] = {}

    def p(name: str) -> Path:
        m[name] = root / name
        return root / name

    _encode_known(p("known.mp4"), ["-c:v", "libx264", "-preset", "veryfast", "-g", str(GOP)], NUM_FRAMES)
    _ffmpeg("-i", str(m["known.mp4"]), "-c", "copy", "-movflags", "+faststart", str(p("faststart.mp4")))
    _ffmpeg("-i", str(m["known.mp4"]), "-c", "copy", str(p("known.mkv")))
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=12", "-c:a", "aac", str(p("audio.m4a")))
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=1", str(p("audio.wav")))
    _ffmpeg(
        "-i",
        str(m["known.mp4"]),
        "-i",
        str(m["audio.m4a"]),
        "-c",
        "copy",
        "-shortest",
        str(p("with_audio.mp4")),
    )
    cover = root / "cover.png"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x64", "-frames:v", "1", str(cover))
    _ffmpeg(
        "-i", str(m["audio.m4a"]), "-i", str(cover), "-map", "0", "-map", "1", "-c:a", "copy", "-c:v", "png",
        "-disposition:v:0", "attached_pic", str(p("cover_art.m4a")),
    )  # fmt: skip
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}", "-frames:v", "0", "-c:v", "libx264",
            str(p("no_frames.mp4")))  # fmt: skip
    # The legacy "rotate" tag becomes a display matrix in the output (ffmpeg 5.1 writes it as a
    # counter-clockwise rotation by that angle); the tests compare with ffmpeg's own autorotation.
    for angle in (90, 270):
        _ffmpeg(
            "-i",
            str(m["known.mp4"]),
            "-c",
            "copy",
            "-metadata:s:v:0",
            f"rotate={angle}",
            str(p(f"rot{angle}.mp4")),
        )

    encoder = av1_encoder()
    if encoder == "libsvtav1":
        _encode_known(p("av1.mkv"), ["-c:v", "libsvtav1", "-preset", "12", "-crf", "30", "-g", "30"], 4 * FPS)
    elif encoder == "libaom-av1":
        _encode_known(
            p("av1.mkv"), ["-c:v", "libaom-av1", "-cpu-used", "8", "-crf", "30", "-g", "30"], 4 * FPS
        )

    data = m["known.mp4"].read_bytes()
    p("truncated.mp4").write_bytes(data[: len(data) // 2])  # moov at the end: the index is gone
    fast = m["faststart.mp4"].read_bytes()
    p("truncated_faststart.mp4").write_bytes(fast[: len(fast) // 2])  # index intact, data cut short
    mkv = m["known.mkv"].read_bytes()
    p("truncated.mkv").write_bytes(mkv[: len(mkv) // 2])  # no index to contradict: found while decoding

    rng = random.Random(1234)
    damaged = bytearray(data)
    middle = len(damaged) // 2
    damaged[middle : middle + 4096] = bytes(rng.randrange(256) for _ in range(4096))
    p("corrupt.mp4").write_bytes(bytes(damaged))  # mdat damaged: decoders conceal or fail
    header = bytearray(fast)
    moov = header.find(b"moov")
    header[moov + 200 : moov + 1200] = bytes(rng.randrange(256) for _ in range(1000))
    p("corrupt_header.mp4").write_bytes(bytes(header))

    p("empty.mp4").write_bytes(b"")
    p("notes.mp4").write_text("these are meeting notes, not a video\n" * 50)
    return m


# Stand-ins for vidthinker.video.decoding._decode_in_process, run inside the decode worker.


def abort_decode(*args: Any) -> Any:
    os.abort()


def sleepy_decode(*args: Any) -> Any:
    time.sleep(600)


def ids_of(frames: np.ndarray) -> list[int]:
    return [frame_id(f) for f in frames]
