"""What the harness evaluates: one question about one video, with options, gold letter and truth frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class EvalItem:
    """One question.

    ``options`` are the option texts without their letters (A is ``options[0]``); ``answer`` is the gold
    letter (None: open question, no QA accuracy). ``gt_frames`` are the relevant 1-fps grid ids (None: the
    benchmark has no temporal truth, so no grounding metrics). ``group`` is what per-type tables split by:
    the instruction type for VidThinker sets, the benchmark's own task category otherwise.

    ``doc_id`` is the benchmark's own question id (VideoMME ``question_id`` "001-1", a manifest's qa_id): it
    names the item in reports. ``extra["row"]`` is the item's position in its split (the annotation file's
    row order; a manifest's question order): lmms-eval's integer doc_id, which every prediction file
    carries (``lmms_doc_id``).
    """

    doc_id: str
    video: str
    question: str
    options: tuple[str, ...] = ()
    answer: str | None = None
    gt_frames: tuple[int, ...] | None = None
    group: str | None = None
    video_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.answer is not None and self.options and self.answer not in LETTERS[: len(self.options)]:
            raise ValueError(
                f"{self.doc_id}: answer {self.answer!r} is not one of the letters "
                f"{LETTERS[: len(self.options)]} of its {len(self.options)} options"
            )
        if len(self.options) > len(LETTERS):
            raise ValueError(f"{self.doc_id}: more than {len(LETTERS)} options")

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.options)]

    @property
    def lmms_doc_id(self) -> int:
        """lmms-eval's doc_id of this question: its position in the evaluation split."""
        row = self.extra.get("row")
        if row is None:
            raise ValueError(f"{self.doc_id}: item has no split position (extra['row'])")
        return int(row)


def group_by_video(items: list[EvalItem]) -> dict[str, list[EvalItem]]:
    """Items grouped by video path, in first-appearance order."""
    out: dict[str, list[EvalItem]] = {}
    for item in items:
        out.setdefault(item.video, []).append(item)
    return out
