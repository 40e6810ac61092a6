import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vidthinker.schema import (
    TABLE_MODELS,
    VIDEOITG_COLUMNS,
    ClipCaption,
    ClipPlan,
    ClipRetrieval,
    ClipSpan,
    FrameLocalization,
    GroundTruth,
    InstructionType,
    ManifestRow,
    Provenance,
    QAPair,
    SchemaError,
    StageTrace,
    Usage,
    VideoITGRecord,
    arrow_schema,
    check_table_schema,
    iter_rows,
    read_parquet,
    to_table,
    write_parquet,
)

NOW = dt.datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=dt.UTC)


def trace(**kw):
    return StageTrace(model="m", prompt_hash="abc", raw_output='{"x": 1}', latency_s=0.25,
                      usage=Usage(prompt_tokens=10, completion_tokens=3, calls=1), **kw)


def provenance():
    return Provenance(pipeline_version="0.1.0", run_id="r1", caption_model="cap", retrieval_model="ret",
                      embedding_model="emb", caption_prompt_hash="h1", retrieval_prompt_hash="h2",
                      clip_seconds=5.0, grid_fps=1.0, created_at=NOW)


def sample_rows():
    manifest = ManifestRow(
        video_id="v1", video="videos/v1.mp4", source="synthetic", clip_descriptions=["a red star", "nothing"],
        qa=[QAPair(qa_id="q0", question="What colour is the star?", answer="red", options=["red", "blue"],
                   ground_truth=GroundTruth(instruction_type="semantic_only", frame_ids=[4, 2, 3, 3], clip_ids=[0])),
            QAPair(qa_id="q1", question="What happens?", answer="")],
    )
    plan = ClipPlan(video_id="v1", video="/x/v1.mp4", duration_s=9.5, fps=10, num_frames=95, width=320, height=240,
                    codec="h264", clip_seconds=5, grid_fps=1, num_grid_frames=10,
                    clips=[ClipSpan(clip_id=0, start_s=0, end_s=5, frame_ids=[0, 1, 2, 3, 4]),
                           ClipSpan(clip_id=1, start_s=5, end_s=9.5, frame_ids=[5, 6, 7, 8, 9])])
    bad_plan = ClipPlan(video_id="v2", video="/x/v2.mp4", clip_seconds=5, grid_fps=1, error="CorruptVideo: truncated")
    caption = ClipCaption(video_id="v1", qa_id="q0", clip_id=0, caption="a red star", keywords=["star"], trace=trace())
    retrieval = ClipRetrieval(video_id="v1", qa_id="q0", clip_ids=[0], explanation="star in clip 0",
                              instruction_type="semantic_only", trace=trace())
    local = FrameLocalization(video_id="v1", qa_id="q0", frame_ids=[2, 4], candidate_frame_ids=[0, 1, 2, 3, 4],
                              duplicate_frame_ids=[0, 1, 3], policy="semantic_only:dedup", trace=trace())
    record = VideoITGRecord(id="v1/q0", video="/x/v1.mp4", question="What colour is the star?", answer="red",
                            frame_num=[4, 2], clip_num=[0], motion="no", existence="yes",
                            instruction_type="semantic_only", video_id="v1", qa_id="q0", provenance=provenance(),
                            captions=[caption], retrieval=retrieval, localization=local)
    error_record = VideoITGRecord(id="v2/q0", video="/x/v2.mp4", question="q?", answer="", error="CorruptVideo: truncated",
                                  error_stage="decode", video_id="v2", qa_id="q0", provenance=provenance())
    return {ManifestRow: [manifest], ClipPlan: [plan, bad_plan], ClipCaption: [caption], ClipRetrieval: [retrieval],
            FrameLocalization: [local], VideoITGRecord: [record, error_record]}


