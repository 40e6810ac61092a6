"""The offline stage-1 "captioner", for when no vision-language model can be had.

:class:`OfflineClipDescriber` states, in plain text, what can honestly be measured in a clip's
frames without a VLM: what a real ImageNet network (EfficientNet-Lite0) recognises, the dominant
colours by name, brightness, how much changes between consecutive frames and which way coloured
regions (and the image as a whole) move, and whether text-like high-contrast regions appear. The
stage-1 code hands this description plus the question to an LLM, which writes the
instruction-conditioned caption.

Everything is deterministic: the same frames give the same text, byte for byte.

Conventions: frames are ``(N, H, W, 3)`` uint8 RGB in chronological order (1 fps in the pipeline).
Directions are in image coordinates as a viewer sees them: "left" = towards x = 0, "up" = towards
y = 0. Positions are fractions of the frame (0..1).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .frame_measures import (
    COLOUR_NAMES,
    colour_names,
    direction_word,
    downsample,
    phase_correlation,
    text_like_mask,
)

if TYPE_CHECKING:  # pragma: no cover
    from .embedders import EfficientNetLiteEmbedder

__all__ = [
    "ClipFacts",
    "ColourMotion",
    "OfflineClipDescriber",
]

DESCRIBER_VERSION = "1"

# a pixel "changed" between two frames when its largest channel difference exceeds this (0..255)
_CHANGE_THRESHOLD = 30
# a frame has text-like regions when at least this many 8x8 text-like blocks are found
_TEXT_MIN_BLOCKS = 4
# the codes of black, grey and white in COLOUR_NAMES
_ACHROMATIC = {0, 1, 2}


# --------------------------------------------------------------------------- facts
@dataclass(frozen=True)
class ColourMotion:
    """A named-colour region whose centre moves consistently across the clip."""

    colour: str
    area: float  # mean fraction of the frame
    start: tuple[float, float]  # centre (x, y) in the first frame it is seen, fractions of the frame
    end: tuple[float, float]  # centre in the last frame it is seen
    direction: str  # 'left', 'up and to the right', ...
    speed: float  # centre displacement per frame step, fraction of the frame diagonal-free axis units


@dataclass(frozen=True)
class ClipFacts:
    n_frames: int
    height: int
    width: int
    labels: tuple[tuple[str, float], ...]  # (ImageNet label, mean probability over frames)
    label_votes: tuple[tuple[str, int], ...]  # (label, number of frames where it is top-1)
    colours: tuple[tuple[str, float], ...]  # (colour name, fraction of pixels over the clip)
    minor_colours: tuple[tuple[str, float], ...]  # chromatic colours on 0.3%..3% of the pixels
    background: str | None  # colour name that dominates the frame border
    brightness: float  # mean luma 0..255
    brightness_trend: float  # last-frame luma minus first-frame luma
    change: float  # mean fraction of pixels that change per frame step
    change_steps: tuple[float, ...]  # fraction changed, per frame step
    cuts: tuple[int, ...]  # frame steps i (between frame i and i+1) with an abrupt whole-frame change
    moving_colours: tuple[ColourMotion, ...]
    change_region_direction: str | None  # where the region of change moves (colour-agnostic)
    global_shift: tuple[float, float] | None  # whole-image shift per step (fractions of w, h)
    text_like_frames: tuple[int, ...]  # frames with text-like high-contrast regions
    text_like_position: str | None  # 'top' / 'middle' / 'bottom' (where most text-like blocks are)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    # -- text rendering
    def to_text(self) -> str:
        lines = [f"Frames analysed: {self.n_frames} ({self.width}x{self.height}), in time order."]
        if self.labels:
            parts = ", ".join(f"{_short(name)} {p:.2f}" for name, p in self.labels)
            top = self.labels[0][1]
            hedge = " (all low: the scene may be none of the 1000 ImageNet categories)" if top < 0.15 else ""
            lines.append(
                "An ImageNet image classifier (EfficientNet-Lite0) recognises, as mean probability "
                f"over the frames: {parts}{hedge}."
            )
        if self.colours:
            cols = ", ".join(f"{c} {round(100 * f)}%" for c, f in self.colours)
            bg = f"; the background/border is mostly {self.background}" if self.background else ""
            lines.append(f"Dominant colours: {cols}{bg}.")
        if self.minor_colours:
            cols = ", ".join(f"{c} {100 * f:.1f}%" for c, f in self.minor_colours)
            lines.append(f"Smaller coloured areas: {cols}.")
        trend = ""
        if self.brightness_trend > 40:
            trend = ", getting brighter over the clip"
        elif self.brightness_trend < -40:
            trend = ", getting darker over the clip"
        lines.append(
            f"Brightness: {_brightness_word(self.brightness)} (mean luma {self.brightness:.0f}/255){trend}."
        )
        if self.n_frames < 2:
            lines.append("Motion: not measurable from a single frame.")
        else:
            lines.append(
                f"Change between consecutive frames: {_change_word(self.change)} "
                f"({100 * self.change:.1f}% of pixels change per step)."
            )
            for m in self.moving_colours:
                article = "an" if m.colour[0] in "aeiou" else "a"
                size = f"about {100 * m.area:.0f}%" if m.area >= 0.01 else "under 1%"
                lines.append(
                    f"Motion: {article} {m.colour} region ({size} of the frame) moves {m.direction}, "
                    f"its centre going from ({m.start[0]:.2f}, {m.start[1]:.2f}) to ({m.end[0]:.2f}, {m.end[1]:.2f}) "
                    "(x from the left, y from the top, as fractions of the frame)."
                )
            if not self.moving_colours and self.change_region_direction:
                lines.append(f"Motion: the region where pixels change moves {self.change_region_direction}.")
            if self.global_shift is not None:
                dx, dy = self.global_shift
                lines.append(
                    f"The whole image shifts {direction_word(dx, dy)} by about {100 * max(abs(dx), abs(dy)):.0f}% "
                    "of the frame per step (camera pan or a large moving background)."
                )
            if self.cuts:
                where = ", ".join(f"{i + 1}-{i + 2}" for i in self.cuts)
                lines.append(f"Abrupt whole-frame change (possible shot cut) between frames {where}.")
            if self.change < 0.005 and not self.moving_colours and self.global_shift is None:
                lines.append("Motion: the frames are nearly static.")
        if self.text_like_frames:
            pos = f", mostly near the {self.text_like_position}" if self.text_like_position else ""
            lines.append(
                f"Text-like high-contrast regions appear in {len(self.text_like_frames)} of {self.n_frames} "
                f"frames{pos}."
            )
        else:
            lines.append("Text-like high-contrast regions: none found.")
        return "\n".join(lines)


def _short(label: str) -> str:
    return label.split(",")[0].strip()


def _brightness_word(luma: float) -> str:
    for limit, word in ((45, "very dark"), (85, "dark"), (160, "medium"), (210, "bright")):
        if luma < limit:
            return word
    return "very bright"


def _change_word(frac: float) -> str:
    for limit, word in ((0.005, "almost none"), (0.03, "small"), (0.15, "moderate"), (0.5, "large")):
        if frac < limit:
            return word
    return "very large"


# --------------------------------------------------------------------------- describer
class OfflineClipDescriber:
    """Plain-text, factual description of a clip's frames (see the module docstring).

    ``describe(frames)`` returns the text; ``analyse(frames)`` the :class:`ClipFacts` behind it.
    """

    def __init__(
        self,
        embedder: EfficientNetLiteEmbedder,
        *,
        top_labels: int = 5,
        min_label_prob: float = 0.03,
        max_colours: int = 4,
        min_colour_frac: float = 0.03,
        max_moving: int = 3,
    ) -> None:
        self.embedder = embedder
        self.top_labels = top_labels
        self.min_label_prob = min_label_prob
        self.max_colours = max_colours
        self.min_colour_frac = min_colour_frac
        self.max_moving = max_moving
        self.model_id = f"offline-describer-v{DESCRIBER_VERSION}/{embedder.model_id}"

    def __repr__(self) -> str:
        return f"OfflineClipDescriber(model_id={self.model_id!r})"

    def describe(self, frames: np.ndarray) -> str:
        return self.analyse(frames).to_text()

    def analyse(self, frames: np.ndarray) -> ClipFacts:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
        n, h, w, _ = frames.shape
        if n == 0:
            raise ValueError("no frames to describe")

        labels, votes = self._labels(frames)
        small = downsample(frames)
        names = colour_names(small)
        luma = small @ np.array([0.299, 0.587, 0.114], np.float32)
        colours, minor_colours = self._colours(names)
        background = self._background(names)
        brightness = float(luma.mean())
        trend = float(luma[-1].mean() - luma[0].mean())

        change_steps: tuple[float, ...] = ()
        cuts: tuple[int, ...] = ()
        moving: tuple[ColourMotion, ...] = ()
        region_dir = None
        shift = None
        if n >= 2:
            diff = np.abs(np.diff(small, axis=0)).max(axis=-1)  # (n-1, h, w)
            changed = diff > _CHANGE_THRESHOLD
            change_steps = tuple(float(c.mean()) for c in changed)
            cuts = self._cuts(names, change_steps)
            moving = self._moving_colours(names, background, cuts)
            region_dir = self._change_region_direction(changed, cuts)
            shift = self._global_shift(luma, cuts)

        text_frames, text_pos = self._text_like(frames)
        return ClipFacts(
            n_frames=n,
            height=h,
            width=w,
            labels=labels,
            label_votes=votes,
            colours=colours,
            minor_colours=minor_colours,
            background=background,
            brightness=round(brightness, 2),
            brightness_trend=round(trend, 2),
            change=round(float(np.mean(change_steps)) if change_steps else 0.0, 4),
            change_steps=tuple(round(c, 4) for c in change_steps),
            cuts=cuts,
            moving_colours=moving,
            change_region_direction=region_dir,
            global_shift=shift,
            text_like_frames=text_frames,
            text_like_position=text_pos,
        )

    # -- parts
    def _labels(
        self, frames: np.ndarray
    ) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, int], ...]]:
        probs = self.embedder.probabilities(frames).astype(np.float64)
        mean = probs.mean(axis=0)
        order = np.argsort(-mean, kind="stable")
        names = self.embedder.labels
        labels = tuple(
            (names[i], round(float(mean[i]), 3))
            for i in order[: self.top_labels]
            if mean[i] >= self.min_label_prob
        )
        if not labels:  # always say at least what the network's best guess was
            labels = ((names[order[0]], round(float(mean[order[0]]), 3)),)
        top1 = np.argmax(probs, axis=1)
        counts = np.bincount(top1, minlength=len(names))
        vote_order = np.argsort(-counts, kind="stable")
        votes = tuple((names[i], int(counts[i])) for i in vote_order if counts[i] > 0)
        return labels, votes

    def _colours(
        self, names: np.ndarray
    ) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
        counts = np.bincount(names.reshape(-1).astype(np.int64), minlength=len(COLOUR_NAMES))
        frac = counts / max(1, counts.sum())
        order = np.argsort(-frac, kind="stable")
        major = tuple(
            (COLOUR_NAMES[i], round(float(frac[i]), 3))
            for i in order[: self.max_colours]
            if frac[i] >= self.min_colour_frac
        )
        taken = {c for c, _ in major}
        minor = tuple(
            (COLOUR_NAMES[i], round(float(frac[i]), 3))
            for i in order
            if COLOUR_NAMES[i] not in taken
            and i not in _ACHROMATIC
            and 0.003 <= frac[i] < self.min_colour_frac
        )[: self.max_colours]
        return major, minor

    @staticmethod
    def _background(names: np.ndarray) -> str | None:
        border = np.concatenate(
            [names[:, 0, :].ravel(), names[:, -1, :].ravel(), names[:, :, 0].ravel(), names[:, :, -1].ravel()]
        ).astype(np.int64)
        counts = np.bincount(border, minlength=len(COLOUR_NAMES))
        i = int(np.argmax(counts))
        return COLOUR_NAMES[i] if counts[i] >= 0.5 * border.size else None

    @staticmethod
    def _cuts(names: np.ndarray, change_steps: Sequence[float]) -> tuple[int, ...]:
        """Steps where most pixels change and the colour histogram changes a lot: likely shot cuts."""
        cuts = []
        k = len(COLOUR_NAMES)
        for i, frac in enumerate(change_steps):
            if frac < 0.6:
                continue
            ha = np.bincount(names[i].ravel().astype(np.int64), minlength=k) / names[i].size
            hb = np.bincount(names[i + 1].ravel().astype(np.int64), minlength=k) / names[i + 1].size
            if 0.5 * np.abs(ha - hb).sum() > 0.3:
                cuts.append(i)
        return tuple(cuts)

    def _moving_colours(
        self, names: np.ndarray, background: str | None, cuts: tuple[int, ...]
    ) -> tuple[ColourMotion, ...]:
        n, h, w = names.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        xx = (xx + 0.5) / w
        yy = (yy + 0.5) / h
        found: list[tuple[float, ColourMotion]] = []
        for code, colour in enumerate(COLOUR_NAMES):
            if colour == background:
                continue
            masks = names == code
            areas = masks.reshape(n, -1).mean(axis=1)
            present = (areas >= 0.005) & (areas <= 0.5)
            idx = np.flatnonzero(present)
            if len(idx) < 2:
                continue
            cx = np.array([xx[masks[i]].mean() for i in idx])
            cy = np.array([yy[masks[i]].mean() for i in idx])
            # only steps between consecutive present frames that do not cross a cut
            steps = [(a, b) for a, b in zip(range(len(idx) - 1), range(1, len(idx))) if idx[b] - idx[a] == 1]
            steps = [(a, b) for a, b in steps if idx[a] not in cuts]
            if not steps:
                continue
            # a region that keeps its size: a moving object, not a colour appearing/disappearing
            ar = areas[idx]
            if ar.max() > 2.5 * max(ar.min(), 1e-9):
                continue
            # a compact region (an object), not pixels of that colour scattered over the frame
            sx = np.array([xx[masks[i]].std() for i in idx])
            sy = np.array([yy[masks[i]].std() for i in idx])
            if sx.mean() > 0.2 or sy.mean() > 0.2:
                continue
            dx = np.array([cx[b] - cx[a] for a, b in steps])
            dy = np.array([cy[b] - cy[a] for a, b in steps])
            tx, ty = float(dx.sum()), float(dy.sum())
            total = max(abs(tx), abs(ty))
            if total < 0.04:  # less than 4% of the frame over the clip: not reported
                continue
            main = dx if abs(tx) >= abs(ty) else dy
            sign = np.sign(tx if abs(tx) >= abs(ty) else ty)
            if np.mean(np.sign(main) == sign) < 0.66:  # not a consistent direction
                continue
            a0, b0 = steps[0][0], steps[-1][1]
            motion = ColourMotion(
                colour=colour,
                area=round(float(ar.mean()), 3),
                start=(round(float(cx[a0]), 2), round(float(cy[a0]), 2)),
                end=(round(float(cx[b0]), 2), round(float(cy[b0]), 2)),
                direction=direction_word(tx, ty),
                speed=round(total / len(steps), 3),
            )
            found.append((total * np.sqrt(ar.mean()), motion))
        found.sort(key=lambda t: (-t[0], t[1].colour))
        return tuple(m for _, m in found[: self.max_moving])

    @staticmethod
    def _change_region_direction(changed: np.ndarray, cuts: tuple[int, ...]) -> str | None:
        """Centroid of the changed pixels, per step; its consistent drift gives a direction."""
        if changed.shape[0] < 2:
            return None
        _, h, w = changed.shape
        yy, xx = np.mgrid[0:h, 0:w]
        cents = []
        for i, m in enumerate(changed):
            frac = m.mean()
            if i in cuts or frac < 0.002 or frac > 0.5:
                cents.append(None)
                continue
            cents.append(((xx[m].mean() + 0.5) / w, (yy[m].mean() + 0.5) / h))
        pairs = [(a, b) for a, b in itertools.pairwise(cents) if a is not None and b is not None]
        if not pairs:
            return None
        dx = np.array([b[0] - a[0] for a, b in pairs])
        dy = np.array([b[1] - a[1] for a, b in pairs])
        tx, ty = float(dx.sum()), float(dy.sum())
        if max(abs(tx), abs(ty)) < 0.04:
            return None
        main, total = (dx, tx) if abs(tx) >= abs(ty) else (dy, ty)
        if np.mean(np.sign(main) == np.sign(total)) < 0.66:
            return None
        return direction_word(tx, ty)

    @staticmethod
    def _global_shift(luma: np.ndarray, cuts: tuple[int, ...]) -> tuple[float, float] | None:
        """Median whole-image translation per step by phase correlation, when strong and consistent."""
        n, h, w = luma.shape
        shifts = []
        for i in range(n - 1):
            if i in cuts:
                continue
            a, b = luma[i], luma[i + 1]
            changed = np.abs(b - a) > _CHANGE_THRESHOLD
            if changed.mean() < 0.2:  # most of the frame is unchanged: no whole-image motion
                continue
            dx, dy, strength = phase_correlation(a, b)
            if strength < 8.0:
                continue
            # the shift must explain the change: compare on the overlap of a shifted onto b
            ix, iy = int(dx), int(dy)
            ys = slice(max(0, iy), h + min(0, iy))
            xs = slice(max(0, ix), w + min(0, ix))
            ys0 = slice(max(0, -iy), h + min(0, -iy))
            xs0 = slice(max(0, -ix), w + min(0, -ix))
            before = float(np.abs(b[ys, xs] - a[ys, xs]).mean())
            after = float(np.abs(b[ys, xs] - a[ys0, xs0]).mean())
            if after < 0.5 * before:
                shifts.append((dx / w, dy / h))
        if not shifts or len(shifts) < max(1, (n - 1 - len(cuts)) // 2):
            return None
        arr = np.array(shifts)
        mx, my = float(np.median(arr[:, 0])), float(np.median(arr[:, 1]))
        if max(abs(mx), abs(my)) < 0.02:  # under 2% of the frame per step: call it still
            return None
        return (round(mx, 3), round(my, 3))

    @staticmethod
    def _text_like(frames: np.ndarray) -> tuple[tuple[int, ...], str | None]:
        hits: list[int] = []
        rows = np.zeros(3)
        for i, frame in enumerate(frames):
            # two scales (~480 and ~240 px on the long side): small captions and large titles
            g = downsample(frame[None], max_side=480)[0] @ np.array([0.299, 0.587, 0.114], np.float32)
            best = None
            for scale in (1, 2):
                gs = (
                    g
                    if scale == 1
                    else downsample(np.repeat(g[None, ..., None], 3, -1), max_side=240)[0, ..., 0]
                )
                mask = text_like_mask(gs)
                if mask.sum() >= _TEXT_MIN_BLOCKS and (best is None or mask.sum() > best.sum()):
                    best = mask
            if best is not None:
                hits.append(i)
                ys = np.flatnonzero(best.any(axis=1))
                thirds = np.minimum(ys * 3 // max(1, best.shape[0]), 2)
                rows += np.bincount(thirds, minlength=3)[:3]
        pos = ("top", "middle", "bottom")[int(np.argmax(rows))] if hits else None
        return tuple(hits), pos
