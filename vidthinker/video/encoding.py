"""Frames for model requests: downscaling, JPEG bytes and data URLs (image or a short H.264 clip)."""

from __future__ import annotations

import base64
import io

import numpy as np


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
