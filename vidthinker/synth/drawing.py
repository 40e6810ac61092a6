"""Pixel primitives shared by planning, questions and rendering: solid shape masks, the font, text sizes.

Planning needs a word's drawn width (to size its box) and questions need an object's drawn area (to ask
"which is larger" only when it is clear), so both use the same masks and font the renderer draws with.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidthinker.synth.scene import SceneObject


def font_size_for(height: int) -> int:
    """The word overlays' font size for a video `height` pixels tall."""
    return max(12, round(height / 12))


@lru_cache(maxsize=8)
def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def text_size(font, word: str) -> tuple[int, int]:
    x0, y0, x1, y1 = font.getbbox(word)
    return x1 - x0, y1 - y0


@lru_cache(maxsize=256)
def shape_mask(shape: str, radius: int) -> np.ndarray:
    """Boolean mask (2r+1, 2r+1) of a solid shape centred at (r, r)."""
    r = radius
    img = Image.new("L", (2 * r + 1, 2 * r + 1), 0)
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse([0, 0, 2 * r, 2 * r], fill=255)
    elif shape == "square":
        h = math.floor(r / math.sqrt(2))  # corners on the circumscribed circle
        draw.rectangle([r - h, r - h, r + h, r + h], fill=255)
    else:
        if shape == "triangle":
            pts = [
                (r + r * math.cos(math.radians(a)), r + r * math.sin(math.radians(a))) for a in (-90, 30, 150)
            ]
        elif shape == "diamond":
            pts = [(r, 0), (2 * r, r), (r, 2 * r), (0, r)]
        elif shape == "hexagon":
            pts = [
                (r + r * math.cos(math.radians(a)), r + r * math.sin(math.radians(a)))
                for a in range(0, 360, 60)
            ]
        elif shape == "star":
            pts = []
            for k in range(10):
                rad = r if k % 2 == 0 else 0.45 * r
                a = math.radians(-90 + 36 * k)
                pts.append((r + rad * math.cos(a), r + rad * math.sin(a)))
        else:
            raise ValueError(f"unknown shape {shape!r}")
        draw.polygon([(round(x, 3), round(y, 3)) for x, y in pts], fill=255)
    return np.asarray(img) > 127


def drawn_area(obj: SceneObject) -> int:
    """Pixels the object covers when drawn."""
    return int(shape_mask(obj.shape, obj.radius).sum())
