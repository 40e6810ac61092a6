import json
import re

import pytest

from tests.formats.release_samples import RELEASE_ROWS, write_json
from tests.test_schema import sample_rows
from vidthinker import formats
from vidthinker.schema import VIDEOITG_COLUMNS, SchemaError, VideoITGRecord, write_parquet


def round_trip(tmp_path, rows, *, import_root=None, export_root=None):
    source = write_json(tmp_path / "video_itg_data.json", rows)
    records = formats.import_videoitg_json(source, video_root=import_root)
    shard = write_parquet(records, VideoITGRecord, tmp_path / "shards" / "shard-00000.parquet")
    out = tmp_path / "export.json"
    formats.export_videoitg_json(formats.iter_records(shard), out, video_root=export_root)
    return records, json.loads(out.read_text())


def test_release_rows_round_trip_unchanged(tmp_path):
    records, exported = round_trip(tmp_path, RELEASE_ROWS)
    assert [r.instruction_type for r in records] == ["no_clues", "motion_only", "semantic_motion"]
    assert [r.motion for r in records] == ["no", "yes", "yes"]  # stored lower-case, written as released
    # the same JSON values, key order and types (integer ids, "Yes"/"No", relative paths)
    assert [json.dumps(row) for row in exported] == [json.dumps(row) for row in RELEASE_ROWS]


def test_release_rows_round_trip_through_a_video_root(tmp_path):
    records, exported = round_trip(tmp_path, RELEASE_ROWS, import_root="/data", export_root="/data")
    assert records[0].video == "/data/LLaVA-Video-178K/1_2_m_academic_v0_1/academic_source/Charades/2544C.mp4"
    assert [json.dumps(row) for row in exported] == [json.dumps(row) for row in RELEASE_ROWS]


def test_annotated_records_export_in_the_release_values(tmp_path):
    record, error_record = sample_rows()[VideoITGRecord]  # video /x/v1.mp4, motion "no", existence "yes"
    shard = write_parquet([record, error_record], VideoITGRecord, tmp_path / "shards" / "shard-00000.parquet")
    out = tmp_path / "videoitg.json"
    assert formats.export_videoitg_json(formats.iter_records(shard.parent), out, video_root="/") == 1  # error left out
    [row] = json.loads(out.read_text())
    assert list(row) == list(VIDEOITG_COLUMNS)
    assert row == {"id": "v1/q0", "video": "x/v1.mp4", "question": "What colour is the star?", "answer": "red",
                   "frame_num": [2, 4], "clip_num": [0], "motion": "No", "existence": "Yes"}
    assert formats.export_videoitg_json(formats.iter_records(shard.parent), out, include_errors=True, video_root="/x") == 2
    assert [r["video"] for r in json.loads(out.read_text())] == ["v1.mp4", "v2.mp4"]
    absolute: list[str] = []
    formats.export_videoitg_json(formats.iter_records(shard.parent), out, absolute=absolute)
    assert absolute == ["/x/v1.mp4"] and json.loads(out.read_text())[0]["video"] == "/x/v1.mp4"


def test_a_video_outside_the_export_root_is_an_error_naming_it(tmp_path):
    record = sample_rows()[VideoITGRecord][0]
    with pytest.raises(SchemaError, match=r"record 'v1/q0': video /x/v1.mp4 is not under the video root /data"):
        formats.export_videoitg_json([record], tmp_path / "out.json", video_root="/data")
    assert not (tmp_path / "out.json").exists()
    sibling = record.model_copy(update={"video": "/x/videos-old/v1.mp4"})  # a shared prefix is not "under"
    with pytest.raises(SchemaError, match="is not under the video root /x/videos"):
        formats.export_videoitg_json([sibling], tmp_path / "out.json", video_root="/x/videos")


def test_videoitg_import_accepts_other_spellings_and_names_bad_rows(tmp_path):
    rows = [dict(RELEASE_ROWS[0], id="v_abc", motion=True, existence="yes"), dict(RELEASE_ROWS[0], id="v_abc", motion="no")]
    records = formats.import_videoitg_json(write_json(tmp_path / "p.json", rows))
    assert [r.instruction_type for r in records] == ["semantic_motion", "no_clues"]
    assert [r.qa_id for r in records] == ["v_abc", "v_abc-1"]  # repeated ids stay addressable
    for bad, message in [(dict(RELEASE_ROWS[0], motion="Sometimes"), r"item 1: motion must be \"Yes\"/\"No\", got 'Sometimes'"),
                         (dict(RELEASE_ROWS[0], id=None), r"item 1: id must be an integer or a non-empty string"),
                         (dict(RELEASE_ROWS[0], question=""), r"item 1: question must be a non-empty string"),
                         ({k: v for k, v in RELEASE_ROWS[0].items() if k != "video"}, r"item 1: missing video")]:
        path = write_json(tmp_path / "bad.json", [RELEASE_ROWS[0], bad])
        with pytest.raises(SchemaError, match=re.escape(str(path)) + " " + message):
            formats.import_videoitg_json(path)


