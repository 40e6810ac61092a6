"""A stand-in for the frame reader of VideoITG's lmms-eval Video-LLM wrappers, written from their behaviour
(NVlabs/VideoITG, ``lmms_eval/models/internvl2.py``, ``internvl3_5.py``, ``qwen3_vl.py``, ``eagle2_5.py``,
``llava_onevision.py``; not their code):

* ``__init__``: ``frame_indices_jsonl`` is read line by line; blank lines are ignored, a line that is not
  JSON is skipped, a record needs ``doc_id`` and a list ``index``; ``int(doc_id)`` and ``int(x)`` of every
  index entry, a record where that fails is skipped (a warning only); the first line of a doc_id wins.
* at decode, for the doc being answered (lmms-eval's integer doc_id, its position in the split): the
  entry's ``index[:num_frame]``, sorted (qwen3_vl drops ids outside the video after the slice, eagle2_5 and
  llava_onevision before it, internvl2 not at all; here: after); no entry (or nothing left) → uniform
  sampling ``linspace(0, total - 1, num_frame)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class LmmsFrameReader:
    path: Path
    by_doc: dict[int, list[int]] = field(default_factory=dict)
    skipped: int = 0
    fallbacks: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for line in Path(self.path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                self.skipped += 1
                continue
            if not (
                isinstance(record, dict) and "doc_id" in record and isinstance(record.get("index"), list)
            ):
                self.skipped += 1
                continue
            try:
                doc = int(record["doc_id"])
                index = [int(x) for x in record["index"]]
            except (TypeError, ValueError):
                self.skipped += 1
                continue
            self.by_doc.setdefault(doc, index)  # the first line wins

    def frames(self, doc_id: int, num_frame: int, total_frames: int) -> list[int]:
        """The frame numbers the Video-LLM would see for this doc (records a uniform fallback)."""
        index = self.by_doc.get(int(doc_id))
        chosen = sorted(i for i in (index or [])[:num_frame] if 0 <= i < total_frames)
        if not chosen:
            self.fallbacks.append(int(doc_id))
            return np.linspace(0, total_frames - 1, num_frame, dtype=int).tolist()
        return chosen
