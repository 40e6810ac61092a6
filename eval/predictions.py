"""Saved predictions: lmms-eval's ``results.jsonl`` / ``frame_indices.jsonl`` read by the rules VideoITG's
Video-LLM wrappers apply (``read_prediction_lines``), and ``PredictionsSelector``, which scores candidates
from them behind the ``eval.selectors.FrameSelector`` interface."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.frames import FrameStore, VideoRef, video_path
from eval.items import EvalItem
from eval.selectors import BaseSelector, Query, top_k

log = logging.getLogger(__name__)


@dataclass
class PredictionLines:
    """The usable lines of one prediction file, by integer doc_id, and what was skipped and why."""

    path: Path
    rows: dict[int, dict[str, Any]]
    skipped: Counter
    lines: int = 0


SKIP_NOT_JSON = "not JSON"
SKIP_NO_FIELDS = "no doc_id, or index not a list"
SKIP_NOT_INT = "doc_id or an index entry not an integer"
SKIP_REPEATED = "repeated doc_id (the first line is kept)"


def read_prediction_lines(path: str | Path) -> PredictionLines:
    """Read ``results.jsonl`` / ``frame_indices.jsonl`` by the rules VideoITG's Video-LLM wrappers apply.

    NVlabs/VideoITG's lmms-eval fork (``lmms_eval/models/internvl2.py``, ``internvl3_5.py``, ``qwen3_vl.py``,
    ``eagle2_5.py``, ``llava_onevision.py``, ``__init__`` of each) reads ``frame_indices_jsonl`` line by line:
    a blank line is ignored; a line that is not JSON is skipped with a warning; a record without ``doc_id``
    and ``index``, or whose ``index`` is not a list, is skipped; ``doc_id`` goes through Python ``int(...)``
    and each index entry too, and a record where that fails is skipped with a warning (so "001-1" never
    matches a doc); the first line of a repeated doc_id wins. Other keys (``logits``, ``video_path``) are
    not read by them. This reader applies the same rules, so what we evaluate is what they would load, and
    counts the skipped lines by reason (a warning names the file and the counts). A file with lines of
    which none is usable is an input error.
    """
    path = Path(path)
    rows: dict[int, dict[str, Any]] = {}
    skipped: Counter = Counter()
    lines = 0
    with path.open(encoding="utf-8", errors="ignore") as handle:
        for line in handle:
            text = line.strip()
            if not text:
                continue
            lines += 1
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                skipped[SKIP_NOT_JSON] += 1
                continue
            if (
                not isinstance(record, dict)
                or "doc_id" not in record
                or not isinstance(record.get("index"), list)
            ):
                skipped[SKIP_NO_FIELDS] += 1
                continue
            try:
                doc = int(record["doc_id"])
                index = [int(x) for x in record["index"]]
            except (TypeError, ValueError, OverflowError):
                skipped[SKIP_NOT_INT] += 1
                continue
            if doc in rows:
                skipped[SKIP_REPEATED] += 1
                continue
            rows[doc] = {**record, "doc_id": doc, "index": index}
    if skipped:
        log.warning(
            "%s: skipped %d of %d lines (%s)",
            path,
            sum(skipped.values()),
            lines,
            "; ".join(f"{n}: {reason}" for reason, n in skipped.items()),
        )
    if lines and not rows:
        raise ValueError(
            f"{path}: none of its {lines} lines is usable by lmms-eval's readers ("
            + "; ".join(f"{n}: {reason}" for reason, n in skipped.items())
            + "). doc_id must be the integer position of the question in the evaluation split; "
            "files written before VidThinker wrote integer doc ids need to be written again"
        )
    return PredictionLines(path, rows, skipped, lines)


class PredictionsSelector(BaseSelector):
    """Selections another tool made, read from lmms-eval's files.

    ``results.jsonl`` ``{doc_id, video_path, index (frame ids by score desc), logits}`` gives scores, so any
    K can be taken; ``frame_indices.jsonl`` ``{doc_id, index (Top-K ascending)}`` gives one selection. With
    both, K = len(frame_indices' index) uses frame_indices and other K the scores; with frame_indices only,
    other K are not available (their metrics are left out), and the scores are 1 for the selected frames and
    0 for the rest. Lines are read by lmms-eval's rules (``read_prediction_lines``): integer doc ids, first
    line wins; ``skipped`` counts what was left out, per file and reason.

    ``index_unit="frame"`` (lmms-eval's and ``trainer.inference``'s convention): ids are original video frame
    indices and map to the nearest grid id (t = frame / fps); ``"grid"``: they already are 1-fps grid ids.
    A candidate that no predicted frame maps to takes the score of the nearest predicted frame in time
    (frames sampled on another grid still rank every candidate); several predicted frames on one grid id
    keep the highest score. A file's ``doc_id`` is lmms-eval's: the question's position in the evaluation
    split (``EvalItem.lmms_doc_id``). ``bind`` the items so their own ids (and, for a query without one, the
    video and question text) find that position; unbound, a query's doc_id must itself be the integer. A
    question with no prediction gets none (its metrics are left out and the report shows the coverage).
    """

    def __init__(
        self,
        folder: str | Path | None = None,
        *,
        results: str | Path | None = None,
        frame_indices: str | Path | None = None,
        name: str | None = None,
        index_unit: str = "frame",
        store: FrameStore | None = None,
    ) -> None:
        if index_unit not in ("frame", "grid"):
            raise ValueError("index_unit must be 'frame' or 'grid'")
        if folder is not None:
            folder = Path(folder)
            results = results or (folder / "results.jsonl" if (folder / "results.jsonl").is_file() else None)
            frame_indices = frame_indices or (
                folder / "frame_indices.jsonl" if (folder / "frame_indices.jsonl").is_file() else None
            )
        if results is None and frame_indices is None:
            raise FileNotFoundError(f"{folder}: neither results.jsonl nor frame_indices.jsonl")
        self.name = name or (
            Path(folder).name if folder is not None else Path(results or frame_indices).parent.name
        )
        self.index_unit = index_unit
        self.store = store or FrameStore()
        self.results: dict[int, dict[str, Any]] = {}
        self.fixed: dict[int, list[int]] = {}
        self.skipped: dict[str, dict[str, int]] = {}
        if results is not None:
            read = read_prediction_lines(results)
            self.skipped[Path(results).name] = dict(read.skipped)
            for doc, row in read.rows.items():
                index = row["index"]
                logits = row.get("logits")
                try:
                    logits = [float(x) for x in logits] if isinstance(logits, list) else None
                except (TypeError, ValueError):
                    logits = None
                if logits is None or len(logits) != len(index):
                    # ranked ids without (usable) scores: linearly decreasing scores keep the order
                    logits = list(np.linspace(1.0, 0.0, num=len(index))) if index else []
                self.results[doc] = {"index": index, "logits": logits}
        if frame_indices is not None:
            read = read_prediction_lines(frame_indices)
            self.skipped[Path(frame_indices).name] = dict(read.skipped)
            self.fixed = {doc: row["index"] for doc, row in read.rows.items()}
        self.paths = {
            "results": str(results) if results else None,
            "frame_indices": str(frame_indices) if frame_indices else None,
        }
        self._by_question: dict[tuple[str, str], str] = {}
        self._rows: dict[str, int] = {}
        self._known = set(self.results) | set(self.fixed)

    def describe(self):
        return {
            **super().describe(),
            **self.paths,
            "index_unit": self.index_unit,
            "docs": len(self.doc_ids()),
            "skipped_lines": self.skipped,
        }

    def doc_ids(self) -> set[int]:
        return set(self._known)

    def bind(self, items: Iterable[EvalItem]) -> PredictionsSelector:
        """Map the items' own ids (and their video + question text) to their lmms-eval doc_id."""
        items = list(items)
        for item in items:
            self._by_question[(str(Path(item.video).resolve()), item.question)] = item.doc_id
            self._rows[item.doc_id] = item.lmms_doc_id
        known = self._known
        found = sum(self._rows[i.doc_id] in known for i in items)
        if known and found == 0:
            log.warning(
                "%s: none of its %d doc ids is the position of one of the %d questions evaluated: "
                "written for another split or another order?",
                self.name,
                len(known),
                len(items),
            )
        return self

    def _doc(self, video: VideoRef, query: Query) -> int | None:
        doc = query.doc_id or self._by_question.get((str(Path(video_path(video)).resolve()), query.question))
        if doc is None:
            return None
        row = self._rows.get(doc)
        if row is None:
            try:  # unbound: the query's id must be lmms-eval's integer doc_id itself
                row = int(doc)
            except (TypeError, ValueError):
                return None
        return row if row in self._known else None

    def _to_grid(self, video: VideoRef, ids: Sequence[int]) -> np.ndarray:
        if self.index_unit == "grid":
            return np.asarray(ids, dtype=np.int64)
        return self.store.grid_of_frames(video, ids)

    def _scores(self, video: VideoRef, doc: int, candidate_ids: Sequence[int]) -> np.ndarray | None:
        cand = np.asarray(candidate_ids, dtype=np.int64)
        if doc in self.results:
            entry = self.results[doc]
            grid = self._to_grid(video, entry["index"])
            vals = np.asarray(entry["logits"], dtype=np.float64)
        elif doc in self.fixed:
            grid = self._to_grid(video, self.fixed[doc])
            vals = np.ones(grid.size)
            # the unselected candidates score 0
            extra = np.setdiff1d(cand, grid)
            grid, vals = np.r_[grid, extra], np.r_[vals, np.zeros(extra.size)]
        else:
            return None
        if grid.size == 0:
            return np.zeros(cand.size)
        best: dict[int, float] = {}
        for g, v in zip(grid.tolist(), vals.tolist()):
            if g not in best or v > best[g]:
                best[g] = v
        keys = np.array(sorted(best), dtype=np.int64)
        values = np.array([best[int(g)] for g in keys])
        pos = np.searchsorted(keys, cand)
        left = np.clip(pos - 1, 0, keys.size - 1)
        right = np.clip(pos, 0, keys.size - 1)
        dl, dr = np.abs(cand - keys[left]), np.abs(keys[right] - cand)
        # nearest predicted grid id; equally near: the higher score
        pick = np.where(
            dl < dr, left, np.where(dr < dl, right, np.where(values[left] >= values[right], left, right))
        )
        return values[pick]

    def score_queries(self, video, queries, candidate_ids):
        out = []
        for q in queries:
            doc = self._doc(video, q)
            out.append(None if doc is None else self._scores(video, doc, candidate_ids))
        return out

    def choose(self, video, query, candidate_ids, scores, k):
        doc = self._doc(video, query)
        if doc is None:
            return None
        if doc in self.fixed and len(self.fixed[doc]) == k:
            return sorted({int(g) for g in self._to_grid(video, self.fixed[doc])})
        if doc in self.results and scores is not None:
            return top_k(candidate_ids, scores, k)
        return None