# --------------------------------------------------------------------------- the import / export commands


def test_cli_imports_a_llava_folder_and_exports_relative_to_a_root(llava_release, tmp_path):
    from typer.testing import CliRunner

    from vidthinker.cli import app

    runner = CliRunner()
    manifest = tmp_path / "manifest.jsonl"
    result = runner.invoke(app, ["import", str(llava_release), "--format", "llava-video", "--out", str(manifest)])
    assert result.exit_code == 0, result.output
    assert "imported 8 QA pairs over 3 videos from 3 file(s)" in " ".join(result.output.split())
    assert len(formats.read_manifest(manifest)) == 3

    source = write_json(tmp_path / "data" / "video_itg_data.json", RELEASE_ROWS)
    shard = tmp_path / "s" / "shard.parquet"
    result = runner.invoke(app, ["import", str(source), "--format", "videoitg-json", "--out", str(shard),
                                 "--video-root", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.json"
    # the records' videos are under data/: --manifest data/x.jsonl means the same root as --video-root data
    result = runner.invoke(app, ["export", "--shards", str(shard.parent), "--out", str(out), "--manifest", str(tmp_path / "data" / "m.jsonl")])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == RELEASE_ROWS
    result = runner.invoke(app, ["export", "--shards", str(shard.parent), "--out", str(out)])
    assert result.exit_code == 0 and "3 records keep an absolute local video path" in " ".join(result.output.split())
    result = runner.invoke(app, ["export", "--shards", str(shard.parent), "--out", str(out), "--video-root", str(tmp_path / "elsewhere")])
    assert result.exit_code == 2 and "is not under the video root" in " ".join(result.output.split())


def test_a_llava_import_exports_videos_in_the_release_form(llava_release, tmp_path):
    """Annotate the release folder as imported, export with the folder above it as root: the videos read
    `LLaVA-Video-178K/<subset>/<video>`, as in VideoITG-40K."""
    template = sample_rows()[VideoITGRecord][0]
    rows = formats.import_llava_video(llava_release)
    records = [template.model_copy(update={"video": row.video, "video_id": row.video_id, "id": f"{row.video_id}/{row.qa[0].qa_id}"})
               for row in rows]
    out = tmp_path / "videoitg.json"
    formats.export_videoitg_json(records, out, video_root=llava_release.parent)
    assert sorted(row["video"] for row in json.loads(out.read_text())) == [
        "LLaVA-Video-178K/0_30_s_nextqa/NextQA/NExTVideo/1006/8968804598.mp4",
        "LLaVA-Video-178K/0_30_s_nextqa/NextQA/NExTVideo/1007/4417581283.mp4",
        "LLaVA-Video-178K/30_60_s_academic_v0_1/academic_source/Charades/2544C.mp4"]


def test_record_json_is_byte_identical_to_json_dumps():
    """export writes each record without json.dumps (speed at 474K records); the bytes must not change."""
    import json
    import random

    from vidthinker.formats.videoitg import _record_json
    from vidthinker.schema import VIDEOITG_COLUMNS

    rng = random.Random(5)
    alphabet = ['a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\x00', '\x1f', 'é', '中', '\u2028', '😀', '{', '}', ',']
    ids = ["0", "7", "123456789012345678901234567890", "007", "-1", "1.0", "vid/qa-3", " 5", "5 "]
    for n in range(400):
        text = lambda: "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))  # noqa: E731
        rid = ids[n % len(ids)] if n < 2 * len(ids) else text() or "x"
        frames = sorted(rng.sample(range(0, 10**6), rng.randint(0, 6)))
        clips = sorted(rng.sample(range(0, 300), rng.randint(0, 3)))
        values = (int(rid) if rid.isdigit() and (rid == "0" or not rid.startswith("0")) and rid.isascii() else rid,
                  text() or "v.mp4", text() or "q", text(), frames, clips, rng.choice(["Yes", "No"]), rng.choice(["Yes", "No"]))
        expected = json.dumps(dict(zip(VIDEOITG_COLUMNS, values)), ensure_ascii=False)
        got = _record_json(rid, values[1], values[2], values[3], frames, clips, values[6], values[7])
        assert got == expected, rid
        assert json.loads(got)["id"] == values[0]
