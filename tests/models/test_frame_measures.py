"""Pixel measurements of the offline describer (vidthinker/models/frame_measures.py): colour and direction words."""

from __future__ import annotations

import numpy as np

from vidthinker.models.frame_measures import COLOUR_NAMES, colour_names, direction_word


def test_colour_names_of_plain_colours():
    samples = {
        (255, 0, 0): "red", (200, 30, 40): "red", (255, 140, 0): "orange", (250, 230, 20): "yellow",
        (0, 200, 0): "green", (34, 139, 34): "green", (0, 220, 220): "cyan", (0, 0, 255): "blue",
        (30, 30, 160): "blue", (128, 0, 128): "purple", (255, 105, 180): "pink", (255, 192, 203): "pink",
        (139, 69, 19): "brown", (128, 128, 128): "grey", (250, 250, 250): "white", (10, 10, 10): "black",
        (60, 10, 10): "brown", (20, 20, 30): "black",
    }  # fmt: skip
    rgb = np.array(list(samples), np.uint8)
    got = [COLOUR_NAMES[i] for i in colour_names(rgb)]
    assert got == list(samples.values())


def test_direction_words():
    assert direction_word(-0.3, 0.01) == "left"
    assert direction_word(0.3, -0.05) == "right"
    assert direction_word(0.0, 0.2) == "down"
    assert direction_word(0.02, -0.2) == "up"
    assert direction_word(0.2, -0.18) == "up and to the right"
    assert direction_word(-0.2, 0.15) == "down and to the left"
