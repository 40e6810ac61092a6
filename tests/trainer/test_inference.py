"""Inference: grid → original frame mapping, Top-K, lmms-eval output files, one decode per video."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from eval.lmms_select import read_queries, select_manifest
from tests.trainer.conftest import read_index
from trainer.inference import Selector, top_k, videoitg_indices
from trainer.model import FrameSelector
from vidthinker.video import decode_frames, uniform_indices


@pytest.fixture(scope="module")
def selector(trained_checkpoint) -> Selector:
    return Selector.from_pretrained(trained_checkpoint, device="cpu")


def test_grid_ids_map_to_original_frames_of_a_30fps_video(selector, video30):
    frame_ids, scores, grid_ids = selector.score(video30, "when does the count change?", return_grid_ids=True)
    assert grid_ids.tolist() == list(range(8))  # 7.5 s -> ceil(7.5) = 8 grid ids
    assert frame_ids.tolist() == [round(30 * k) for k in range(8)]
    assert scores.shape == (8,) and scores.dtype == np.float32 and ((scores > 0) & (scores < 1)).all()
    # the decoded pixels really are those frames (each frame encodes its own index)
    frames = decode_frames(video30, frame_ids.tolist())
    assert [read_index(f) for f in frames] == frame_ids.tolist()
    # capped sampling: uniform over the grid, then mapped
    capped, _, capped_grid = selector.score(video30, "q", num_frames=3, return_grid_ids=True)
    assert capped_grid.tolist() == [0, 3, 7] and capped.tolist() == [0, 90, 210]


def test_uniform_sampling_over_video_frames(trained_checkpoint, video30):
    sel = Selector.from_pretrained(trained_checkpoint, device="cpu", sampling="uniform")
    frame_ids, scores = sel.score(video30, "q", num_frames=16)
    assert frame_ids.tolist() == uniform_indices(225, 16) and len(scores) == 16
    assert frame_ids[0] == 0 and frame_ids[-1] == 224


def test_videoitg_indices_follow_the_release_sampler():
    """lmms-eval's VideoITG sampler (NVlabs/VideoITG lmms_eval/models/videoitg.py): every round(fps)-th frame
    from 0, thinned to num_frames at positions int(i * count / num_frames)."""
    assert videoitg_indices(225, 30.0, 512) == list(range(0, 225, 30))  # fewer than num_frames: all
    assert videoitg_indices(225, 30.0, 8) == list(range(0, 225, 30))  # exactly num_frames: all
    assert videoitg_indices(225, 30.0, 3) == [0, 60, 150]  # 8 → 3: positions 0, 2, 5
    assert videoitg_indices(225, 29.97, 3) == [0, 60, 150]  # round(29.97) = 30
    assert videoitg_indices(100, 12.5, 512) == list(range(0, 100, 12))  # Python's round: 12.5 → 12
    assert videoitg_indices(100, 23.976, 512)[:3] == [0, 24, 48]
    long = videoitg_indices(100_000, 25.0, 512)  # 4000 candidates, scale 7.8125
    assert len(long) == 512 and long[:3] == [0, 175, 375] and long[-1] == 99_800
    with pytest.raises(ValueError, match="fps 0.4"):
        videoitg_indices(10, 0.4, 8)


def test_videoitg_sampling_scores_the_release_sampler_frames(trained_checkpoint, video30):
    sel = Selector.from_pretrained(trained_checkpoint, device="cpu", sampling="videoitg")
    frame_ids, scores, grid_ids = sel.score(video30, "q", num_frames=3, return_grid_ids=True)
    assert frame_ids.tolist() == [0, 60, 150] and grid_ids is None and len(scores) == 3
    assert [read_index(f) for f in decode_frames(video30, frame_ids.tolist())] == [0, 60, 150]
    assert sel.score(video30, "q")[0].tolist() == list(range(0, 225, 30))
    with pytest.raises(ValueError, match="sampling must be one of grid, uniform, videoitg"):
        Selector(sel.model, device="cpu", sampling="lmms-eval")


def test_select_is_top_k_ascending(selector, video30):
    frame_ids, scores = selector.score(video30, "which moment matters?")
    chosen = selector.select(video30, "which moment matters?", k=3)
    assert chosen == sorted(chosen) and len(chosen) == 3 and set(chosen) <= set(frame_ids.tolist())
    best = {int(frame_ids[i]) for i in np.argsort(-scores, kind="stable")[:3]}
    assert set(chosen) == best
    assert selector.select(video30, "which moment matters?", k=100) == frame_ids.tolist()  # k > T: all frames


def test_top_k_tie_break_and_order():
    assert top_k([30, 0, 60, 90], [0.5, 0.9, 0.5, 0.1], 2) == [0, 30]  # tie at 0.5: lower frame id first
    assert top_k([5, 1], [0.1, 0.2], 0) == []


def test_manifest_outputs_match_lmms_eval_formats(tmp_path, selector, synthetic_manifest, monkeypatch):
    decoded: list[str] = []
    original = Selector.decode

    def counting_decode(self, plan):
        decoded.append(plan.video)
        return original(self, plan)

    monkeypatch.setattr(Selector, "decode", counting_decode)
    jobs = read_queries(synthetic_manifest)
    report = select_manifest(selector, synthetic_manifest, tmp_path / "out", k=4, num_frames=512)
    n_queries = sum(len(j.queries) for j in jobs)
    assert report.videos == len(jobs) and report.queries == n_queries > len(jobs)
    assert sorted(decoded) == sorted(j.video for j in jobs)  # each video decoded exactly once

    results = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    indices = [
        json.loads(line) for line in (tmp_path / "out" / "frame_indices.jsonl").read_text().splitlines()
    ]
    assert len(results) == len(indices) == n_queries
    doc_ids = [r["doc_id"] for r in results]
    # lmms-eval doc ids: the questions' positions in manifest order
    assert doc_ids == [q.doc_id for j in jobs for q in j.queries] and doc_ids == [
        i["doc_id"] for i in indices
    ]
    assert sorted(doc_ids) == list(range(n_queries))
    docs = [json.loads(line) for line in (tmp_path / "out" / "doc_ids.jsonl").read_text().splitlines()]
    from vidthinker.formats import read_manifest

    in_order = [(row.video_id, pair.qa_id) for row in read_manifest(synthetic_manifest) for pair in row.qa]
    assert all((d["video_id"], d["qa_id"]) == in_order[d["doc_id"]] for d in docs) and len(docs) == n_queries
    raw = (tmp_path / "out" / "results.jsonl").read_text().splitlines()[0]
    for res, idx in zip(results, indices):
        assert list(res) == ["doc_id", "video_path", "index", "logits"] and list(idx) == ["doc_id", "index"]
        assert type(res["doc_id"]) is int and isinstance(res["video_path"], str)
        assert all(type(i) is int for i in res["index"]) and all(type(v) is float for v in res["logits"])
        assert len(res["index"]) == len(res["logits"]) == len(set(res["index"]))
        assert all(a >= b for a, b in zip(res["logits"], res["logits"][1:]))  # score descending
        assert all(v == round(v, 2) for v in res["logits"])
        plan = selector.plan(res["video_path"], 512)
        assert sorted(res["index"]) == list(plan.video_frame_ids)  # original video frame ids
        # Top-K best first: every prefix is the best frames of its size
        assert len(idx["index"]) == min(4, len(res["index"])) and idx["index"] == res["index"][:4]
    assert not re.search(r"\d\.\d{3,}", raw.split('"logits"')[1])  # at most 2 decimals in the file

    # the same numbers as scoring one question directly
    job = jobs[0]
    frame_ids, scores = selector.score(job.video, job.queries[0].question)
    first = results[0]
    assert first["doc_id"] == job.queries[0].doc_id and first["video_path"] == job.video
    ranked = [int(frame_ids[i]) for i in np.lexsort((frame_ids, -scores))]
    assert first["index"] == ranked
    assert first["logits"] == [round(float(s), 2) for s in np.sort(scores)[::-1]]


def test_generic_rows_keep_int_doc_ids(tmp_path, selector, video30):
    rows = [
        {"doc_id": 7, "video_path": str(video30), "question": "first?"},
        {"doc_id": 3, "video_path": video30.name, "question": "second?"},
    ]
    (tmp_path / "videos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / video30.name).symlink_to(video30)
    select_manifest(selector, tmp_path / "videos.jsonl", tmp_path / "out", k=2)
    results = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    indices = [json.loads(x) for x in (tmp_path / "out" / "frame_indices.jsonl").read_text().splitlines()]
    assert [r["doc_id"] for r in results] == [7, 3] and [i["doc_id"] for i in indices] == [7, 3]
    assert all(type(r["doc_id"]) is int for r in results + indices)
    assert results[0]["index"][0] % 30 == 0 and len(results[0]["index"]) == 8


def test_generic_rows_need_integer_unique_doc_ids(tmp_path, video30):
    def write(rows):
        path = tmp_path / "rows.jsonl"
        path.write_text(
            "".join(json.dumps({"video_path": str(video30), "question": "q", **r}) + "\n" for r in rows)
        )
        return path

    with pytest.raises(ValueError, match=r"rows.jsonl row 1: doc_id '001-1' is not an integer"):
        read_queries(write([{"doc_id": 0}, {"doc_id": "001-1"}]))
    with pytest.raises(ValueError, match=r"rows 0 and 1: both have doc_id 3"):
        read_queries(write([{"doc_id": 3}, {"doc_id": "3"}]))
    [job] = read_queries(write([{}, {}, {"doc_id": 9}]))  # absent: the row's position
    assert [q.doc_id for q in job.queries] == [0, 1, 9]


def test_a_bad_video_is_reported_not_fatal(tmp_path, selector, video30):
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    rows = [
        {"doc_id": 1, "video": "broken.mp4", "question": "q"},
        {"doc_id": 2, "video": str(video30), "question": "q"},
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = select_manifest(selector, tmp_path / "m.jsonl", tmp_path / "out")
    assert report.videos == 1 and len(report.failed_videos) == 1
    assert [
        json.loads(x)["doc_id"] for x in (tmp_path / "out" / "frame_indices.jsonl").read_text().splitlines()
    ] == [2]
    assert (tmp_path / "out" / "errors.jsonl").is_file()
    # doc_ids.jsonl names every question read, the failed video's too (its doc falls back to uniform)
    docs = [json.loads(x) for x in (tmp_path / "out" / "doc_ids.jsonl").read_text().splitlines()]
    assert [(d["doc_id"], Path(d["video"]).name) for d in docs] == [(1, "broken.mp4"), (2, video30.name)]


def test_trained_checkpoint_reloads_to_identical_scores(trained_checkpoint, video30):
    a = Selector.from_pretrained(trained_checkpoint, device="cpu")
    b = Selector(FrameSelector.from_pretrained(trained_checkpoint), device="cpu")
    sa = a.score(video30, "is the number even?")[1]
    sb = b.score(video30, "is the number even?")[1]
    assert np.array_equal(sa, sb)
    with torch.no_grad():
        feats = a.features(a.plan(video30))
        assert torch.equal(feats, b.features(b.plan(video30)))
