import json
from pathlib import Path

import pytest

from vidthinker import formats
from vidthinker.schema import VIDEOITG_COLUMNS, ManifestRow, QAPair, SchemaError, VideoITGRecord, write_parquet
from tests.test_schema import sample_rows


def write_lines(path: Path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_manifest_resolves_relative_videos_against_its_folder(tmp_path):
    row = {"video_id": "a", "video": "videos/a.mp4", "qa": [{"qa_id": "q0", "question": "What?", "answer": "x"}]}
    absolute = {"video_id": "b", "video": "/data/b.mp4", "qa": [{"qa_id": "q0", "question": "Why?"}]}
    path = write_lines(tmp_path / "m.jsonl", [json.dumps(row), "", json.dumps(absolute)])
    rows = formats.read_manifest(path)
    assert [r.video for r in rows] == [str(tmp_path / "videos" / "a.mp4"), "/data/b.mp4"]
    assert rows[0].qa[0].answer == "x"


def test_parquet_manifest_round_trip(tmp_path):
    rows = sample_rows()[ManifestRow]
    path = formats.write_manifest(rows, tmp_path / "m.parquet")
    back = formats.read_manifest(path)
    assert back[0].qa == rows[0].qa
    assert back[0].video == str(tmp_path / "videos" / "v1.mp4")


def test_jsonl_manifest_written_and_read_back(tmp_path):
    rows = sample_rows()[ManifestRow]
    path = formats.write_manifest(rows, tmp_path / "m.jsonl")
    assert formats.read_manifest(path)[0].qa == rows[0].qa


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"line 2: not JSON"),
        ("[1, 2]", r"line 2: expected a JSON object"),
        ('{"video_id": "b", "video": "b.mp4", "qa": []}', r"line 2: not a valid ManifestRow: qa: List should have at least 1 item"),
        ('{"video_id": "b", "video": "b.mp4", "qa": [{"qa_id": "q", "question": ""}]}', r"line 2: .*qa\.0\.question"),
    ],
)
def test_bad_manifest_lines_are_named(tmp_path, line, message):
    good = json.dumps({"video_id": "a", "video": "a.mp4", "qa": [{"qa_id": "q", "question": "ok?"}]})
    path = write_lines(tmp_path / "m.jsonl", [good, line])
    with pytest.raises(SchemaError, match=message):
        formats.read_manifest(path)


def test_duplicate_video_ids_and_unknown_formats_are_errors(tmp_path):
    line = json.dumps({"video_id": "a", "video": "a.mp4", "qa": [{"qa_id": "q", "question": "ok?"}]})
    with pytest.raises(SchemaError, match="duplicate video_id 'a'"):
        formats.read_manifest(write_lines(tmp_path / "m.jsonl", [line, line]))
    (tmp_path / "m.csv").write_text("x")
    with pytest.raises(SchemaError, match="unknown manifest format '.csv'"):
        formats.read_manifest(tmp_path / "m.csv")
    with pytest.raises(SchemaError, match="manifest not found"):
        formats.read_manifest(tmp_path / "missing.jsonl")


LLAVA = [
    {"id": "vid1_0", "video": "academic/v1.mp4", "data_source": "academic",
     "conversations": [
         {"from": "human", "value": "<image>\nWhat is the man holding?\nA. cup\nB. pen"},
         {"from": "gpt", "value": "A. cup"},
         {"from": "human", "value": "Where is he?"},
         {"from": "gpt", "value": "In a kitchen."}]},
    {"id": "vid1_1", "video": "academic/v1.mp4",
     "conversations": [{"from": "human", "value": "<video>\nDescribe the video."}, {"from": "gpt", "value": "A man cooks."}]},
    {"id": "vid2_0", "video": "youtube/v2.mp4",
     "conversations": [{"from": "human", "value": "Is it raining?"}, {"from": "gpt", "value": "No."}]},
]