@pytest.mark.parametrize("model", list(TABLE_MODELS.values()), ids=list(TABLE_MODELS))
def test_every_table_round_trips_through_parquet(model, tmp_path):
    rows = sample_rows()[model]
    path = write_parquet(rows, model, tmp_path / f"{model.__name__}.parquet")
    assert pq.read_schema(path).metadata[b"vidthinker.table"] == model.__name__.encode()
    assert read_parquet(path, model) == rows


def test_record_columns_start_with_the_videoitg_release_columns():
    names = arrow_schema(VideoITGRecord).names
    assert tuple(names[: len(VIDEOITG_COLUMNS)]) == VIDEOITG_COLUMNS
    for extra in ("instruction_type", "error", "provenance"):
        assert extra in names
    prov = arrow_schema(VideoITGRecord).field("provenance").type
    assert {"pipeline_version", "caption_prompt_hash", "clip_seconds", "grid_fps", "created_at"} <= {f.name for f in prov}


def test_frame_ids_are_sorted_and_unique():
    assert GroundTruth(frame_ids=[5, 1, 5, 3]).frame_ids == [1, 3, 5]
    record = sample_rows()[VideoITGRecord][0]
    assert record.frame_num == [2, 4]


def test_created_at_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        Provenance(pipeline_version="x", clip_seconds=5, grid_fps=1, created_at=dt.datetime(2026, 1, 1))


def test_motion_and_existence_must_agree_with_instruction_type():
    base = sample_rows()[VideoITGRecord][0].model_dump()
    base.update(motion="yes", existence="yes", instruction_type="semantic_only")
    with pytest.raises(ValueError, match="contradict"):
        VideoITGRecord.model_validate(base)


@pytest.mark.parametrize("kind", list(InstructionType))
def test_instruction_type_flags_round_trip(kind):
    assert InstructionType.from_flags(kind.motion, kind.existence) is kind


def test_duplicate_qa_ids_are_rejected():
    with pytest.raises(ValueError, match="duplicate qa_id 'q'"):
        ManifestRow(video_id="v", video="v.mp4", qa=[QAPair(qa_id="q", question="a?"), QAPair(qa_id="q", question="b?")])


def test_unknown_fields_are_rejected_not_dropped():
    with pytest.raises(ValueError, match="extra"):
        QAPair.model_validate({"qa_id": "q", "question": "a?", "typo_field": 1})


def test_row_errors_name_source_row_and_field(tmp_path):
    rows = sample_rows()[ManifestRow] * 1
    table = to_table(rows, ManifestRow)
    # Corrupt row 0's question to an empty string: Arrow accepts it, the row validator must not.
    qa = table.column("qa").to_pylist()
    qa[0][0]["question"] = ""
    table = table.set_column(2, "qa", pa.array(qa, type=table.schema.field("qa").type))
    with pytest.raises(SchemaError, match=r"src row 0: not a valid ManifestRow: qa\.0\.question"):
        list(iter_rows(table, ManifestRow, source="src"))


def test_structural_check_names_missing_and_unexpected_columns():
    table = pa.table({"video_id": ["v"], "video": ["x.mp4"], "extra": [1]})
    with pytest.raises(SchemaError, match=r"missing \['qa'.*unexpected \['extra'\]"):
        check_table_schema(table, ManifestRow, source="t.parquet")


def test_compatible_types_are_cast_and_incompatible_ones_named():
    rows = sample_rows()[ClipPlan]
    table = to_table(rows, ClipPlan)
    as_int32 = table.set_column(table.schema.get_field_index("num_frames"), "num_frames",
                                table.column("num_frames").cast(pa.int32()))
    assert list(iter_rows(as_int32, ClipPlan, source="t")) == rows
    as_text = table.set_column(table.schema.get_field_index("fps"), "fps", pa.array(["fast", "slow"]))
    with pytest.raises(SchemaError, match="column 'fps' has type string"):
        check_table_schema(as_text, ClipPlan, source="t")


def test_unreadable_parquet_is_a_schema_error(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(SchemaError, match="bad.parquet: not a readable parquet file"):
        read_parquet(path, VideoITGRecord)
