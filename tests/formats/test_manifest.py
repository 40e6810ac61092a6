import json

import pytest

from tests.formats.release_samples import write_lines
from tests.test_schema import sample_rows
from vidthinker import formats
from vidthinker.schema import ManifestRow, SchemaError


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
