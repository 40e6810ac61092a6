"""Records whose frames are a manifest's known ground truth (synthetic sets)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from vidthinker import __version__
from vidthinker.schema import InstructionType, ManifestRow, Provenance, VideoITGRecord


def records_from_ground_truth(manifest: Iterable[ManifestRow], *, run_id: str = "ground-truth") -> list[VideoITGRecord]:
    """Records whose frames are a manifest's known ground truth (synthetic sets): the reference the
    annotation pipeline is measured against, and training data for the selector without annotation."""
    now = dt.datetime.now(dt.UTC)
    provenance = Provenance(pipeline_version=f"vidthinker {__version__} ground-truth", run_id=run_id, clip_seconds=5.0, grid_fps=1.0, created_at=now)
    records = []
    for row in manifest:
        for pair in row.qa:
            if pair.ground_truth is None:
                continue
            kind = InstructionType(pair.ground_truth.instruction_type or InstructionType.SEMANTIC_ONLY)
            records.append(
                VideoITGRecord(
                    id=f"{row.video_id}/{pair.qa_id}",
                    video=row.video,
                    question=pair.question,
                    answer=pair.answer,
                    frame_num=pair.ground_truth.frame_ids,
                    clip_num=pair.ground_truth.clip_ids,
                    motion="yes" if kind.motion else "no",
                    existence="yes" if kind.existence else "no",
                    instruction_type=kind,
                    video_id=row.video_id,
                    qa_id=pair.qa_id,
                    provenance=provenance,
                )
            )
    return records
