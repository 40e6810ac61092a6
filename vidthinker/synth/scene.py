"""The scene script: the vocabulary of a synthetic video (colours, shapes, words, backgrounds) and the
dataclasses that describe one video exactly (objects with their times, sizes and straight-line motion,
word overlays, the background). Times are kept in half seconds (``*2`` fields) so every event sits at
n + 0.5 s; `SceneObject.centres` is the one rule for where an object is drawn in a video frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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

