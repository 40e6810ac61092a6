"""Benchmark adapters on small hand-written files in the shapes the releases ship."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eval.benchmarks import detect_benchmark, intervals_to_grid, load_items
from eval.evaluate import evaluate


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00")
    return path


def test_videomme_parquet(tmp_path):
    rows = [
        {
            "video_id": "001",
            "duration": "short",
            "domain": "Knowledge",
            "sub_category": "Humanity & History",
            "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
            "videoID": "fFjv93ACGo8",
            "question_id": "001-1",
            "task_type": "Counting Problem",
            "question": "When demonstrating the Germany modern Christmas tree is initially decorated with apples, "
            "candles and berries, which kind of the decoration has the largest number?",
            "options": [
                "A. Apples.",
                "B. Candles.",
                "C. Berries.",
                "D. The three kinds are of the same number.",
            ],
            "answer": "C",
        },
        {
            "video_id": "001",
            "duration": "short",
            "domain": "Knowledge",
            "sub_category": "Humanity & History",
            "url": "u",
            "videoID": "fFjv93ACGo8",
            "question_id": "001-2",
            "task_type": "Information Synopsis",
            "question": "What is the genre of this video?",
            "options": ["A. It is a news report.", "B. It is a documentary.", "C. A tutorial.", "D. A vlog."],
            "answer": "B",
        },
    ]
    path = tmp_path / "videomme" / "test-00000-of-00001.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), path)
    video = touch(tmp_path / "videos" / "data" / "fFjv93ACGo8.mp4")
    items = load_items(path, video_root=tmp_path / "videos")
    assert [i.doc_id for i in items] == ["001-1", "001-2"]
    a = items[0]
    assert a.options == ("Apples.", "Candles.", "Berries.", "The three kinds are of the same number.")
    assert a.answer == "C" and a.group == "Counting Problem" and a.gt_frames is None
    assert a.video == str(video.resolve()) and a.extra["duration"] == "short"


def test_mlvu_dev_and_original_shapes(tmp_path):
    dev = [
        {
            "video_name": "AWA-6.mp4",
            "duration": 403.0,
            "question": "What is the main background of the video?\n(A) grassland\n(B) forest\n(C) desert\n(D) ocean",
            "answer": "(B)",
            "task_type": "topic_reasoning",
        }
    ]
    (tmp_path / "dev.json").write_text(json.dumps(dev))
    touch(tmp_path / "AWA-6.mp4")
    [item] = load_items(tmp_path / "dev.json")
    assert item.question == "What is the main background of the video?"
    assert item.options == ("grassland", "forest", "desert", "ocean") and item.answer == "B"
    assert item.group == "topic_reasoning" and item.video.endswith("AWA-6.mp4")
    original = tmp_path / "MLVU" / "json"
    original.mkdir(parents=True)
    (original / "1_plotQA.json").write_text(
        json.dumps(
            [
                {
                    "video": "movie101_66.mp4",
                    "duration": 246,
                    "question": "What color is the main male character in the video?",
                    "candidates": ["Yellow", "Red", "Green", "Blue"],
                    "answer": "Yellow",
                    "question_type": "plotQA",
                }
            ]
        )
    )
    clip = touch(tmp_path / "MLVU" / "video" / "1_plotQA" / "movie101_66.mp4")
    [item] = load_items(original, benchmark="mlvu", video_root=tmp_path / "MLVU")
    assert item.answer == "A" and item.options[0] == "Yellow" and item.group == "plotQA"
    assert item.video == str(clip.resolve())


def test_longvideobench_both_option_layouts(tmp_path):
    rows = [
        {
            "video_id": "86CxyhFV9MI",
            "question": "In the video, which subtitles appear at the same time as the man with black hair?",
            "question_wo_referring_query": "Which subtitles appear at the same time?",
            "candidates": ["promisc has come to an end", "that's a good question", "run away", "okay"],
            "correct_choice": 1,
            "position": [10, 20],
            "topic_category": "NP-News-Programs",
            "question_category": "TOS",
            "level": "L2-Relation",
            "id": "86CxyhFV9MI_0",
            "video_path": "86CxyhFV9MI.mp4",
            "subtitle_path": "86CxyhFV9MI_en.json",
            "duration_group": 600,
            "starting_timestamp_for_subtitles": 0,
            "duration": 527.0,
            "view_count": 1,
        },
        {
            "id": "x_1",
            "video_path": "x.mp4",
            "question": "What happens first?",
            "option0": "a",
            "option1": "b",
            "option2": "c",
            "option3": "d",
            "option4": "N/A",
            "correct_choice": 3,
            "question_category": "E2O",
            "duration_group": 15,
        },
    ]
    (tmp_path / "lvb_val.json").write_text(json.dumps(rows))
    items = load_items(tmp_path / "lvb_val.json", video_root=tmp_path / "videos")
    assert items[0].answer == "B" and len(items[0].options) == 4 and items[0].group == "TOS"
    assert items[1].options == ("a", "b", "c", "d") and items[1].answer == "D"
    assert items[0].video == str((tmp_path / "videos" / "86CxyhFV9MI.mp4").resolve())


def test_cgbench_clue_intervals_become_grid_truth(tmp_path):
    rows = [
        {
            "qid": 1,
            "video_uid": "abc",
            "question": "What does the man hold?",
            "answer": "a cup",
            "choices": ["a pen", "a cup", "a phone", "nothing"],
            "right_answer": "B",
            "clue_intervals": [[3.2, 5.9], [10.0, 10.4], [20.0, 21.0]],
            "duration": 21.0,
            "domain": "Life Record",
            "sub_category": "Daily Life",
        }
    ]
    (tmp_path / "cgbench.json").write_text(json.dumps(rows))
    [item] = load_items(tmp_path / "cgbench.json")
    assert item.answer == "B" and item.doc_id == "1" and item.group == "Daily Life"
    # 4, 5 inside [3.2, 5.9]; 10 inside [10.0, 10.4]; 20 (21 is past the 21 s video)
    assert item.gt_frames == (4, 5, 10, 20)
    assert intervals_to_grid([[7.2, 7.6]]) == (7,)  # no whole second inside: the rounded middle
    assert intervals_to_grid([[9, 7]]) == (7, 8, 9)


def test_detection_and_errors(tmp_path):
    assert detect_benchmark({"videoID": "x", "options": []}) == "videomme"
    assert detect_benchmark({"video_uid": "x"}) == "cgbench"
    assert detect_benchmark({"correct_choice": 0}) == "longvideobench"
    assert detect_benchmark({"video_name": "x"}) == "mlvu"
    with pytest.raises(ValueError):
        detect_benchmark({"foo": 1})
    (tmp_path / "dup.json").write_text(
        json.dumps(
            [{"video_uid": "v", "qid": 1, "question": "q", "choices": ["a", "b"], "right_answer": "A"}] * 2
        )
    )
    with pytest.raises(ValueError, match="duplicate"):
        load_items(tmp_path / "dup.json")


def test_synthetic_manifest_items(items):
    assert items and all(i.gt_frames is not None and i.group for i in items)
    assert all(i.answer in "ABCD" and len(i.options) == 4 for i in items)
    assert len({i.doc_id for i in items}) == len(items) and "/" in items[0].doc_id  # qa ids repeat per video


def test_benchmark_file_runs_end_to_end(tmp_path, items):
    """A CG-Bench-shaped file over the synthetic videos: truth from clue intervals, through evaluate."""
    rows = []
    for n, item in enumerate(items[:8]):
        frames = item.gt_frames
        rows.append(
            {
                "qid": n,
                "video_uid": Path(item.video).stem,
                "question": item.question,
                "choices": list(item.options),
                "right_answer": item.answer,
                "clue_intervals": [[frames[0] - 0.1, frames[-1] + 0.1]],
            }
        )
    (tmp_path / "cg.json").write_text(json.dumps(rows))
    result = evaluate(
        tmp_path / "cg.json",
        tmp_path / "report",
        video_root=Path(items[0].video).parent,
        baselines=["uniform", "random"],
        ks=[4],
        n_boot=200,
        plots=False,
    )
    g = result.report["grounding"]
    assert result.report["questions"] == 8 and result.report["questions_with_truth"] == 8
    assert g["uniform"]["overall"]["recall@4"]["n"] == 8 and not result.report["failed_videos"]


def test_lmms_eval_row_doc_ids_match_benchmark_items(tmp_path, items, store):
    """lmms-eval numbers docs by their row in the split; its results.jsonl still lines up."""
    from eval.predictions import PredictionsSelector
    from eval.selectors import Query

    rows = [
        {
            "qid": f"q-{n}",
            "video_uid": Path(item.video).stem,
            "question": item.question,
            "choices": list(item.options),
            "right_answer": item.answer,
        }
        for n, item in enumerate(items[:4])
    ]
    (tmp_path / "cg.json").write_text(json.dumps(rows))
    bench = load_items(tmp_path / "cg.json", video_root=Path(items[0].video).parent)
    (tmp_path / "lmms").mkdir()
    lines = []
    for row, item in enumerate(bench):
        frames = store.frame_indices(item.video, [row, row + 1])
        lines.append(
            json.dumps({"doc_id": row, "video_path": item.video, "index": frames, "logits": [0.9, 0.8]})
        )
    (tmp_path / "lmms" / "results.jsonl").write_text("\n".join(lines) + "\n")
    sel = PredictionsSelector(tmp_path / "lmms", store=store).bind(bench)
    for row, item in enumerate(bench):
        ids = store.grid_ids(item.video)
        scores = sel.score_queries(item.video, [Query(item.doc_id, item.question)], ids)[0]
        assert scores is not None and (scores[row], scores[row + 1]) == (0.9, 0.8)  # grid ids = positions
