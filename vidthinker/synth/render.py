"""Drawing a scene's frames: background, solid shapes at their exact positions, word boxes.

`render_frames(scene)` yields every video frame in order as (H, W, 3) uint8 RGB; an object is drawn in
video frame i iff appear_s <= i / fps < disappear_s, centred where `SceneObject.centres` says.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image, ImageDraw

from vidthinker.synth.drawing import font_size_for, load_font, shape_mask
from vidthinker.synth.footage import footage_frames
from vidthinker.synth.scene import PALETTE, Scene


def _text_patch(word: str, box: tuple[int, int, int, int], font_size: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    img = Image.new("RGB", (x1 - x0, y1 - y0), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = load_font(font_size)
    bx0, by0, bx1, by1 = font.getbbox(word)
    tx = (img.width - (bx1 - bx0)) // 2 - bx0
    ty = (img.height - (by1 - by0)) // 2 - by0
    draw.text((tx, ty), word, fill=(0, 0, 0), font=font)
    return np.asarray(img, dtype=np.uint8)


class Background:
    def __init__(self, scene: Scene):
        w, h = scene.width, scene.height
        bg = scene.background
        self.kind = bg["kind"]
        self.fps = scene.fps
        if self.kind == "plain":
            self.still = np.empty((h, w, 3), np.uint8)
            self.still[:] = np.array(bg["rgb"], np.uint8)
        elif self.kind == "gradient":
            a = np.array(bg["from_rgb"], np.float32)
            b = np.array(bg["to_rgb"], np.float32)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            s = {
                "horizontal": xx / max(1, w - 1),
                "vertical": yy / max(1, h - 1),
                "diagonal": (xx / max(1, w - 1) + yy / max(1, h - 1)) / 2,
            }[bg["axis"]]
            self.still = np.clip(a + (b - a) * s[..., None] + 0.5, 0, 255).astype(np.uint8)
        elif self.kind == "noise":
            rng = np.random.default_rng(bg["noise_seed"])
            cw = 2 * w
            coarse = rng.integers(25, 95, size=(max(2, h // 24 + 2), max(2, cw // 24 + 2), 3)).astype(
                np.uint8
            )
            img = Image.fromarray(coarse, "RGB").resize((cw, h), Image.Resampling.BILINEAR)
            canvas = np.asarray(img, np.uint8).astype(np.int16)
            grain = rng.integers(-6, 7, size=(h, cw, 1), dtype=np.int16)
            # grey-ish: pull the channels together so no object colour is near
            canvas = (canvas + canvas.mean(axis=2, keepdims=True).astype(np.int16) * 2) // 3 + grain
            canvas = np.clip(canvas, 0, 255).astype(np.uint8)
            self.canvas = np.concatenate([canvas, canvas], axis=1)  # wraps seamlessly
            self.width = w
            self.cw = cw
            self.drift = int(bg["drift_px_s"])
        else:
            self.mapping, self.frames = footage_frames(bg["source"], w, h, scene.fps)

    def frame(self, i: int) -> np.ndarray:
        if self.kind in ("plain", "gradient"):
            return self.still.copy()
        if self.kind == "noise":
            off = (i * self.drift // self.fps) % self.cw
            return self.canvas[:, off : off + self.width].copy()
        return self.frames[self.mapping[i % len(self.mapping)]].copy()


def render_frames(scene: Scene) -> Iterable[np.ndarray]:
    """Yield every frame (H, W, 3) uint8 RGB of the scene, in order."""
    fps = scene.fps
    bg = Background(scene)
    font_size = font_size_for(scene.height)
    sprites = []
    for o in scene.objects:
        frames = o.visible_frames(fps)
        xs, ys = o.centres(np.arange(frames.start, frames.stop), fps)
        sprites.append(
            (frames, xs, ys, shape_mask(o.shape, o.radius), np.array(PALETTE[o.colour], np.uint8), o.radius)
        )
    patches = [(t.visible_frames(fps), t.box, _text_patch(t.word, t.box, font_size)) for t in scene.texts]
    for i in range(scene.num_frames):
        img = bg.frame(i)
        for frames, xs, ys, mask, colour, r in sprites:
            if frames.start <= i < frames.stop:
                cx, cy = int(xs[i - frames.start]), int(ys[i - frames.start])
                img[cy - r : cy + r + 1, cx - r : cx + r + 1][mask] = colour
        for frames, (x0, y0, x1, y1), patch in patches:
            if frames.start <= i < frames.stop:
                img[y0:y1, x0:x1] = patch
        yield img
