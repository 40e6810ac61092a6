"""Candidate questions and their selection, on many planned scenes (no video is rendered)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.synth.truth_checks import rederive
from vidthinker import synth
from vidthinker.schema import GroundTruth, QAPair
from vidthinker.synth.questions import SceneFacts


def test_every_template_rederives_on_many_scenes():
    """All candidate questions of 80 planned scenes (no video) agree with their truth; all templates seen."""
    ok = {s: None for s in synth.FOOTAGE}
    templates = set()
    for index in range(80):
        scene = synth.plan_scene(
            index, 11, min_seconds=10, max_seconds=240, width=320, height=240, fps=10, footage_ok=ok
        )
        t = synth.scene_truth(scene, "none")
        for c in synth.candidate_questions(scene):
            templates.add(c.template)
            q = QAPair(
                qa_id="q",
                question=c.question,
                answer=c.answer,
                ground_truth=GroundTruth(instruction_type=c.kind, frame_ids=c.frames),
            )
            rederive(q, t)
            options = synth.answer_options(np.random.default_rng(0), c)
            assert len(set(options)) == 4 and options.count(c.answer) == 1, (c.question, options)
        qa = synth.choose_questions(scene, np.random.default_rng(index))
        assert 6 <= len(qa) <= 10
    assert len(templates) >= 24, sorted(templates)



@pytest.fixture(scope="module")
def scenes() -> list[synth.Scene]:
    ok = {s: None for s in synth.FOOTAGE}
    return [
        synth.plan_scene(index, 11, min_seconds=10, max_seconds=240, width=320, height=240, fps=10, footage_ok=ok)
        for index in range(80)
    ]


def test_every_template_belongs_to_one_family():
    templates = [t for family in synth.QUESTION_FAMILIES for t in family.templates]
    assert len(templates) == len(set(templates)) == 24
    assert len({family.name for family in synth.QUESTION_FAMILIES}) == len(synth.QUESTION_FAMILIES)


@pytest.mark.parametrize("family", synth.QUESTION_FAMILIES, ids=lambda family: family.name)
def test_each_family_asks_its_own_templates_with_its_instruction_type(family, scenes):
    """Over 80 scenes a family yields every template it declares, and only those, all of its type."""
    seen = set()
    for scene in scenes:
        for c in family.build(SceneFacts(scene)):
            assert c.template in family.templates, (family.name, c.template)
            assert c.kind == family.instruction_type, (family.name, c.template, c.kind)
            seen.add(c.template)
    assert seen == set(family.templates)


def test_candidates_come_family_by_family_in_registry_order(scenes):
    rank = {t: i for i, family in enumerate(synth.QUESTION_FAMILIES) for t in family.templates}
    for scene in scenes[:20]:
        ranks = [rank[c.template] for c in synth.candidate_questions(scene)]
        assert ranks == sorted(ranks)
