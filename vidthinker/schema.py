"""The data contract: every table VidThinker reads or writes, as pydantic models with Arrow schemas.

The pydantic models are the single source of truth; the Arrow schemas are derived from them
(`arrow_schema`), so a column can never drift between the validator and the parquet writer.
Tables are validated twice: structurally (Arrow schema, column by column) and per row (pydantic),
and every failure names the table, the row and the field.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

SCHEMA_VERSION = "1"

NonEmptyStr = Annotated[str, Field(min_length=1)]
FrameId = Annotated[int, Field(ge=0)]


class InstructionType(enum.StrEnum):
    """The paper's four instruction types; they decide how stage 3 samples frames."""

    SEMANTIC_ONLY = "semantic_only"
    MOTION_ONLY = "motion_only"
    SEMANTIC_MOTION = "semantic_motion"
    NO_CLUES = "no_clues"

    @property
    def motion(self) -> bool:
        return self in (InstructionType.MOTION_ONLY, InstructionType.SEMANTIC_MOTION)

    @property
    def existence(self) -> bool:
        """Whether the question names something visible to look for (a semantic clue)."""
        return self in (InstructionType.SEMANTIC_ONLY, InstructionType.SEMANTIC_MOTION)

    @classmethod
    def from_flags(cls, motion: bool, existence: bool) -> "InstructionType":
        if motion and existence:
            return cls.SEMANTIC_MOTION
        if motion:
            return cls.MOTION_ONLY
        if existence:
            return cls.SEMANTIC_ONLY
        return cls.NO_CLUES


