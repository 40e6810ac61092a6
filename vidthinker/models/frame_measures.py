"""Pixel measurements on RGB frames, what the offline describer (`vidthinker.models.offline`) states:
colour names, direction words, the translation between two frames (phase correlation) and text-like
regions. Pure numpy and deterministic.

Conventions: frames are ``(N, H, W, 3)`` uint8 RGB; directions are in image coordinates as a viewer sees
them: "left" = towards x = 0, "up" = towards y = 0.
"""

from __future__ import annotations

import numpy as np

# analysis resolution: frames are block-averaged down to at most this many pixels on the long side
_WORK_SIZE = 160
# chroma (max - min channel, 0..255) under which a pixel is achromatic (black / grey / white)
_ACHROMATIC_CHROMA = 32

COLOUR_NAMES = (
    "black", "grey", "white", "red", "orange", "brown", "yellow", "green",
    "cyan", "blue", "purple", "pink",
)  # fmt: skip
_CODE = {name: i for i, name in enumerate(COLOUR_NAMES)}


def downsample(frames: np.ndarray, max_side: int = _WORK_SIZE) -> np.ndarray:
    """Block-mean downsampling to at most ``max_side`` on the long side: (N, h, w, 3) float32."""
    n, h, w, _ = frames.shape
    f = max(1, int(np.ceil(max(h, w) / max_side)))
    hh, ww = (h // f) * f, (w // f) * f
    if f == 1:
        return frames.astype(np.float32)
    x = frames[:, :hh, :ww].astype(np.float32)
    return x.reshape(n, hh // f, f, ww // f, f, 3).mean(axis=(2, 4))


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """Name every pixel of ``(..., 3)`` RGB (0..255) with an index into :data:`COLOUR_NAMES`.

    Achromatic pixels (low chroma) are black / grey / white by brightness; the others are named
    by hue, with brown (dark orange/red/yellow) and pink (light, weakly saturated red/magenta).
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    chroma = mx - mn
    safe = np.where(chroma > 0, chroma, 1.0)
    # hue in degrees, the usual piecewise formula
    hue = (
        np.where(
            mx == r,
            ((g - b) / safe) % 6.0,
            np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
        )
        * 60.0
    )
    value = mx / 255.0
    sat = np.where(mx > 0, chroma / np.maximum(mx, 1.0), 0.0)

    out = np.full(rgb.shape[:-1], _CODE["grey"], dtype=np.int8)
    achro = (chroma < _ACHROMATIC_CHROMA) | (value < 0.12)
    out[achro & (value < 0.22)] = _CODE["black"]
    out[achro & (value >= 0.82)] = _CODE["white"]

    chrom = ~achro
    bins = [  # (name, lo, hi) in degrees
        ("red", 345.0, 360.0), ("red", 0.0, 15.0), ("orange", 15.0, 42.0), ("yellow", 42.0, 70.0),
        ("green", 70.0, 165.0), ("cyan", 165.0, 195.0), ("blue", 195.0, 260.0),
        ("purple", 260.0, 315.0), ("pink", 315.0, 345.0),
    ]  # fmt: skip
    for name, lo, hi in bins:
        out[chrom & (hue >= lo) & (hue < hi)] = _CODE[name]
    warm = chrom & ((hue < 42.0) | (hue >= 345.0))
    out[warm & (value < 0.55) & (sat > 0.25)] = _CODE["brown"]  # dark orange / dark red
    out[chrom & (hue >= 42.0) & (hue < 70.0) & (value < 0.45)] = _CODE["brown"]  # dark yellow (olive-brown)
    out[chrom & ((hue >= 330.0) | (hue < 10.0)) & (value > 0.75) & (sat < 0.45)] = _CODE["pink"]
    return out


def direction_word(dx: float, dy: float, min_ratio: float = 0.5) -> str:
    """'left' / 'right' / 'up' / 'down' or a diagonal ('up and to the left') from a displacement
    in image coordinates (y grows downwards)."""
    horiz = "right" if dx > 0 else "left"
    vert = "down" if dy > 0 else "up"
    ax, ay = abs(dx), abs(dy)
    if ax == 0 and ay == 0:
        return "nowhere"
    if ay < min_ratio * ax:
        return horiz
    if ax < min_ratio * ay:
        return vert
    return f"{vert} and to the {horiz}"


def phase_correlation(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Translation (dx, dy) in pixels that moves ``a`` onto ``b`` and the peak's strength
    (peak height over the correlation surface's standard deviation)."""
    h, w = a.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    fa = np.fft.rfft2((a - a.mean()) * win)
    fb = np.fft.rfft2((b - b.mean()) * win)
    cross = fb * np.conj(fa)
    cross /= np.maximum(np.abs(cross), 1e-6)
    corr = np.fft.irfft2(cross, s=(h, w))
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    strength = float(corr[iy, ix] / (corr.std() + 1e-9))
    dy = iy - h if iy > h // 2 else iy
    dx = ix - w if ix > w // 2 else ix
    return float(dx), float(dy), strength


def text_like_mask(gray: np.ndarray, block: int = 8) -> np.ndarray:
    """Blocks that look like text: dense, strong edges in both directions with a bimodal
    (high-contrast) luminance, in horizontal runs of at least three blocks. Returns a bool
    block map (H//block, W//block)."""
    h, w = gray.shape
    hb, wb = h // block, w // block
    if hb < 1 or wb < 3:
        return np.zeros((max(hb, 0), max(wb, 0)), bool)
    g = gray[: hb * block, : wb * block]
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, 1:] = np.abs(np.diff(g, axis=1))
    gy[1:, :] = np.abs(np.diff(g, axis=0))
    strong_x = (gx > 60).reshape(hb, block, wb, block).mean(axis=(1, 3))
    strong_y = (gy > 60).reshape(hb, block, wb, block).mean(axis=(1, 3))
    blocks = g.reshape(hb, block, wb, block)
    spread = blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))
    # two-tone: text is ink on a plain ground, so most pixels sit near the block's darkest or
    # brightest value (noise, foliage and gradients fill the range in between)
    lo = blocks.min(axis=(1, 3), keepdims=True)
    hi = blocks.max(axis=(1, 3), keepdims=True)
    rel = (blocks - lo) / np.maximum(hi - lo, 1.0)
    two_tone = ((rel < 0.25) | (rel > 0.75)).mean(axis=(1, 3))
    cand = (strong_x > 0.18) & (strong_y > 0.06) & (spread > 100) & (two_tone > 0.8)
    # keep horizontal runs of >= 3 candidate blocks (a word or a line of text) drawn in one ink on
    # one ground: the blocks of a run share their darkest and brightest values
    lo2, hi2 = lo[:, 0, :, 0], hi[:, 0, :, 0]
    keep = np.zeros_like(cand)
    for row in range(hb):
        start = None
        for col in range(wb + 1):
            same = (
                col < wb
                and cand[row, col]
                and start is not None
                and abs(lo2[row, col] - lo2[row, start]) < 60
                and abs(hi2[row, col] - hi2[row, start]) < 60
            )
            if same:
                continue
            if start is not None and col - start >= 3:
                keep[row, start:col] = True
            start = col if col < wb and cand[row, col] else None
    return keep

