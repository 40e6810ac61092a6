"""Annotation quality: agreement of records with known ground truth (synthetic or hand-labelled sets).

Per record: frame and clip precision/recall against the ground truth, and whether stage 2 named the
right instruction type; averaged overall and by the ground truth's instruction type.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from statistics import fmean

from pydantic import BaseModel

from vidthinker.schema import ManifestRow, VideoITGRecord


class Agreement(BaseModel):
    records: int = 0
    frame_precision: float = 0.0
    frame_recall: float = 0.0
    clip_precision: float = 0.0
    clip_recall: float = 0.0
    type_accuracy: float = 0.0
    mean_frames: float = 0.0


def _pr(predicted: set[int], truth: set[int]) -> tuple[float, float]:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else (1.0 if not truth else 0.0)
    recall = hits / len(truth) if truth else 1.0
    return precision, recall


def ground_truth_agreement(records: Iterable[VideoITGRecord], manifest: Iterable[ManifestRow]) -> dict[str, Agreement]:
    """{"all": ..., "<instruction type>": ...} over the good records whose question has ground truth."""
    truth = {(row.video_id, qa.qa_id): qa.ground_truth for row in manifest for qa in row.qa if qa.ground_truth}
    rows: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for record in records:
        gt = truth.get((record.video_id, record.qa_id))
        if gt is None or not record.ok:
            continue
        fp, fr = _pr(set(record.frame_num), set(gt.frame_ids))
        cp, cr = _pr(set(record.clip_num), set(gt.clip_ids))
        same_type = float(record.instruction_type == gt.instruction_type)
        values = (fp, fr, cp, cr, same_type, float(len(record.frame_num)))
        rows["all"].append(values)
        rows[str(gt.instruction_type)].append(values)
    return {
        key: Agreement(records=len(values), **dict(zip(
            ("frame_precision", "frame_recall", "clip_precision", "clip_recall", "type_accuracy", "mean_frames"),
            (round(fmean(column), 4) for column in zip(*values)),
        )))
        for key, values in sorted(rows.items())
    }
