"""Downstream QA (the paper's Table 3 protocol): a Video-LLM answers multiple-choice questions from the K
frames a selector picked (ITG-K; UNI-K for the uniform selector).

The model sits behind the OpenAI-compatible API (``vllm serve``): one user message with the K frames as
JPEG ``image_url`` parts in time order, then the question and the lettered options, VideoMME's lmms-eval
prompt::

    Select the best answer to the following multiple-choice question based on the video. Respond with only
    the letter (A, B, C, or D) of the correct option.
    <question>
    A. <option>
    ...
    The best answer is:

Temperature 0, 16 new tokens. The reply is parsed by ``parse_choice``; an unparsable reply or a failed
request counts as wrong (as lmms-eval scores it) and is counted separately. Accuracy comes with a 95 %
Wilson interval; differences between selectors with a paired bootstrap over videos (``eval.metrics``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eval.frames import FrameStore
from eval.items import LETTERS, EvalItem
from eval.metrics import paired_bootstrap, wilson_interval
from vidthinker.models.base import ChatModel, ChatRequest, ImagePart, Message, ModelError, TextPart
from vidthinker.video import jpeg_data_url

PROMPT_HEAD = (
    "Select the best answer to the following multiple-choice question based on the video. "
    "Respond with only the letter ({letters}) of the correct option."
)
PROMPT_TAIL = "The best answer is:"


def _letters_phrase(letters: str) -> str:
    if len(letters) == 1:
        return letters
    return ", ".join(letters[:-1]) + ", or " + letters[-1]


def format_prompt(question: str, options: Sequence[str]) -> str:
    letters = LETTERS[: len(options)]
    lines = [PROMPT_HEAD.format(letters=_letters_phrase(letters)), question.strip()]
    lines += [f"{letter}. {text}" for letter, text in zip(letters, options)]
    lines.append(PROMPT_TAIL)
    return "\n".join(lines)


# --------------------------------------------------------------------------- answer parsing

_PREFIXES = (
    "the best answer is",
    "the correct answer is",
    "the answer is",
    "the best option is",
    "the correct option is",
    "best answer:",
    "best option:",
    "answer:",
    "option:",
)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]+", " ", text.lower())).strip()


def parse_choice(reply: str | None, options: Sequence[str]) -> str | None:
    """The option letter a reply means, or None.

    In order: (1) the reply is just a letter, possibly wrapped — ``B``, ``(B)``, ``B.``, ``[B]``, ``**B**``;
    (2) an explicit marker — ``Answer: B``, ``The answer is (C)``, ``option D``; (3) a leading letter with a
    delimiter — ``B. red circle``, ``(C) blue``, ``D: ...`` (a leading ``A`` needs a delimiter, since "A red
    circle" is an article); (4) a parenthesised letter anywhere — ``... so (D)``; (5) the option text —
    exactly one option's text occurs in the reply, or the reply is one option's text (the longest when
    one option's text contains another's); (6) the first standalone capital letter of the choices that is
    not an article ("A" followed by a lower-case word). Only letters of the given options count.
    """
    if reply is None:
        return None
    letters = LETTERS[: max(1, len(options))] if options else "ABCD"
    cls = f"[{letters}]"
    s = reply.strip().replace("*", "").replace("`", "")
    if not s:
        return None
    m = re.fullmatch(rf"[\(\[\{{]?\s*({cls})\s*[\)\]\}}]?[\.\:\)]?", s)
    if m:
        return m.group(1)
    m = re.search(
        rf"(?:answer|option|choice)\s*(?:is|would be|should be)?\s*[:\-]?\s*[\(\[]?({cls})\b(?![a-z'])",
        s,
        flags=re.IGNORECASE,
    )
    if m and m.group(1).upper() in letters and m.group(1).isupper():
        return m.group(1)
    lowered = s
    for prefix in _PREFIXES:
        lowered = re.sub(re.escape(prefix), "", lowered, flags=re.IGNORECASE)
    lowered = lowered.strip().lstrip(":-\u2013 ").strip()
    m = re.match(rf"^[\(\[]?({cls})(?:[\)\]\.\:]|\s*$)", lowered)
    if m:
        return m.group(1)
    m = re.match(rf"^({cls})\s+\S", lowered)
    if m and m.group(1) != "A":
        return m.group(1)
    m = re.search(rf"\(({cls})\)", s)
    if m:
        return m.group(1)
    if options:
        said = _norm(s)
        texts = [_norm(o) for o in options]
        exact = [i for i, t in enumerate(texts) if t and said == t]
        if len(exact) == 1:
            return letters[exact[0]]
        found = [
            i
            for i, t in enumerate(texts)
            if t and re.search(rf"(?<![a-z0-9]){re.escape(t)}(?![a-z0-9])", said)
        ]
        # drop options whose text is part of another found option's text ("red" inside "dark red")
        found = [i for i in found if not any(j != i and texts[i] in texts[j] for j in found)]
        if len(found) == 1:
            return letters[found[0]]
    for m in re.finditer(rf"(?<![A-Za-z0-9'])({cls})(?![A-Za-z0-9'])", s):
        after = s[m.end() : m.end() + 3]
        if m.group(1) == "A" and re.match(r" [a-z]", after):
            continue  # "A red circle": the article
        return m.group(1)
    return None


# --------------------------------------------------------------------------- running the model


@dataclass
class Answer:
    doc_id: str
    selector: str
    k: int
    frames: list[int]
    reply: str | None
    parsed: str | None
    gold: str
    correct: bool
    error: str | None = None
    group: str | None = None
    video: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class QARunner:
    """Asks the model one question per (selector, K, item); frames come from the shared ``FrameStore``."""

    chat: ChatModel
    store: FrameStore
    max_side: int | None = 448
    jpeg_quality: int = 85
    max_tokens: int = 16
    concurrency: int = 8
    answers: list[Answer] = field(default_factory=list)

    def _request(self, urls: list[str], item: EvalItem) -> ChatRequest:
        parts: list[Any] = [ImagePart(url) for url in urls]
        parts.append(TextPart(format_prompt(item.question, item.options)))
        return ChatRequest(messages=(Message.user(*parts),), temperature=0.0, max_tokens=self.max_tokens)

    async def answer_video(self, jobs: Sequence[tuple[EvalItem, str, int, list[int]]]) -> list[Answer]:
        """``jobs``: (item, selector name, K, grid ids) of one video. Each distinct frame is encoded once."""
        if not jobs:
            return []
        video = jobs[0][0].video
        wanted = sorted({g for *_, ids in jobs for g in ids})
        frames = self.store.frames(video, wanted) if wanted else np.zeros((0, 1, 1, 3), np.uint8)
        urls = {
            g: jpeg_data_url(f, max_side=self.max_side, quality=self.jpeg_quality)
            for g, f in zip(wanted, frames)
        }
        sem = asyncio.Semaphore(max(1, self.concurrency))

        async def one(item: EvalItem, name: str, k: int, ids: list[int]) -> Answer:
            ordered = sorted(ids)
            async with sem:
                try:
                    reply = await self.chat.chat(self._request([urls[g] for g in ordered], item))
                    text, error = reply.text, None
                except ModelError as err:
                    text, error = None, f"{type(err).__name__}: {err}"
            parsed = parse_choice(text, item.options)
            assert item.answer is not None
            return Answer(
                item.doc_id,
                name,
                k,
                ordered,
                text,
                parsed,
                item.answer,
                parsed == item.answer,
                error,
                item.group,
                item.video,
            )

        out = await asyncio.gather(*(one(*job) for job in jobs))
        self.answers.extend(out)
        return list(out)


# --------------------------------------------------------------------------- summaries


def qa_table(answers: Sequence[Answer]) -> dict[str, dict[int, dict[str, Any]]]:
    """``[selector][K]`` → accuracy, Wilson 95 % interval, n, unparsed and failed counts, and by group."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    cells: dict[tuple[str, int], list[Answer]] = {}
    for a in answers:
        cells.setdefault((a.selector, a.k), []).append(a)
    for (name, k), cell in sorted(cells.items(), key=lambda x: (x[0][0], x[0][1])):
        correct = sum(a.correct for a in cell)
        low, high = wilson_interval(correct, len(cell))
        groups: dict[str, list[Answer]] = {}
        for a in cell:
            groups.setdefault(a.group or "unknown", []).append(a)
        out.setdefault(name, {})[k] = {
            "accuracy": correct / len(cell) if cell else float("nan"),
            "low": low,
            "high": high,
            "n": len(cell),
            "correct": correct,
            "unparsed": sum(a.parsed is None and a.error is None for a in cell),
            "failed": sum(a.error is not None for a in cell),
            "by_group": {
                g: {"accuracy": sum(a.correct for a in ga) / len(ga), "n": len(ga)}
                for g, ga in sorted(groups.items())
            },
        }
    return out


def qa_paired_diff(answers: Sequence[Answer], a: str, b: str, k: int, *, n_boot: int = 2000, seed: int = 0):
    """Bootstrap (over videos) interval of accuracy(a) − accuracy(b) at K on the questions both answered."""
    left = {x.doc_id: x for x in answers if x.selector == a and x.k == k}
    right = {x.doc_id: x for x in answers if x.selector == b and x.k == k}
    common = [d for d in left if d in right]
    return paired_bootstrap(
        [float(left[d].correct) for d in common],
        [float(right[d].correct) for d in common],
        [left[d].video for d in common],
        n_boot=n_boot,
        seed=seed,
    )
