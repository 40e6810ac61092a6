"""Picking a video's questions from its candidates, and their four answer options.

Draws from the question stream ``default_rng([seed, index, 1])`` (separate from the layout's), in a
fixed order: the number of questions, then per round the order of instruction types and a pick within
each, then each chosen question's options.
"""

from __future__ import annotations

import numpy as np

from vidthinker.schema import GroundTruth, InstructionType, QAPair
from vidthinker.synth.questions import Candidate, candidate_questions
from vidthinker.synth.scene import CLIP_SECONDS, Scene


def _count_options(rng: np.random.Generator, n: int) -> list[str]:
    start = max(1, n - int(rng.integers(0, 4)))
    return [str(v) for v in range(start, start + 4)]


def answer_options(rng: np.random.Generator, cand: Candidate) -> list[str]:
    """Four distinct options, one of them the answer: consecutive numbers for counts, else 3 distractors, shuffled."""
    if cand.numeric:
        return _count_options(rng, int(cand.answer))
    pool = [d for d in dict.fromkeys(cand.distractors) if d != cand.answer]
    picks = [pool[i] for i in sorted(rng.choice(len(pool), size=3, replace=False))]
    options = [cand.answer, *picks]
    order = rng.permutation(4)
    return [options[i] for i in order]


def choose_questions(scene: Scene, rng: np.random.Generator) -> list[QAPair]:
    """6..10 questions (fewer if the candidates run out), balanced over the instruction types, at most two per template, no repeated text."""
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
                options=answer_options(rng, c),
                ground_truth=GroundTruth(
                    instruction_type=c.kind,
                    frame_ids=c.frames,
                    clip_ids=sorted({f // CLIP_SECONDS for f in c.frames}),
                ),
            )
        )
    return qa
