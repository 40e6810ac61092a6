"""Every selector through one interface: baselines and the trained VideoITG selector."""

from __future__ import annotations

import numpy as np
import pytest

from eval.frames import FrameStore
from eval.harness import run_selection
from eval.selectors import (
    AKSSelector,
    FrameSelector,
    Query,
    RandomSelector,
    SimilaritySelector,
    UniformSelector,
    VideoITGSelector,
    aks_select,
    coarse_to_fine_scores,
    rank_ids,
    select,
    top_k,
)
from tests.eval.conftest import tiny_clip_dir
from tests.extras import require
from vidthinker.video import uniform_indices


def test_ranking_ties_and_top_k_ascending():
    assert rank_ids([9, 3, 5, 7], [0.5, 0.9, 0.5, 0.1]) == [3, 5, 9, 7]
    assert top_k([9, 3, 5, 7], [0.5, 0.9, 0.5, 0.1], 2) == [3, 5]
    assert top_k([1, 2], [0.2, 0.1], 0) == [] and top_k([1, 2], [0.2, 0.1], 9) == [1, 2]
    with pytest.raises(ValueError):
        rank_ids([1, 2], [0.5])


def test_uniform_is_exact_uni_k_and_scores_coarse_to_fine(items):
    sel = UniformSelector()
    ids = list(range(10, 50))
    for k in (1, 4, 7, 40, 100):
        assert select(sel, items[0].video, "q", ids, k) == [ids[i] for i in uniform_indices(40, k)]
    s = coarse_to_fine_scores(40)
    assert s.shape == (40,) and s.max() == 1.0 and s[0] == 1.0 and s[39] > s[20] > s[1]
    assert coarse_to_fine_scores(1).tolist() == [1.0] and coarse_to_fine_scores(0).size == 0


def test_random_is_seeded_per_video_and_question(items):
    ids = list(range(30))
    a, b = RandomSelector(seed=1), RandomSelector(seed=1)
    first = select(a, items[0].video, "what colour?", ids, 5)
    assert (
        first == select(b, items[0].video, "what colour?", ids, 5) == sorted(set(first)) and len(first) == 5
    )
    assert select(a, items[0].video, "where is it?", ids, 5) != first
    assert select(RandomSelector(seed=2), items[0].video, "what colour?", ids, 5) != first
    # scoring several questions at once gives the same as one at a time (order independence)
    many = a.score_queries(items[0].video, [Query("x", "where is it?"), Query("y", "what colour?")], ids)
    np.testing.assert_array_equal(many[1], a.score(items[0].video, "what colour?", ids))


def test_aks_concentrated_relevance_takes_the_peak():
    scores = np.zeros(40)
    scores[10:14] = 1.0
    assert aks_select(range(40), scores, 4) == [10, 11, 12, 13]


def test_aks_spread_relevance_splits_for_coverage():
    # a ramp is never concentrated: split to quota 1 per segment, each segment's best (its right end)
    assert aks_select(range(32), np.linspace(0, 1, 32), 4) == [7, 15, 23, 31]
    # plain top-k would take the last four
    assert top_k(range(32), np.linspace(0, 1, 32), 4) == [28, 29, 30, 31]


def test_aks_always_returns_min_k_n_ascending():
    rng = np.random.default_rng(0)
    for n, k in [(5, 4), (5, 9), (33, 7), (100, 32), (3, 0), (17, 16)]:
        ids = list(range(100, 100 + n))
        out = aks_select(ids, rng.random(n), k)
        assert len(out) == min(k, n) and out == sorted(set(out)) and set(out) <= set(ids)
    assert aks_select(range(6), np.ones(6), 3) == [0, 2, 4] or len(aks_select(range(6), np.ones(6), 3)) == 3


def test_similarity_with_a_tiny_clip_by_name(tmp_path, items, store):
    require("transformers", "offline")
    from vidthinker.models.embedders import HFImageTextEmbedder, make_embedder

    emb = make_embedder(str(tiny_clip_dir(tmp_path / "tiny-clip")), local_files_only=True)
    assert isinstance(emb, HFImageTextEmbedder)
    sel = SimilaritySelector(emb, store=store, name="clip")
    assert isinstance(sel, FrameSelector) and sel.has_text
    video = items[0].video
    ids = store.grid_ids(video)
    scores = sel.score_queries(
        video, [Query("a", "what colour is the circle"), Query("b", "the red square")], ids
    )
    expected = (
        emb.embed(store.frames(video, ids))
        @ emb.embed_text(["what colour is the circle", "the red square"]).T
    )
    np.testing.assert_allclose(np.stack(scores, axis=1), expected, atol=1e-5)
    assert sel.mode_counts["text"] == 2
    chosen = select(sel, video, "the red square", ids, 3)
    assert chosen == top_k(ids, sel.score(video, "the red square", ids), 3)


def test_similarity_without_text_bridges_through_imagenet_labels(items, store, lite0):
    sel = SimilaritySelector(lite0, store=store)
    assert not sel.has_text and sel.has_labels
    assert sel.matched_classes("Is there a goldfish in the bowl?") == [1]
    assert 1 in sel.matched_classes("How many goldfishes?")
    assert sel.matched_classes("What colour is the circle?") == []  # no class name: query-blind saliency
    video = items[0].video
    ids = store.grid_ids(video)
    fish, shape = sel.score_queries(
        video, [Query("a", "is a goldfish shown"), Query("b", "what colour is the circle")], ids
    )
    emb, probs = lite0.analyse(store.frames(video, ids))
    np.testing.assert_allclose(fish, probs[:, 1], rtol=1e-5, atol=1e-7)
    mean = emb.mean(axis=0)
    np.testing.assert_allclose(shape, 1 - emb @ (mean / np.linalg.norm(mean)), atol=1e-5)
    assert sel.mode_counts == {"labels": 1, "distinct": 1}


def test_all_selectors_run_through_one_interface_and_decode_each_video_once(
    items, oracle, lite0, tiny_selector_dir
):
    store = FrameStore(max_side=160)
    similarity = SimilaritySelector(lite0, store=store)
    selectors = [
        UniformSelector(),
        RandomSelector(0),
        similarity,
        AKSSelector(similarity),
        VideoITGSelector(tiny_selector_dir, store=store, device="cpu"),
        oracle,
    ]
    assert all(isinstance(s, FrameSelector) for s in selectors)
    ks = [2, 8]
    run = run_selection(items, selectors, ks, store=store)
    videos = {i.video for i in items}
    assert not run.failed_videos
    # one decode call per video, shared by the similarity, AKS and VideoITG selectors
    assert sorted(store.decode_calls.values()) == [1] * len(videos)
    for name, by_doc in run.scored.items():
        assert set(by_doc) == {i.doc_id for i in items}, name
        for sc in by_doc.values():
            assert sc.error is None and sc.scores is not None and len(sc.scores) == len(sc.candidate_ids)
            for k in ks:
                chosen = sc.selections[k]
                assert chosen == sorted(set(chosen)) and len(chosen) == min(k, len(sc.candidate_ids)), name
    # the oracle's top-k lies inside the truth whenever the truth has k frames
    for item in items:
        sel = run.scored["oracle"][item.doc_id].selections[2]
        if len(item.gt_frames) >= 2:
            assert set(sel) <= set(item.gt_frames)
    assert run.selectors["videoitg"]["checkpoint"].endswith("videoitg-tiny")
