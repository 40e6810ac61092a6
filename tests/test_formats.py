import json
import re
from pathlib import Path

import pytest

from tests.test_schema import sample_rows
from vidthinker import formats
from vidthinker.schema import (
    VIDEOITG_COLUMNS,
    ManifestRow,
    SchemaError,
    VideoITGRecord,
    write_parquet,
)


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


# --------------------------------------------------------------------------- LLaVA-Video-178K, as released
#
# Shapes from the release (HF lmms-lab/LLaVA-Video-178K): one folder per subset holding
# `<subset>_{mc,oe}_qa_processed.json` (and `<subset>_cap_processed.json`); one item per QA pair,
# `{id, conversations, data_source, video}`; the items about one video share `id`; `video` is relative
# to the subset folder; human turns start with "<image>\n".

NEXTQA_VIDEO = "NextQA/NExTVideo/1006/8968804598.mp4"
NEXTQA_MC = [
    {"id": "1006-8968804598", "data_source": "0_30_s_nextqa", "video": NEXTQA_VIDEO, "conversations": [
        {"from": "human", "value": "<image>\nWhy does the boy bend down?\nOptions:\nA. to tie a shoe.\nB. to pick up a ball.\n"
                                   "Please respond with only the letter of the correct answer."},
        {"from": "gpt", "value": "B."}]},
    {"id": "1006-8968804598", "data_source": "0_30_s_nextqa", "video": NEXTQA_VIDEO, "conversations": [
        {"from": "human", "value": "<image>\nWhat does the dog do at the end?\nOptions:\nA. sits.\nB. runs away.\n"
                                   "Please respond with only the letter of the correct answer."},
        {"from": "gpt", "value": "A."}]},
    {"id": "1007-4417581283", "data_source": "0_30_s_nextqa", "video": "NextQA/NExTVideo/1007/4417581283.mp4",
     "conversations": [{"from": "human", "value": "<image>\nHow many people are there?\nOptions:\nA. one.\nB. two.\n"},
                       {"from": "gpt", "value": "B."}]},
]
NEXTQA_OE = [
    {"id": "1006-8968804598", "data_source": "0_30_s_nextqa", "video": NEXTQA_VIDEO, "conversations": [
        {"from": "human", "value": "<image>\nwhere is the boy\nAnswer the question using few words or phrase."},
        {"from": "gpt", "value": "park"}]},
    # a multi-turn item: two QA pairs in one conversation
    {"id": "1006-8968804598", "data_source": "0_30_s_nextqa", "video": NEXTQA_VIDEO, "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is the ball?"},
        {"from": "gpt", "value": "Red."},
        {"from": "human", "value": "Who throws it?"},
        {"from": "gpt", "value": "The girl."}]},
]
CHARADES_VIDEO = "academic_source/Charades/2544C.mp4"
ACADEMIC_OE = [
    {"id": "2544C", "data_source": "30_60_s_academic_v0_1", "video": CHARADES_VIDEO, "conversations": [
        {"from": "human", "value": "<image>\nDoes the person sweep the floor in the video?"}, {"from": "gpt", "value": "Yes."}]},
    {"id": "2544C", "data_source": "30_60_s_academic_v0_1", "video": CHARADES_VIDEO, "conversations": [
        {"from": "human", "value": "<image>\nDoes the person sweep the floor in the video?"}, {"from": "gpt", "value": "Yes, twice."}]},
]
CAPTIONS = [{"id": "1006-8968804598", "data_source": "0_30_s_nextqa", "video": NEXTQA_VIDEO, "conversations": [
    {"from": "human", "value": "<image>\nDescribe this video in detail."}, {"from": "gpt", "value": "A boy plays."}]}]


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


@pytest.fixture
def llava_release(tmp_path) -> Path:
    """A LLaVA-Video-178K folder with two subsets (mc + oe + captions, and oe only)."""
    root = tmp_path / "LLaVA-Video-178K"
    write_json(root / "0_30_s_nextqa" / "0_30_s_nextqa_mc_qa_processed.json", NEXTQA_MC)
    write_json(root / "0_30_s_nextqa" / "0_30_s_nextqa_oe_qa_processed.json", NEXTQA_OE)
    write_json(root / "0_30_s_nextqa" / "0_30_s_nextqa_cap_processed.json", CAPTIONS)
    write_json(root / "30_60_s_academic_v0_1" / "30_60_s_academic_oe_v0_1_qa_processed.json", ACADEMIC_OE)
    return root