class Row(BaseModel):
    """Base of every table row: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=False, use_enum_values=True)


def _sorted_unique(values: list[int]) -> list[int]:
    return sorted(set(values))


# --------------------------------------------------------------------------- manifest (input)


class GroundTruth(Row):
    """Known answer location of a question (synthetic sets, or a hand-labelled evaluation set)."""

    instruction_type: InstructionType | None = None
    frame_ids: list[FrameId] = Field(default_factory=list, description="relevant 1-fps frame ids")
    clip_ids: list[FrameId] = Field(default_factory=list, description="relevant clip ids")

    @field_validator("frame_ids", "clip_ids")
    @classmethod
    def _sorted_unique_ids(cls, values: list[int]) -> list[int]:
        return _sorted_unique(values)


class QAPair(Row):
    qa_id: NonEmptyStr
    question: NonEmptyStr
    answer: str = ""
    options: list[str] = Field(default_factory=list, description="multiple-choice options, if any")
    ground_truth: GroundTruth | None = None


class ManifestRow(Row):
    """One input video and the questions asked about it."""

    video_id: NonEmptyStr
    video: NonEmptyStr = Field(description="local path (relative to the manifest) or file:// URI")
    qa: list[QAPair] = Field(min_length=1)
    source: str | None = None
    clip_descriptions: list[str] | None = Field(
        default=None, description="known per-clip descriptions (synthetic sets): the oracle stage-1 input"
    )

    @field_validator("qa")
    @classmethod
    def _unique_qa_ids(cls, qa: list[QAPair]) -> list[QAPair]:
        seen: set[str] = set()
        for pair in qa:
            if pair.qa_id in seen:
                raise ValueError(f"duplicate qa_id {pair.qa_id!r}")
            seen.add(pair.qa_id)
        return qa


# --------------------------------------------------------------------------- stage outputs


class Usage(Row):
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    calls: int = Field(default=0, ge=0, description="billable model calls (cache hits count 0)")

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            calls=self.calls + other.calls,
        )


class StageTrace(Row):
    """What one stage did for one item: which model, which prompt, what came back, what it cost."""

    model: str | None = None
    prompt_hash: str | None = None
    raw_output: str | None = None
    latency_s: float = Field(default=0.0, ge=0)
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
    # Whether `error` came from the endpoint/infrastructure (True) or the input/reply (False): set by
    # the stage from the exception's `transient`, read by the pipeline into the record's
    # `error_class`. Not a column (the record carries the class).
    _transient: bool = PrivateAttr(default=False)

    def with_transient(self, transient: bool) -> "StageTrace":
        self._transient = bool(transient)
        return self

    @property
    def transient(self) -> bool:
        return self.error is not None and self._transient


class ClipSpan(Row):
    clip_id: FrameId
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    frame_ids: list[FrameId] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> "ClipSpan":
        if self.end_s <= self.start_s:
            raise ValueError(f"clip {self.clip_id}: end_s {self.end_s} <= start_s {self.start_s}")
        return self


class ClipPlan(Row):
    """A probed video cut into clips on the frame grid (empty `clips` and an error when unusable)."""

    video_id: NonEmptyStr
    video: NonEmptyStr
    duration_s: float = Field(default=0.0, ge=0)
    fps: float = Field(default=0.0, ge=0)
    num_frames: int = Field(default=0, ge=0)
    width: int = Field(default=0, ge=0)
    height: int = Field(default=0, ge=0)
    codec: str | None = None
    clip_seconds: float = Field(gt=0)
    grid_fps: float = Field(gt=0)
    num_grid_frames: int = Field(default=0, ge=0)
    clips: list[ClipSpan] = Field(default_factory=list)
    error: str | None = None


class ClipCaption(Row):
    """Stage 1: the instruction-conditioned caption of one clip for one question."""

    video_id: NonEmptyStr
    qa_id: NonEmptyStr
    clip_id: FrameId
    caption: str = ""
    keywords: list[str] = Field(default_factory=list)
    trace: StageTrace = Field(default_factory=StageTrace)


class ClipRetrieval(Row):
    """Stage 2: which clips answer the question, why, and what kind of question it is."""

    video_id: NonEmptyStr
    qa_id: NonEmptyStr
    clip_ids: list[FrameId] = Field(default_factory=list)
    explanation: str = ""
    instruction_type: InstructionType | None = None
    trace: StageTrace = Field(default_factory=StageTrace)


class FrameLocalization(Row):
    """Stage 3: the frames kept inside the retrieved clips, and the ones dropped and why."""

    video_id: NonEmptyStr
    qa_id: NonEmptyStr
    frame_ids: list[FrameId] = Field(default_factory=list)
    candidate_frame_ids: list[FrameId] = Field(default_factory=list)
    duplicate_frame_ids: list[FrameId] = Field(default_factory=list)
    rejected_frame_ids: list[FrameId] = Field(default_factory=list, description="failed the VLM yes/no check")
    policy: str = ""
    trace: StageTrace = Field(default_factory=StageTrace)


# --------------------------------------------------------------------------- final record


class Provenance(Row):
    pipeline_version: str
    schema_version: str = SCHEMA_VERSION
    run_id: str | None = None
    caption_model: str | None = None
    retrieval_model: str | None = None
    embedding_model: str | None = None
    verify_model: str | None = None
    caption_prompt_hash: str | None = None
    retrieval_prompt_hash: str | None = None
    verify_prompt_hash: str | None = None
    clip_seconds: float = Field(gt=0)
    grid_fps: float = Field(gt=0)
    created_at: dt.datetime

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        # Arrow stores UTC microseconds; naive datetimes would silently shift on round-trip.
        if value.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        return value.astimezone(dt.UTC)


YesNo = Literal["yes", "no"]
ErrorClass = Literal["transient", "permanent"]

# The columns of the public VideoITG-40K release, in its order, under its names.
VIDEOITG_COLUMNS = ("id", "video", "question", "answer", "frame_num", "clip_num", "motion", "existence")


class VideoITGRecord(Row):
    """One annotated question: the VideoITG-40K columns first, then type, error and provenance.

    `motion`/`existence` are "yes"/"no": whether the question is about motion, and whether it names
    something visible to look for. Together they are the instruction type (see InstructionType).
    """

    id: NonEmptyStr
    video: NonEmptyStr
    question: NonEmptyStr
    answer: str
    frame_num: list[FrameId] = Field(default_factory=list, description="relevant 1-fps frame ids")
    clip_num: list[FrameId] = Field(default_factory=list, description="relevant clip ids")
    motion: YesNo = "no"
    existence: YesNo = "no"
    instruction_type: InstructionType | None = None
    error: str | None = Field(default=None, description="null when the record is good")
    error_stage: str | None = None
    error_class: ErrorClass | None = Field(
        default=None,
        description="transient: the endpoint/infrastructure failed (timeout, 429/5xx, connection, auth, open "
        "circuit; a rerun repairs it); permanent: the input or the model's reply (null when ok, and on "
        "records written before error classes)",
    )
    video_id: NonEmptyStr
    qa_id: NonEmptyStr
    provenance: Provenance
    captions: list[ClipCaption] = Field(default_factory=list)
    retrieval: ClipRetrieval | None = None
    localization: FrameLocalization | None = None

    @field_validator("frame_num", "clip_num")
    @classmethod
    def _sorted_unique_ids(cls, values: list[int]) -> list[int]:
        return _sorted_unique(values)

    @model_validator(mode="after")
    def _consistent(self) -> "VideoITGRecord":
        if self.error is None and self.error_stage is not None:
            raise ValueError("error_stage is set but error is null")
        if self.error is None and self.error_class is not None:
            raise ValueError("error_class is set but error is null")
        if self.instruction_type is not None:
            kind = InstructionType(self.instruction_type)
            if (self.motion == "yes") != kind.motion or (self.existence == "yes") != kind.existence:
                raise ValueError(
                    f"motion={self.motion!r}/existence={self.existence!r} contradict "
                    f"instruction_type={kind.value!r}"
                )
        return self

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------- Arrow schemas

M = TypeVar("M", bound=BaseModel)


def _arrow_type(annotation: Any, where: str) -> tuple[pa.DataType, bool]:
    """Map a pydantic field annotation to (Arrow type, nullable)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _arrow_type(typing.get_args(annotation)[0], where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{where}: unions other than Optional[X] have no Arrow type")
        return _arrow_type(args[0], where)[0], True
    if origin is Literal:
        return pa.string(), False
    if origin is list:
        (item,) = typing.get_args(annotation)
        item_type, item_nullable = _arrow_type(item, where + "[]")
        return pa.list_(pa.field("item", item_type, nullable=item_nullable)), False
    if origin is dict:
        key, value = typing.get_args(annotation)
        return pa.map_(_arrow_type(key, where)[0], _arrow_type(value, where)[0]), False
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return pa.struct(_arrow_fields(annotation)), False
        if issubclass(annotation, enum.Enum) or annotation is str:
            return pa.string(), False
        if annotation is bool:
            return pa.bool_(), False
        if annotation is int:
            return pa.int64(), False
        if annotation is float:
            return pa.float64(), False
        if annotation is dt.datetime:
            return pa.timestamp("us", tz="UTC"), False
    raise TypeError(f"{where}: no Arrow type for {annotation!r}")


def _arrow_fields(model: type[BaseModel]) -> list[pa.Field]:
    fields = []
    for name, info in model.model_fields.items():
        arrow_type, nullable = _arrow_type(info.annotation, f"{model.__name__}.{name}")
        fields.append(pa.field(name, arrow_type, nullable=nullable))
    return fields


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    """The Arrow schema of a row model, tagged with the model name and schema version."""
    return pa.schema(
        _arrow_fields(model),
        metadata={b"vidthinker.table": model.__name__.encode(), b"vidthinker.schema_version": SCHEMA_VERSION.encode()},
    )


# --------------------------------------------------------------------------- validation and I/O


class SchemaError(ValueError):
    """A table or file does not match the data contract; the message names where and why."""


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        location = ".".join(str(p) for p in item["loc"]) or "<row>"
        parts.append(f"{location}: {item['msg']} (got {item.get('input')!r:.80})")
    more = len(error.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def validate_row(model: type[M], data: dict[str, Any], *, source: str, index: int | None = None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        where = f"{source}" + (f" row {index}" if index is not None else "")
        raise SchemaError(f"{where}: not a valid {model.__name__}: {_describe(error)}") from None


def to_table(rows: Iterable[BaseModel], model: type[BaseModel]) -> pa.Table:
    schema = arrow_schema(model)
    return pa.Table.from_pylist([row.model_dump(mode="python") for row in rows], schema=schema)


# Nullable columns added after files were written with the schema: a file without one reads as null.
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {"VideoITGRecord": ("error_class",)}


def check_table_schema(table: pa.Table, model: type[BaseModel], *, source: str) -> pa.Table:
    """Structural check: every contract column present with a compatible type; returns the cast table."""
    schema = arrow_schema(model)
    for name in ADDED_COLUMNS.get(model.__name__, ()):
        if name not in table.column_names:  # a file written before the column existed: null throughout
            table = table.append_column(schema.field(name), pa.nulls(table.num_rows, schema.field(name).type))
    missing = [name for name in schema.names if name not in table.column_names]
    extra = [name for name in table.column_names if name not in schema.names]
    if missing or extra:
        raise SchemaError(
            f"{source}: columns do not match {model.__name__}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
        )
    table = table.select(schema.names)
    for field in schema:
        actual = table.schema.field(field.name).type
        if actual != field.type:
            try:
                table = table.set_column(
                    schema.get_field_index(field.name), field, table.column(field.name).cast(field.type)
                )
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise SchemaError(
                    f"{source}: column {field.name!r} has type {actual}, expected {field.type}: {error}"
                ) from None
    return table.replace_schema_metadata(schema.metadata)


def iter_rows(table: pa.Table, model: type[M], *, source: str) -> Iterator[M]:
    """Validate and yield rows batch by batch, so a large table is never all in Python at once."""
    table = check_table_schema(table, model, source=source)
    index = 0
    for batch in table.to_batches(max_chunksize=2048):
        for data in batch.to_pylist():
            yield validate_row(model, data, source=source, index=index)
            index += 1


def write_parquet(rows: Iterable[BaseModel], model: type[BaseModel], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_table(rows, model), path, compression="zstd")
    return path


def read_parquet(path: str | Path, model: type[M]) -> list[M]:
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise SchemaError(f"{path}: not a readable parquet file: {error}") from None
    return list(iter_rows(table, model, source=str(path)))


TABLE_MODELS: dict[str, type[Row]] = {
    model.__name__: model
    for model in (ManifestRow, ClipPlan, ClipCaption, ClipRetrieval, FrameLocalization, VideoITGRecord)
}
