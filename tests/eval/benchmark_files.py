"""Tiny benchmark annotation files in the shapes the releases ship (fields as lmms-eval's tasks read them:
NVlabs/VideoITG ``lmms_eval/tasks/{videomme,mlvu,longvideobench,cgbench}/utils.py``), over two local videos.

Rows alternate between the videos (A, B, A, B, ...) so that lmms-eval's doc_id (the row) differs from the
order in which a selector visits questions (video by video). Each writer returns the annotation file; the
videos go under ``root / "videos"`` with the names the benchmark expects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

QUESTIONS = ["What is shown first?", "How many times does the count change?", "What happens at the end?"]


def _link(video: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.symlink(video, target)


def _pairs(videos: list[Path], n: int) -> list[tuple[int, Path]]:
    return [(row, videos[row % len(videos)]) for row in range(n)]


def videomme(root: Path, videos: list[Path], n: int = 4) -> Path:
    """``videomme/test-00000-of-00001.parquet`` of ``lmms-lab/Video-MME``: question_id "001-1" style."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for row, video in _pairs(videos, n):
        number = videos.index(video) + 1
        vid = f"vid{number:02d}Xy_Ab"
        _link(video, root / "videos" / "data" / f"{vid}.mp4")
        rows.append(
            {
                "video_id": f"{number:03d}",
                "duration": "short",
                "domain": "Knowledge",
                "sub_category": "Humanity & History",
                "url": f"https://www.youtube.com/watch?v={vid}",
                "videoID": vid,
                "question_id": f"{number:03d}-{row // len(videos) + 1}",
                "task_type": "Counting Problem",
                "question": QUESTIONS[row % len(QUESTIONS)],
                "options": ["A. one.", "B. two.", "C. three.", "D. four."],
                "answer": "ABCD"[row % 4],
            }
        )
    path = root / "videomme" / "test-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def mlvu_dev(root: Path, videos: list[Path], n: int = 4) -> Path:
    """``sy1998/MLVU_dev`` (``mlvu_dev.yaml``, test split): options inside the question as "(A) ..." lines,
    answer a letter, ``video_name`` relative to the videos folder."""
    rows = []
    for row, video in _pairs(videos, n):
        name = f"clip_{videos.index(video)}.mp4"
        _link(video, root / "videos" / name)
        rows.append(
            {
                "video_name": name,
                "duration": 7.5,
                "question": QUESTIONS[row % len(QUESTIONS)] + "\n(A) red\n(B) blue\n(C) green\n(D) none",
                "answer": "ABCD"[row % 4],  # compared with the letter parsed from the reply
                "task_type": "count",
            }
        )
    path = root / "mlvu_dev.json"
    path.write_text(json.dumps(rows))
    return path


def longvideobench(root: Path, videos: list[Path], n: int = 4) -> Path:
    """``lvb_val.json`` (validation split of ``longvideobench/LongVideoBench``)."""
    rows = []
    for row, video in _pairs(videos, n):
        vid = f"lvb{videos.index(video)}"
        _link(video, root / "videos" / f"{vid}.mp4")
        rows.append(
            {
                "video_id": vid,
                "question": QUESTIONS[row % len(QUESTIONS)],
                "candidates": ["one", "two", "three", "four"],
                "correct_choice": row % 4,
                "position": [0, 5],
                "topic_category": "NP-News-Programs",
                "question_category": "TOS",
                "level": "L2-Relation",
                "id": f"{vid}_{row}",
                "video_path": f"{vid}.mp4",
                "subtitle_path": f"{vid}_en.json",
                "duration_group": 15,
                "starting_timestamp_for_subtitles": 0,
                "duration": 7.5,
            }
        )
    path = root / "lvb_val.json"
    path.write_text(json.dumps(rows))
    return path


def cgbench(root: Path, videos: list[Path], n: int = 4) -> Path:
    """``cgbench_mini.json``: numeric qids that are row numbers, but of another row (lmms-eval's doc_id is
    the row: a file keyed by qid would give each question another question's frames)."""
    rows = []
    for row, video in _pairs(videos, n):
        uid = f"cg{videos.index(video)}"
        _link(video, root / "videos" / f"{uid}.mp4")
        rows.append(
            {
                "qid": n - 1 - row,  # 3, 2, 1, 0 for n = 4
                "video_uid": uid,
                "question": QUESTIONS[row % len(QUESTIONS)],
                "choices": ["one", "two", "three", "four"],
                "right_answer": "ABCD"[row % 4],
                "answer": ["one", "two", "three", "four"][row % 4],
                "clue_intervals": [[1.0, 3.0]],
                "duration": 7.5,
                "domain": "Life Record",
                "sub_category": "Daily Life",
            }
        )
    path = root / "cgbench_mini.json"
    path.write_text(json.dumps(rows))
    return path


WRITERS = {"videomme": videomme, "mlvu": mlvu_dev, "longvideobench": longvideobench, "cgbench": cgbench}