def test_llava_file_with_shared_ids_gives_one_row_per_video_and_one_qa_per_item(llava_release):
    path = llava_release / "0_30_s_nextqa" / "0_30_s_nextqa_mc_qa_processed.json"
    rows = formats.import_llava_video(path)
    assert [r.video_id for r in rows] == ["0_30_s_nextqa_NextQA_NExTVideo_1006_8968804598",
                                          "0_30_s_nextqa_NextQA_NExTVideo_1007_4417581283"]
    boy = rows[0]
    assert boy.video == str(llava_release / "0_30_s_nextqa" / NEXTQA_VIDEO)  # relative to the subset folder
    assert boy.source == "0_30_s_nextqa"
    assert len(boy.qa) == 2 and len({q.qa_id for q in boy.qa}) == 2
    assert all(re.fullmatch(r"1006-8968804598-[0-9a-f]{10}", q.qa_id) for q in boy.qa)
    assert boy.qa[0].question.startswith("Why does the boy bend down?\nOptions:\nA. to tie a shoe.")
    assert "<image>" not in boy.qa[0].question and boy.qa[1].answer == "A."
    # annotate --manifest takes the same file
    assert formats.read_manifest(path) == rows


def test_llava_multi_turn_item_gives_a_qa_pair_per_human_gpt_pair(tmp_path):
    rows = formats.import_llava_video(write_json(tmp_path / "s" / "s_oe_qa_processed.json", NEXTQA_OE))
    assert [(q.question, q.answer) for q in rows[0].qa] == [
        ("where is the boy\nAnswer the question using few words or phrase.", "park"),
        ("What colour is the ball?", "Red."), ("Who throws it?", "The girl.")]
    assert len({q.qa_id for q in rows[0].qa}) == 3


def test_llava_media_tokens_are_removed_wherever_they_stand(tmp_path):
    items = [{"id": "x", "video": "x.mp4", "conversations": [
        {"from": "human", "value": "What is shown?\n<image>"}, {"from": "gpt", "value": "a"},
        {"from": "human", "value": "<video>\nAnd then?"}, {"from": "gpt", "value": "b"}]}]
    rows = formats.import_llava_video(write_json(tmp_path / "x.json", items))
    assert [q.question for q in rows[0].qa] == ["What is shown?", "And then?"]


def test_llava_folder_imports_every_qa_file_with_its_subset_folder_as_video_root(llava_release):
    rows = formats.import_llava_video(llava_release)
    by_id = {r.video_id: r for r in rows}
    assert set(by_id) == {"0_30_s_nextqa_NextQA_NExTVideo_1006_8968804598", "0_30_s_nextqa_NextQA_NExTVideo_1007_4417581283",
                          "30_60_s_academic_v0_1_academic_source_Charades_2544C"}
    boy = by_id["0_30_s_nextqa_NextQA_NExTVideo_1006_8968804598"]
    assert len(boy.qa) == 2 + 3  # mc and oe files merged into one row; the caption file is not a QA file
    assert "Describe this video in detail." not in [q.question for q in boy.qa]
    charades = by_id["30_60_s_academic_v0_1_academic_source_Charades_2544C"]
    assert charades.video == str(llava_release / "30_60_s_academic_v0_1" / CHARADES_VIDEO)
    # the same question asked twice about one video: the second gets -1
    assert charades.qa[1].qa_id == charades.qa[0].qa_id + "-1" and charades.qa[1].answer == "Yes, twice."
    # --video-root mirrors the folder: each subset's videos under video_root/<subset>/
    moved = formats.import_llava_video(llava_release, video_root="/videos/llava")
    assert {r.video for r in moved} == {f"/videos/llava/0_30_s_nextqa/{NEXTQA_VIDEO}",
                                        "/videos/llava/0_30_s_nextqa/NextQA/NExTVideo/1007/4417581283.mp4",
                                        f"/videos/llava/30_60_s_academic_v0_1/{CHARADES_VIDEO}"}
    assert [r.qa for r in moved] == [r.qa for r in rows]
    # for one file, --video-root is the folder its paths are relative to
    one = formats.import_llava_video(llava_release / "30_60_s_academic_v0_1" / "30_60_s_academic_oe_v0_1_qa_processed.json",
                                     video_root="/videos/charades")
    assert one[0].video == f"/videos/charades/{CHARADES_VIDEO}"


