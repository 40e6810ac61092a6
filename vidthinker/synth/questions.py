"""Candidate questions about a scene: one builder per question family, each with its exact ground truth.

A family is a group of question templates asked about the same facts (each shape, each word, each
moving object, ...). `QUESTION_FAMILIES` lists them in a fixed order and `candidate_questions` runs
them in that order; the order of the candidates is part of the set's determinism (the question picker
draws an index into them), so a new family goes at the end and a builder never reorders its output.
Builders draw no random numbers. Ground-truth frames follow the rules in `vidthinker.synth`'s docstring:
the frames where the asked-about things are visible (semantic), where the object moves (motion), or
every grid frame (whole-video questions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

from vidthinker.schema import InstructionType
from vidthinker.synth.drawing import drawn_area
from vidthinker.synth.scene import (
    ALL_BG_PHRASES,
    DIRECTION_PHRASE,
    DIRECTIONS,
    HAPPENS,
    PALETTE,
    SHAPES,
    WORDS,
    Scene,
    SceneObject,
)

T = InstructionType


@dataclass
class Candidate:
    template: str
    kind: InstructionType
    question: str
    answer: str
    distractors: list[str]
    frames: list[int]
    numeric: bool = False


class SceneFacts:
    """The lookups the families share, computed once per scene."""

    def __init__(self, scene: Scene):
        self.scene = scene
        self.duration = scene.duration
        self.objects = scene.objects
        self.texts = scene.texts
        self.names = [o.name for o in scene.objects]
        self.all_frames = list(range(scene.duration))

    @cached_property
    def unique_named(self) -> list[SceneObject]:
        """Objects whose "colour shape" name no other object shares, in appear order."""
        return [o for o in self.objects if self.names.count(o.name) == 1]

    @cached_property
    def movers(self) -> list[SceneObject]:
        return [o for o in self.objects if o.motion is not None]

    def not_name(self, o: SceneObject) -> list[str]:
        """Distractor names for `o`: the other objects first, then names no object has."""
        other_names = [f"{c} {s}" for s in SHAPES for c in PALETTE]
        return [n for n in self.names if n != o.name] + [n for n in other_names if n not in self.names]


def union(*lists: Iterable[int]) -> list[int]:
    return sorted(set().union(*map(set, lists)))


def _other_colours(colour: str) -> list[str]:
    return [c for c in PALETTE if c != colour]


def _other_shapes(shape: str) -> list[str]:
    return [s for s in SHAPES if s != shape]


def _other_directions(direction: str) -> list[str]:
    return [x for x in DIRECTIONS if x != direction]


# --------------------------------------------------------------------------- semantic_only


def shape_questions(f: SceneFacts) -> Iterator[Candidate]:
    """Per shape: its colour (when only one object has it) and how many objects have it."""
    d = f.duration
    for shape in SHAPES:
        group = [o for o in f.objects if o.shape == shape]
        if len(group) == 1:
            o = group[0]
            yield Candidate(
                "colour_of_shape", T.SEMANTIC_ONLY, f"What colour is the {shape}?", o.colour,
                _other_colours(o.colour), o.grid_ids(d),
            )
        if group:
            yield Candidate(
                "count_shape", T.SEMANTIC_ONLY, f"How many {shape}s appear in the video?", str(len(group)), [],
                union(*(o.grid_ids(d) for o in group)), numeric=True,
            )


def colour_questions(f: SceneFacts) -> Iterator[Candidate]:
    """Per colour worn by exactly one object: that object's shape."""
    for colour in PALETTE:
        group = [o for o in f.objects if o.colour == colour]
        if len(group) == 1:
            o = group[0]
            yield Candidate(
                "shape_of_colour", T.SEMANTIC_ONLY, f"What shape is the {colour} object?", o.shape,
                _other_shapes(o.shape), o.grid_ids(f.duration),
            )


def word_questions(f: SceneFacts) -> Iterator[Candidate]:
    """The word shown (one word), or the first and the last word shown (several)."""
    d, texts = f.duration, f.texts
    if len(texts) == 1:
        t = texts[0]
        yield Candidate(
            "word", T.SEMANTIC_ONLY, "What word appears on the screen?", t.word,
            [w for w in WORDS if w != t.word], t.grid_ids(d),
        )
    elif len(texts) > 1:
        first, last = texts[0], texts[-1]
        shown = [t.word for t in texts]
        yield Candidate(
            "first_word", T.SEMANTIC_ONLY, "What is the first word shown on the screen?", first.word,
            shown[1:] + [w for w in WORDS if w not in shown], first.grid_ids(d),
        )
        yield Candidate(
            "last_word", T.SEMANTIC_ONLY, "What is the last word shown on the screen?", last.word,
            shown[:-1] + [w for w in WORDS if w not in shown], last.grid_ids(d),
        )