def test_llava_video_import_groups_questions_by_video(tmp_path):
    path = tmp_path / "llava.json"
    path.write_text(json.dumps(LLAVA))
    rows = formats.read_manifest(path)
    assert [r.video_id for r in rows] == ["academic_v1", "youtube_v2"]
    first = rows[0]
    assert [q.qa_id for q in first.qa] == ["vid1_0-0", "vid1_0-1", "vid1_1-0"]
    assert first.qa[0].question == "What is the man holding?\nA. cup\nB. pen"
    assert first.qa[2].question == "Describe the video."
    assert first.qa[1].answer == "In a kitchen."
    assert first.source == "academic"
    assert first.video == str(tmp_path / "academic" / "v1.mp4")


def test_llava_video_import_rejects_unknown_speakers(tmp_path):
    bad = [{"id": "x", "video": "x.mp4", "conversations": [{"from": "robot", "value": "hi"}]}]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(SchemaError, match="item 0: unknown speaker 'robot'"):
        formats.import_llava_video(tmp_path / "bad.json")


def test_videoitg_json_export_has_exactly_the_release_columns_and_round_trips(tmp_path):
    records = sample_rows()[VideoITGRecord]
    shard = write_parquet(records, VideoITGRecord, tmp_path / "shards" / "shard-00000.parquet")
    out = tmp_path / "videoitg.json"
    assert formats.export_videoitg_json(formats.iter_records(shard.parent), out) == 1  # the error record is left out
    exported = json.loads(out.read_text())
    assert list(exported[0]) == list(VIDEOITG_COLUMNS)
    assert exported[0]["frame_num"] == [2, 4] and exported[0]["motion"] == "no" and exported[0]["existence"] == "yes"
    back = formats.import_videoitg_json(out)
    assert [(r.id, r.frame_num, r.clip_num, r.instruction_type) for r in back] == [("v1/q0", [2, 4], [0], "semantic_only")]
    with_errors = tmp_path / "all.json"
    assert formats.export_videoitg_json(formats.iter_records(shard.parent), with_errors, include_errors=True) == 2


def test_public_videoitg_json_import_accepts_booleans_and_repeated_ids(tmp_path):
    public = [
        {"id": "v_abc", "video": "ytb/abc.mp4", "question": "What?", "answer": "x", "frame_num": [10, 3],
         "clip_num": [0, 2], "motion": True, "existence": False},
        {"id": "v_abc", "video": "ytb/abc.mp4", "question": "Then?", "answer": "y", "frame_num": [],
         "clip_num": [], "motion": "no", "existence": "no"},
    ]
    (tmp_path / "p.json").write_text(json.dumps(public))
    records = formats.import_videoitg_json(tmp_path / "p.json", video_root="/videos")
    assert records[0].frame_num == [3, 10] and records[0].instruction_type == "motion_only"
    assert records[1].instruction_type == "no_clues"
    assert [r.qa_id for r in records] == ["v_abc", "v_abc-1"]
    assert records[0].video == "/videos/ytb/abc.mp4"
    public[0]["motion"] = "sometimes"
    (tmp_path / "p.json").write_text(json.dumps(public))
    with pytest.raises(SchemaError, match="item 0: motion must be yes/no"):
        formats.import_videoitg_json(tmp_path / "p.json")


def test_records_from_ground_truth_carry_the_truth():
    rows = sample_rows()[ManifestRow]
    records = formats.records_from_ground_truth(rows)
    assert len(records) == 1  # q1 has no ground truth
    assert records[0].frame_num == [2, 3, 4] and records[0].existence == "yes" and records[0].motion == "no"


def test_record_paths_errors(tmp_path):
    with pytest.raises(SchemaError, match="no such shard folder"):
        formats.record_paths(tmp_path / "nope")
    with pytest.raises(SchemaError, match="no parquet shards found"):
        formats.record_paths(tmp_path)
