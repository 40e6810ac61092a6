"""What a published row is (its columns and Arrow schema) and the names of the files that hold it."""

from __future__ import annotations

from pydantic import Field

from vidthinker.schema import (
    VIDEOITG_COLUMNS,
    FrameId,
    InstructionType,
    NonEmptyStr,
    Provenance,
    Row,
    YesNo,
    arrow_schema,
)

PUBLISH_VERSION = "1"
DATA_DIR = "data"
STATS_FILE = "stats/quality.json"
MANAGED_PREFIXES = ("data/", "stats/")
SPLIT = "train"
BATCH_ROWS = 65_536


class PublishedRecord(Row):
    """One published row: the VideoITG-40K columns, the instruction type, ids and provenance."""

    id: NonEmptyStr
    video: NonEmptyStr
    question: NonEmptyStr
    answer: str
    frame_num: list[FrameId] = Field(default_factory=list)
    clip_num: list[FrameId] = Field(default_factory=list)
    motion: YesNo = "no"
    existence: YesNo = "no"
    instruction_type: InstructionType | None = None
    video_id: NonEmptyStr
    qa_id: NonEmptyStr
    provenance: Provenance


PUBLISHED_SCHEMA = arrow_schema(PublishedRecord)
assert tuple(PUBLISHED_SCHEMA.names[: len(VIDEOITG_COLUMNS)]) == VIDEOITG_COLUMNS


def data_file_name(index: int, total: int) -> str:
    """Path in the repository of data file `index` of `total` (`data/train-00000-of-00003.parquet`)."""
    return f"{DATA_DIR}/{SPLIT}-{index:05d}-of-{total:05d}.parquet"
