"""What `vidthinker select` and `vidthinker eval` write, read the way VideoITG's lmms-eval wrappers read it
(``tests/eval/lmms_reader.py``): every doc of the split gets its own best-scored frames for any
``num_frame``, none falls back to uniform sampling, and our own predictions reader keeps the same lines."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from tests.extras import require

require("torch", "train")
require("transformers", "train")

from eval.benchmarks import load_items, read_records
from eval.evaluate import evaluate
from eval.frames import FrameStore
from eval.lmms_select import select_manifest
from eval.predictions import PredictionsSelector, read_prediction_lines
from eval.selectors import rank_ids
from tests.eval import benchmark_files
from tests.eval.lmms_reader import LmmsFrameReader
from tests.trainer.conftest import write_index_video
from trainer.inference import Selector
from vidthinker.video import probe

K = 4
NUM_FRAMES = (1, 2, K, K + 3)  # the Video-LLM's num_frame: below, at and above K


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory) -> list[Path]:
    """7.5 s at 30 fps (8 grid frames) and 6 s at 25 fps (6 grid frames)."""
    root = tmp_path_factory.mktemp("bench-videos")
    return [
        write_index_video(root / "a30.mp4", fps=30, num_frames=225),
        write_index_video(root / "b25.mp4", fps=25, num_frames=150),
    ]


@pytest.fixture(scope="module")
def tiny(tiny_selector_dir) -> Selector:
    return Selector.from_pretrained(tiny_selector_dir, device="cpu")


def best_frames(selector: Selector, video: str, question: str, n: int) -> list[int]:
    """The n best-scored frames of one question, scored directly (ties: earlier frame), in time order."""
    ids, scores = selector.score(video, question)
    return sorted(int(ids[i]) for i in np.lexsort((ids, -scores))[:n])


def total_frames(video: str) -> int:
    return probe(video).num_frames


@pytest.mark.parametrize("benchmark", sorted(benchmark_files.WRITERS))
def test_select_on_a_benchmark_gives_every_doc_its_best_frames(tmp_path, benchmark, two_videos, tiny):
    path = benchmark_files.WRITERS[benchmark](tmp_path, two_videos)
    videos = tmp_path / "videos"
    rows = read_records(path)
    items = load_items(path, benchmark, video_root=videos)  # what `vidthinker eval` reads, in row order
    out = tmp_path / "select"
    report = select_manifest(tiny, path, out, k=K, video_root=videos)  # the benchmark is detected
    assert report.queries == len(items) == len(rows) == 4 and not report.failed_videos

    # doc_ids.jsonl: lmms-eval's doc_id (the row) and the benchmark's own question id
    docs = [json.loads(x) for x in (out / "doc_ids.jsonl").read_text().splitlines()]
    assert sorted(d["doc_id"] for d in docs) == list(range(len(rows)))
    assert all(d["qa_id"] == items[d["doc_id"]].doc_id for d in docs)
    written = [json.loads(x)["doc_id"] for x in (out / "frame_indices.jsonl").read_text().splitlines()]
    assert written == [0, 2, 1, 3]  # video by video: row order is not file order, the ids still are rows

    for name, most in (("frame_indices.jsonl", K), ("results.jsonl", None)):
        reader = LmmsFrameReader(out / name)
        assert reader.skipped == 0 and set(reader.by_doc) == set(range(len(rows)))
        for row, item in enumerate(items):
            for n in NUM_FRAMES:
                got = reader.frames(row, n, total_frames(item.video))
                want = min(n, most) if most else n
                assert got == best_frames(tiny, item.video, item.question, want), (name, row, n)
        assert reader.fallbacks == []


def test_select_command_with_benchmark_and_video_root(tmp_path, two_videos, tiny_selector_dir, capsys):
    from eval.commands import select_command

    path = benchmark_files.cgbench(tmp_path, two_videos)
    select_command(
        tiny_selector_dir,
        path,
        out=tmp_path / "out",
        benchmark="cgbench",
        video_root=tmp_path / "videos",
        k=2,
        device="cpu",
        progress=False,
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["queries"] == 4 and summary["doc_ids"].endswith("doc_ids.jsonl")
    reader = LmmsFrameReader(tmp_path / "out" / "frame_indices.jsonl")
    # CG-Bench qids are numbers too (3, 2, 1, 0 here); the ids written are the rows
    docs = {
        json.loads(x)["doc_id"]: json.loads(x)["qa_id"] for x in (tmp_path / "out" / "doc_ids.jsonl").open()
    }
    assert docs == {0: "3", 1: "2", 2: "1", 3: "0"} and set(reader.by_doc) == {0, 1, 2, 3}


def test_select_on_a_manifest_numbers_questions_in_manifest_order(tmp_path, synthetic_set, tiny, items):
    out = tmp_path / "select"
    select_manifest(tiny, synthetic_set, out, k=K)
    docs = [json.loads(x) for x in (out / "doc_ids.jsonl").read_text().splitlines()]
    assert {d["doc_id"]: d["qa_id"] for d in docs} == {i.lmms_doc_id: i.doc_id.split("/")[-1] for i in items}
    assert {d["doc_id"]: d["video_id"] for d in docs} == {i.lmms_doc_id: i.video_id for i in items}
    reader = LmmsFrameReader(out / "frame_indices.jsonl")
    assert reader.skipped == 0
    for item in items[:: max(1, len(items) // 4)]:
        got = reader.frames(item.lmms_doc_id, 2, total_frames(item.video))
        assert got == best_frames(tiny, item.video, item.question, 2)
    assert reader.fallbacks == []


def test_eval_predictions_read_by_the_wrappers(tmp_path, two_videos, tiny_selector_dir):
    path = benchmark_files.videomme(tmp_path, two_videos)
    store = FrameStore(max_side=160)
    result = evaluate(
        path,
        tmp_path / "report",
        video_root=tmp_path / "videos",
        checkpoints=[tiny_selector_dir],
        baselines=["uniform"],
        ks=[2, K],
        write_k=K,
        n_boot=20,
        plots=False,
        store=store,
        device="cpu",
    )
    items = result.items
    assert [i.doc_id for i in items] == ["001-1", "002-1", "001-2", "002-2"]  # VideoMME's own ids
    written = result.report["predictions_written"]
    assert set(written) == {"videoitg-tiny", "uniform"}
    for name, folder in written.items():
        reader = LmmsFrameReader(Path(folder) / "frame_indices.jsonl")
        assert reader.skipped == 0 and set(reader.by_doc) == {0, 1, 2, 3}  # rows, not "001-1"
        for item in items:
            sc = result.run.scored[name][item.doc_id]
            total = store.info(item.video).num_frames
            for n in NUM_FRAMES:
                got = reader.frames(item.lmms_doc_id, n, total)
                if name == "uniform":  # coarse-to-fine order: a prefix of UNI-K is UNI-n
                    chosen = sc.selections.get(n, sc.selections[K] if n > K else None)
                    top = store.frame_indices(item.video, sc.selections[K])
                    if chosen is not None:
                        assert got == sorted(store.frame_indices(item.video, chosen)), (item.doc_id, n)
                    assert len(got) == min(n, K) and set(got) <= set(top)
                else:
                    best = rank_ids(sc.candidate_ids, sc.scores)[: min(n, K)]
                    assert got == sorted(store.frame_indices(item.video, best)), (name, item.doc_id, n)
        assert reader.fallbacks == []
    # our own reader takes the files back by the same integer ids
    back = PredictionsSelector(written["videoitg-tiny"], store=store).bind(items)
    assert back.doc_ids() == {0, 1, 2, 3} and back.describe()["skipped_lines"] == {
        "results.jsonl": {},
        "frame_indices.jsonl": {},
    }


def test_predictions_reader_follows_the_wrappers_rules(tmp_path, caplog):
    path = tmp_path / "frame_indices.jsonl"
    lines = [
        '{"doc_id": "001-1", "index": [1]}',  # a benchmark's own id: int() fails
        "not json",
        '{"doc_id": 0, "index": [30, 60]}',
        '{"doc_id": 0, "index": [90]}',  # repeated: the first line wins
        "",
        '{"doc_id": "1", "index": [5]}',  # int("1") passes, as in the wrappers
        '{"doc_id": 2, "index": "7"}',  # index not a list
        '{"doc_id": 3, "index": ["x"]}',
    ]
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        read = read_prediction_lines(path)
    assert {d: r["index"] for d, r in read.rows.items()} == {0: [30, 60], 1: [5]}
    assert read.lines == 7 and dict(read.skipped) == {
        "doc_id or an index entry not an integer": 2,
        "not JSON": 1,
        "repeated doc_id (the first line is kept)": 1,
        "no doc_id, or index not a list": 1,
    }
    assert "skipped 5 of 7 lines" in caplog.text and str(path) in caplog.text
    assert LmmsFrameReader(path).by_doc == {0: [30, 60], 1: [5]}  # the same lines as the wrappers keep

    stale = tmp_path / "stale" / "results.jsonl"
    stale.parent.mkdir()
    stale.write_text('{"doc_id": "001-1", "index": [1], "logits": [0.5]}\n' * 2)
    with pytest.raises(ValueError, match=r"none of its 2 lines is usable.*integer position"):
        PredictionsSelector(stale.parent)
