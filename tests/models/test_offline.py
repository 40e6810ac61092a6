"""The offline clip describer on drawn frames."""

from __future__ import annotations

import numpy as np
import pytest

from tests.extras import require
from vidthinker.models.frame_measures import COLOUR_NAMES, colour_names
from vidthinker.models.offline import OfflineClipDescriber

H, W = 270, 480
YY, XX = np.mgrid[:H, :W]


def disc_clip(bg, colour, centres, r=30) -> np.ndarray:
    frames = []
    for cx, cy in centres:
        f = np.empty((H, W, 3), np.uint8)
        f[:] = bg
        f[(YY - cy) ** 2 + (XX - cx) ** 2 < r * r] = colour
        frames.append(f)
    return np.stack(frames)


GREY, WHITE, BLACK, NAVY = (128, 128, 128), (245, 245, 245), (0, 0, 0), (20, 30, 110)
RED, BLUE, GREEN, YELLOW = (220, 20, 20), (20, 40, 200), (30, 190, 40), (240, 220, 30)


@pytest.fixture(scope="module")
def describer() -> OfflineClipDescriber:
    require("torch", "offline")
    require("efficientnet_lite_pytorch", "offline")
    from vidthinker.models.embedders import EfficientNetLiteEmbedder

    return OfflineClipDescriber(EfficientNetLiteEmbedder())


class FixedClassifier:
    """Stands in for EfficientNet-Lite0 where a test is about pixel facts only (fast, no torch)."""

    model_id = "fixed-classifier"

    def __init__(self) -> None:
        self.labels = [f"class {i}" for i in range(1000)]

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        p = np.full((len(frames), 1000), 0.5 / 999, np.float32)
        p[:, 7] = 0.5
        return p


@pytest.fixture(scope="module")
def pixels() -> OfflineClipDescriber:
    return OfflineClipDescriber(FixedClassifier())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- describer facts on drawn clips
@pytest.mark.parametrize(
    "bg, colour, centres, name, direction",
    [
        (GREY, RED, [(400 - 70 * i, 135) for i in range(5)], "red", "left"),
        (WHITE, BLUE, [(240, 40 + 45 * i) for i in range(5)], "blue", "down"),
        (BLACK, GREEN, [(80 + 60 * i, 220 - 40 * i) for i in range(5)], "green", "up and to the right"),
        (NAVY, YELLOW, [(60 + 90 * i, 120) for i in range(5)], "yellow", "right"),
        (GREY, RED, [(240, 220), (240, 170)], "red", "up"),  # two frames are enough
    ],
)
def test_moving_disc_colour_and_direction(pixels, bg, colour, centres, name, direction):
    facts = pixels.analyse(disc_clip(bg, colour, centres))
    assert facts.background == COLOUR_NAMES[colour_names(np.array(bg, np.uint8))]
    assert [m.colour for m in facts.moving_colours] == [name]
    m = facts.moving_colours[0]
    assert m.direction == direction
    assert 0.01 < m.area < 0.04
    (x0, _y0), (_x1, y1) = m.start, m.end
    assert x0 == pytest.approx(centres[0][0] / W, abs=0.02) and y1 == pytest.approx(
        centres[-1][1] / H, abs=0.02
    )
    assert facts.global_shift is None and facts.cuts == ()
    text = facts.to_text()
    assert f"{name} region" in text and f"moves {direction}," in text
    assert name in text.split("Motion:")[0]  # named among the clip's colours too


def test_static_clip(pixels):
    facts = pixels.analyse(disc_clip(GREY, RED, [(240, 135)] * 4))
    assert facts.moving_colours == () and facts.change < 0.001 and facts.global_shift is None
    text = facts.to_text()
    assert "nearly static" in text and "moves" not in text
    assert "Brightness: medium" in text


def test_single_frame(pixels):
    text = pixels.describe(disc_clip(WHITE, BLUE, [(100, 100)]))
    assert "not measurable from a single frame" in text
    assert "Brightness: very bright" in text


def test_camera_pan_is_a_global_shift_not_object_motion(pixels):
    rng = np.random.default_rng(0)
    texture = (rng.random((H // 6, W // 6 + 60, 3)) * 255).astype(np.uint8).repeat(6, 0).repeat(6, 1)
    clip = np.stack([texture[:, 30 * i : 30 * i + W] for i in range(4)])  # content slides left
    facts = pixels.analyse(clip)
    assert facts.global_shift is not None
    dx, dy = facts.global_shift
    assert dx == pytest.approx(-30 / W, abs=0.01) and abs(dy) < 0.01
    assert facts.moving_colours == ()  # scattered colours are not objects
    assert "whole image shifts left" in facts.to_text()
    assert facts.text_like_frames == ()  # noise is not two-tone text


def test_shot_cut(pixels):
    a = disc_clip(GREY, RED, [(240, 135)] * 2)
    b = disc_clip((30, 160, 40), YELLOW, [(100, 100)] * 2)
    facts = pixels.analyse(np.concatenate([a, b]))
    assert facts.cuts == (1,)
    assert "between frames 2-3" in facts.to_text()


def test_text_like_regions(pixels):
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (W, H), NAVY)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=24)
    draw.text((20, 200), "BREAKING NEWS: quick brown fox", fill=(255, 255, 255), font=font)
    draw.text((20, 232), "jumps over the lazy dog 12:45", fill=(255, 255, 255), font=font)
    frame = np.asarray(img)
    plain = disc_clip(NAVY, YELLOW, [(240, 135)])[0]
    facts = pixels.analyse(np.stack([plain, frame, frame]))
    assert facts.text_like_frames == (1, 2) and facts.text_like_position == "bottom"
    assert (
        "Text-like high-contrast regions appear in 2 of 3 frames, mostly near the bottom" in facts.to_text()
    )
    assert pixels.analyse(disc_clip(NAVY, YELLOW, [(240, 135)] * 2)).text_like_frames == ()


def test_real_network_describer_red_disc_moving_left(describer):
    clip = disc_clip(GREY, RED, [(400 - 90 * i, 135) for i in range(4)])
    text = describer.describe(clip)
    assert "a red region" in text and "moves left," in text
    assert "EfficientNet-Lite0" in text and "background/border is mostly grey" in text


def test_description_is_deterministic_and_carries_classifier_labels(describer):
    clip = disc_clip(WHITE, (255, 140, 0), [(150 + 40 * i, 135) for i in range(3)], r=60)
    a = describer.describe(clip)
    assert a == describer.describe(clip)
    facts = describer.analyse(clip)
    assert facts.labels and all(0 < p <= 1 for _, p in facts.labels)
    assert [p for _, p in facts.labels] == sorted((p for _, p in facts.labels), reverse=True)
    assert sum(n for _, n in facts.label_votes) == 3
    assert "EfficientNet-Lite0" in a and facts.labels[0][0].split(",")[0] in a
    assert "orange" in a  # the colour
    assert describer.model_id.startswith("offline-describer-v1/efficientnet-lite0")


def test_bad_input(pixels):
    with pytest.raises(ValueError):
        pixels.describe(np.zeros((0, 10, 10, 3), np.uint8))
    with pytest.raises(ValueError):
        pixels.describe(np.zeros((2, 10, 10), np.uint8))