def first_and_last_object_questions(f: SceneFacts) -> Iterator[Candidate]:
    """The shape of the first object to appear and the colour of the last (appear times are unique)."""
    d = f.duration
    first_obj, last_obj = f.objects[0], f.objects[-1]  # sorted by appear time
    yield Candidate(
        "first_shape", T.SEMANTIC_ONLY, "Which shape appears first?", first_obj.shape,
        _other_shapes(first_obj.shape), first_obj.grid_ids(d),
    )
    yield Candidate(
        "last_colour", T.SEMANTIC_ONLY, "What colour is the last object to appear?", last_obj.colour,
        _other_colours(last_obj.colour), last_obj.grid_ids(d),
    )


def objects_around_word_questions(f: SceneFacts) -> Iterator[Candidate]:
    """Per word: the first object to appear after it is shown, and the one object on screen with it."""
    d = f.duration
    for t in f.texts:
        after = [o for o in f.objects if o.appear2 > t.start2]
        if after:
            o = after[0]
            yield Candidate(
                "colour_after_word", T.SEMANTIC_ONLY,
                f"What colour is the first object to appear after the word {t.word} is shown?", o.colour,
                _other_colours(o.colour), union(t.grid_ids(d), o.grid_ids(d)),
            )
        during = [o for o in f.objects if o.appear2 < t.end2 and o.disappear2 > t.start2]
        if len(during) == 1 and during[0] in f.unique_named:
            o = during[0]
            frames = sorted(set(t.grid_ids(d)) & set(o.grid_ids(d)))
            if frames:
                yield Candidate(
                    "object_during_word", T.SEMANTIC_ONLY,
                    f"Which object is on the screen while the word {t.word} is shown?", o.name,
                    f.not_name(o), frames,
                )


def size_questions(f: SceneFacts) -> Iterator[Candidate]:
    """Which of two objects (consecutive by appear time) is larger, by drawn area.

    Asked only when one is at least 1.5x the other: a large triangle and a medium hexagon cover about the
    same pixels, so size words alone would be ambiguous.
    """
    d, sized = f.duration, f.unique_named
    for i in range(len(sized) - 1):
        a, b = sized[i], sized[i + 1]
        area_a, area_b = drawn_area(a), drawn_area(b)
        if max(area_a, area_b) >= 1.5 * min(area_a, area_b):
            big = a if area_a > area_b else b
            yield Candidate(
                "larger", T.SEMANTIC_ONLY, f"Which is larger, the {a.name} or the {b.name}?", f"the {big.name}",
                [f"the {a.name}", f"the {b.name}", "they are the same size", "neither of them appears"],
                union(a.grid_ids(d), b.grid_ids(d)),
            )


# --------------------------------------------------------------------------- motion_only


def mover_questions(f: SceneFacts) -> Iterator[Candidate]:
    """How many objects move, and which way the only / first / last object to start moving goes."""
    d, movers = f.duration, f.movers
    if len(movers) == 1:
        o = movers[0]
        yield Candidate(
            "single_mover_direction", T.MOTION_ONLY, "In which direction does the moving object travel?",
            o.motion.direction, _other_directions(o.motion.direction), o.moving_grid_ids(d),
        )
    yield Candidate(
        "count_movers", T.MOTION_ONLY, "How many objects move during the video?", str(len(movers)), [],
        union(*(o.moving_grid_ids(d) for o in movers)), numeric=True,
    )
    by_start = sorted(movers, key=lambda o: o.motion.start2)
    if len(movers) >= 2:
        if by_start[0].motion.start2 < by_start[1].motion.start2:
            o = by_start[0]
            yield Candidate(
                "first_mover_direction", T.MOTION_ONLY, "In which direction does the first object to move travel?",
                o.motion.direction, _other_directions(o.motion.direction), o.moving_grid_ids(d),
            )
        if by_start[-1].motion.start2 > by_start[-2].motion.start2:
            o = by_start[-1]
            yield Candidate(
                "last_mover_direction", T.MOTION_ONLY,
                "In which direction does the last object to start moving travel?",
                o.motion.direction, _other_directions(o.motion.direction), o.moving_grid_ids(d),
            )


def direction_questions(f: SceneFacts) -> Iterator[Candidate]:
    """Per direction taken by exactly one (uniquely named) object: which object moves that way."""
    for direction in DIRECTIONS:
        group = [o for o in f.movers if o.motion.direction == direction]
        if len(group) == 1 and group[0] in f.unique_named:
            o = group[0]
            yield Candidate(
                "which_moves_direction", T.MOTION_ONLY, f"Which object moves {DIRECTION_PHRASE[direction]}?",
                o.name, f.not_name(o), o.moving_grid_ids(f.duration),
            )


