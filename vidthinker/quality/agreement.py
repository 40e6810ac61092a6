"""Agreement with ground truth: frame and clip precision/recall of good records against the manifest's
ground truth, and whether stage 2 named the right instruction type, overall and by type.

`ground_truth_agreement(records, manifest)` works on records; `AgreementAccumulator` takes the same
figures column by column, so the run pass can feed it from shard batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
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


class AgreementAccumulator:
    """Agreement over (video_id, qa_id, ok, frames, clips, type) tuples, so shards can feed it column-wise."""

    def __init__(self, manifest: Iterable[ManifestRow]):
        self.truth = {(row.video_id, qa.qa_id): qa.ground_truth for row in manifest for qa in row.qa if qa.ground_truth}
        self.rows: dict[str, list[tuple[float, ...]]] = defaultdict(list)

    def add(self, video_id: str, qa_id: str, ok: bool, frames: Sequence[int], clips: Sequence[int], kind: str | None) -> None:
        gt = self.truth.get((video_id, qa_id))
        if gt is None or not ok:
            return
        fp, fr = _pr(set(frames), set(gt.frame_ids))
        cp, cr = _pr(set(clips), set(gt.clip_ids))
        same_type = float(kind == gt.instruction_type)
        values = (fp, fr, cp, cr, same_type, float(len(frames)))
        self.rows["all"].append(values)
        self.rows[str(gt.instruction_type)].append(values)

    def result(self) -> dict[str, Agreement]:
        return {
            key: Agreement(records=len(values), **dict(zip(
                ("frame_precision", "frame_recall", "clip_precision", "clip_recall", "type_accuracy", "mean_frames"),
                (round(fmean(column), 4) for column in zip(*values)),
            )))
            for key, values in sorted(self.rows.items())
        }


def ground_truth_agreement(records: Iterable[VideoITGRecord], manifest: Iterable[ManifestRow]) -> dict[str, Agreement]:
    """{"all": ..., "<instruction type>": ...} over the good records whose question has ground truth."""
    acc = AgreementAccumulator(manifest)
    for record in records:
        acc.add(record.video_id, record.qa_id, record.ok, record.frame_num, record.clip_num, record.instruction_type)
    return acc.result()
