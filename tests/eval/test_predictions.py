"""eval.predictions: lmms-eval files (ours, the trainer's, hand-written) read back as a selector."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eval.frames import FrameStore
from eval.harness import run_selection, write_predictions
from eval.predictions import PredictionsSelector
from eval.selectors import Query, RandomSelector, UniformSelector, VideoITGSelector, select, top_k
from tests.extras import require


def test_trainer_results_jsonl_reads_back_as_the_same_selector(
    tmp_path, synthetic_set, items, tiny_selector_dir
):
    """lmms-eval files written by eval.lmms_select.select_manifest, read by PredictionsSelector, give the
    trained selector's own scores and Top-K (on the same grid frames, decoded at the trainer's size)."""
    require("torch", "train")
    from eval.lmms_select import select_manifest
    from trainer.inference import Selector

    trained = Selector.from_pretrained(tiny_selector_dir, device="cpu")
    report = select_manifest(trained, synthetic_set, tmp_path / "videoitg", k=8)
    assert report.queries == len(items) and not report.failed_videos
    store = FrameStore(max_side=2 * trained.model.vision.image_size)  # the trainer's decode size
    from_files = PredictionsSelector(tmp_path / "videoitg", store=store).bind(items)
    # the same lmms-eval doc ids: positions in manifest order
    assert from_files.doc_ids() == {i.lmms_doc_id for i in items} == set(range(len(items)))
    live = VideoITGSelector(trained, store=store)
    for item in items[:12]:
        ids = store.grid_ids(item.video)
        q = Query(item.doc_id, item.question)
        live_scores = live.score_queries(item.video, [q], ids)[0]
        file_scores = from_files.score_queries(item.video, [q], ids)[0]
        np.testing.assert_allclose(file_scores, live_scores, atol=0.0051)  # logits are written with 2 dp
        assert from_files.choose(item.video, q, ids, file_scores, 8) == top_k(ids, live_scores, 8)
        # without a doc_id, the bound (video, question) finds it
        assert select(from_files, item.video, item.question, ids, 8) == top_k(ids, live_scores, 8)


def test_harness_predictions_round_trip(tmp_path, items, store):
    run = run_selection(items, [RandomSelector(3), UniformSelector()], [4, 6], store=store)
    for name in ("random", "uniform"):
        write_predictions(tmp_path / name, run.scored[name], store, 6, items=items)
        rows = [json.loads(x) for x in (tmp_path / name / "results.jsonl").read_text().splitlines()]
        assert [r["doc_id"] for r in rows] == [i.lmms_doc_id for i in items] == list(range(len(items)))
        assert all(set(r) == {"doc_id", "video_path", "index", "logits"} for r in rows)
        assert all(r["logits"] == sorted(r["logits"], reverse=True) for r in rows)
        docs = [json.loads(x) for x in (tmp_path / name / "doc_ids.jsonl").read_text().splitlines()]
        assert [(d["doc_id"], d["qa_id"], d["video_id"]) for d in docs] == [
            (i.lmms_doc_id, i.doc_id, i.video_id) for i in items
        ]
        back = PredictionsSelector(tmp_path / name, store=store).bind(items)
        again = run_selection(items, [back], [4, 6], store=store)
        for doc, sc in run.scored[name].items():
            assert again.scored[name][doc].selections[6] == sc.selections[6]  # frame_indices.jsonl
            if name == "random":
                assert again.scored[name][doc].selections[4] == sc.selections[4]  # from the scores


def test_frame_indices_only_gives_its_own_k(tmp_path, items, store):
    item = items[0]
    ids = store.grid_ids(item.video)
    frames = store.frame_indices(item.video, [3, 9, 10])
    (tmp_path / "fi").mkdir()
    (tmp_path / "fi" / "frame_indices.jsonl").write_text(
        json.dumps({"doc_id": item.lmms_doc_id, "index": frames}) + "\n"
    )
    sel = PredictionsSelector(tmp_path / "fi", store=store).bind(items)
    q = Query(item.doc_id, item.question)
    scores = sel.score_queries(item.video, [q], ids)[0]
    assert scores.tolist() == [1.0 if g in (3, 9, 10) else 0.0 for g in ids]
    assert sel.choose(item.video, q, ids, scores, 3) == [3, 9, 10]
    assert sel.choose(item.video, q, ids, scores, 8) is None  # another K is not available
    assert sel.score_queries(item.video, [Query("missing", "?")], ids) == [None]


def test_grid_unit_and_nearest_fill(tmp_path, items, store):
    item = items[0]
    (tmp_path / "g").mkdir()
    row = {"doc_id": item.lmms_doc_id, "video_path": "elsewhere.mp4", "index": [6, 2], "logits": [0.9, 0.4]}
    (tmp_path / "g" / "results.jsonl").write_text(json.dumps(row) + "\n")
    sel = PredictionsSelector(tmp_path / "g", index_unit="grid", store=store).bind(items)
    scores = sel.score_queries(item.video, [Query(item.doc_id, item.question)], [0, 2, 3, 4, 5, 6, 9])[0]
    # 0, 2, 3 nearest 2 (0.4); 4 is equally near 2 and 6: the higher score; 5, 6, 9 nearest 6
    assert scores.tolist() == [0.4, 0.4, 0.4, 0.9, 0.9, 0.9, 0.9]
    with pytest.raises(FileNotFoundError):
        PredictionsSelector(tmp_path / "nothing-here")