# --------------------------------------------------------------------------- semantic_motion


def object_motion_questions(f: SceneFacts) -> Iterator[Candidate]:
    """Per uniquely named object: which way and along which axis it moves, and what happens to it."""
    d = f.duration
    for o in f.unique_named:
        if o.motion is not None:
            m = o.motion
            yield Candidate(
                "which_way", T.SEMANTIC_MOTION, f"Which way does the {o.name} move?", m.direction,
                _other_directions(m.direction), o.moving_grid_ids(d),
            )
            axis = "horizontally" if m.direction in ("left", "right") else "vertically"
            yield Candidate(
                "axis", T.SEMANTIC_MOTION, f"Does the {o.name} move horizontally or vertically?", axis,
                ["horizontally", "vertically", "diagonally", "it does not move"], o.moving_grid_ids(d),
            )
        key = None if o.motion is None else o.motion.direction
        frames = o.grid_ids(d) if o.motion is None else o.moving_grid_ids(d)
        yield Candidate(
            "what_happens", T.SEMANTIC_MOTION, f"What happens to the {o.name} after it appears?", HAPPENS[key],
            [v for k2, v in HAPPENS.items() if k2 != key], frames,
        )


# --------------------------------------------------------------------------- no_clues (every grid frame)

BACKGROUND_KIND = {
    "plain": "a plain colour",
    "gradient": "a colour gradient",
    "noise": "a noise texture",
    "footage": "real video footage",
}


def whole_video_questions(f: SceneFacts) -> Iterator[Candidate]:
    """What the video is about, its counts of shapes, objects and words, and its kind of background."""
    all_frames, texts = f.all_frames, f.texts
    what = "Coloured shapes and words" if texts else "Coloured shapes"
    yield Candidate(
        "about", T.NO_CLUES, "What is this video about?", f"{what} over {f.scene.bg_phrase}",
        [f"{what} over {p}" for p in ALL_BG_PHRASES], all_frames,
    )
    yield Candidate(
        "count_shapes", T.NO_CLUES, "How many different shapes appear in the whole video?",
        str(len({o.shape for o in f.objects})), [], all_frames, numeric=True,
    )
    yield Candidate(
        "count_objects", T.NO_CLUES, "How many objects appear in the video in total?", str(len(f.objects)), [],
        all_frames, numeric=True,
    )
    if texts:
        yield Candidate(
            "count_words", T.NO_CLUES, "How many different words are shown in the video?", str(len(texts)), [],
            all_frames, numeric=True,
        )
    yield Candidate(
        "background_kind", T.NO_CLUES, "What kind of background does the video have?",
        BACKGROUND_KIND[f.scene.background["kind"]], list(BACKGROUND_KIND.values()), all_frames,
    )


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class QuestionFamily:
    name: str
    instruction_type: InstructionType
    templates: tuple[str, ...]
    build: Callable[[SceneFacts], Iterable[Candidate]]


QUESTION_FAMILIES: tuple[QuestionFamily, ...] = (
    QuestionFamily("shape", T.SEMANTIC_ONLY, ("colour_of_shape", "count_shape"), shape_questions),
    QuestionFamily("colour", T.SEMANTIC_ONLY, ("shape_of_colour",), colour_questions),
    QuestionFamily("words", T.SEMANTIC_ONLY, ("word", "first_word", "last_word"), word_questions),
    QuestionFamily("first_and_last_object", T.SEMANTIC_ONLY, ("first_shape", "last_colour"), first_and_last_object_questions),
    QuestionFamily(
        "objects_around_word", T.SEMANTIC_ONLY, ("colour_after_word", "object_during_word"), objects_around_word_questions
    ),
    QuestionFamily("size", T.SEMANTIC_ONLY, ("larger",), size_questions),
    QuestionFamily(
        "movers",
        T.MOTION_ONLY,
        ("single_mover_direction", "count_movers", "first_mover_direction", "last_mover_direction"),
        mover_questions,
    ),
    QuestionFamily("direction", T.MOTION_ONLY, ("which_moves_direction",), direction_questions),
    QuestionFamily("object_motion", T.SEMANTIC_MOTION, ("which_way", "axis", "what_happens"), object_motion_questions),
    QuestionFamily(
        "whole_video",
        T.NO_CLUES,
        ("about", "count_shapes", "count_objects", "count_words", "background_kind"),
        whole_video_questions,
    ),
)


def candidate_questions(scene: Scene) -> list[Candidate]:
    """Every question the families can ask about `scene`, in registry order (those with no frames dropped)."""
    facts = SceneFacts(scene)
    return [c for family in QUESTION_FAMILIES for c in family.build(facts) if c.frames]
