"""Rows shaped as the two releases ship them (LLaVA-Video-178K QA files, VideoITG-40K JSON), and writers for
the test files that hold them."""

import json
from pathlib import Path


def write_lines(path: Path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


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
