import re

import pytest

from tests.formats.release_samples import CHARADES_VIDEO, NEXTQA_MC, NEXTQA_OE, NEXTQA_VIDEO, write_json
from vidthinker import formats
from vidthinker.schema import SchemaError


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