def test_llava_qa_ids_are_stable_when_a_file_is_imported_again_reordered_or_grown(tmp_path):
    path = write_json(tmp_path / "s" / "s_mc_qa_processed.json", NEXTQA_MC + NEXTQA_OE)

    def ids(rows):
        return {(r.video_id, q.question, q.answer): q.qa_id for r in rows for q in r.qa}

    first = ids(formats.import_llava_video(path))
    assert ids(formats.import_llava_video(path)) == first
    extra = {"id": "1006-8968804598", "data_source": "0_30_s_nextqa", "video": NEXTQA_VIDEO, "conversations": [
        {"from": "human", "value": "<image>\nIs it sunny?"}, {"from": "gpt", "value": "Yes."}]}
    write_json(path, [extra] + list(reversed(NEXTQA_MC + NEXTQA_OE)))
    again = ids(formats.import_llava_video(path))
    assert {key: again[key] for key in first} == first
    assert len(set(again.values())) == len(again) == len(first) + 1


@pytest.mark.parametrize(
    "item, message",
    [
        ({"id": "x", "video": "x.mp4", "conversations": [{"from": "robot", "value": "hi"}]}, r"item 1 turn 0: unknown speaker 'robot'"),
        ({"id": "x", "video": "x.mp4", "conversations": [{"from": "gpt", "value": "A."}]}, r"item 1 turn 0: a gpt turn with no human question"),
        ({"id": "x", "video": "x.mp4", "conversations": [{"from": "human", "value": "Q?"}, {"from": "human", "value": "R?"}]},
         r"item 1 turn 1: a second human turn while turn 0 has no gpt answer"),
        ({"id": "x", "video": "x.mp4", "conversations": [{"from": "human", "value": "Q?"}]}, r"item 1 turn 0: the human turn has no gpt answer"),
        ({"id": "x", "video": "x.mp4", "conversations": [{"from": "human", "value": "<image>\n"}, {"from": "gpt", "value": "A"}]},
         r"item 1 turn 0: the question is empty"),
        ({"id": "x", "video": "x.mp4", "conversations": []}, r"item 1: no question/answer pair"),
        ({"id": "x", "conversations": []}, r"item 1: missing key\(s\) video"),
        ({"id": None, "video": "x.mp4", "conversations": []}, r"item 1: id must be"),
        ({"id": "x", "video": "", "conversations": []}, r"item 1: video must be a non-empty path"),
        ({"id": "x", "video": "x.mp4", "conversations": [["human", "Q?"]]}, r"item 1 turn 0: expected"),
    ],
)
def test_bad_llava_items_name_the_file_item_and_turn(tmp_path, item, message):
    path = write_json(tmp_path / "a_qa_processed.json", [NEXTQA_MC[0], item])
    with pytest.raises(SchemaError, match=re.escape(str(path)) + " " + message):
        formats.import_llava_video(path)


def test_llava_file_and_folder_errors(tmp_path):
    with pytest.raises(SchemaError, match="expected a JSON list of conversations"):
        formats.import_llava_video(write_json(tmp_path / "obj.json", {"id": "x"}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError, match=r"empty: no \*_qa_processed.json files"):
        formats.import_llava_video(tmp_path / "empty")
    with pytest.raises(SchemaError, match="no such file or folder"):
        formats.import_llava_video(tmp_path / "missing.json")


# --------------------------------------------------------------------------- VideoITG-40K, as released
#
# Rows of NVEagle/VideoITG-40K `video_itg_data.json`: exactly eight keys, an integer `id` per row,
# `video` relative to the data folder (LLaVA-Video-178K/<subset>/...), ascending frame/clip ids,
# motion/existence "Yes"/"No"; questions keep LLaVA-Video's prompt suffixes and trailing newlines.

RELEASE_ROWS = [
    {"id": 83996, "video": "LLaVA-Video-178K/1_2_m_academic_v0_1/academic_source/Charades/2544C.mp4",
     "question": "Does the person sweep the floor in the video?", "answer": "Yes.",
     "frame_num": [15, 16, 18, 50, 52, 54], "clip_num": [3, 10], "motion": "No", "existence": "No"},
    {"id": 281263, "video": "LLaVA-Video-178K/1_2_m_nextqa/NextQA/NExTVideo/0000/2950216986.mp4",
     "question": "Why is the man keeping a microphone near his mouth?\nOptions:\nA. to gesture.\nB. singing.\n",
     "answer": "B. singing.", "frame_num": [0, 1, 9], "clip_num": [0, 1], "motion": "Yes", "existence": "No"},
    {"id": 0, "video": "LLaVA-Video-178K/1_2_m_activitynetqa/ActivityNet-QA/activitynet/train/v1-3/train_val/v_-AaOr1DI2no.mkv",
     "question": "what is the person in red clothes doing\nAnswer the question using few words or phrase.",
     "answer": "tearing wallpaper", "frame_num": [80, 81, 84], "clip_num": [16], "motion": "Yes", "existence": "Yes"},
]


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

    from vidthinker.formats import _record_json
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
