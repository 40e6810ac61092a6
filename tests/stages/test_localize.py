import numpy as np
import pytest

from vidthinker.schema import ClipPlan, ClipSpan
from vidthinker.stages.localize import LocalizeSettings, candidate_frames, greedy_dedup, localize_frames


def plan(num_frames=23):
    clips = []
    for c in range((num_frames + 4) // 5):
        ids = list(range(5 * c, min(5 * c + 5, num_frames)))
        clips.append(ClipSpan(clip_id=c, start_s=5 * c, end_s=min(5 * c + 5, num_frames), frame_ids=ids))
    return ClipPlan(video_id="v", video="v.mp4", duration_s=num_frames, fps=10, num_frames=num_frames * 10,
                    clip_seconds=5, grid_fps=1, num_grid_frames=num_frames, clips=clips)


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_greedy_dedup_drops_frames_close_to_any_kept_frame():
    a, b = unit([1, 0, 0]), unit([0, 1, 0])
    near_a = unit([1, 0.2, 0])  # cos ≈ 0.98 to a
    emb = {0: a, 1: near_a, 2: b, 3: near_a, 4: unit([0.7, 0.7, 0.1])}
    kept, dropped = greedy_dedup([0, 1, 2, 3, 4], emb, threshold=0.90)
    assert kept == [0, 2, 4] and dropped == [1, 3]
    kept, dropped = greedy_dedup([0, 1, 2, 3, 4], emb, threshold=0.99)
    assert kept == [0, 1, 2, 4] and dropped == [3]  # 3 is identical to the kept 1


def test_semantic_only_takes_frames_of_retrieved_clips_then_dedups():
    emb = {f: unit([1, 0.01 * f, 0]) for f in range(23)}  # all near-identical
    emb[12] = unit([0, 1, 0])
    result = localize_frames("v", "q", "semantic_only", [1, 2], plan(), emb, LocalizeSettings())
    assert result.candidate_frame_ids == list(range(5, 15))
    assert result.frame_ids == [5, 12]
    assert result.duplicate_frame_ids == [6, 7, 8, 9, 10, 11, 13, 14]
    assert result.policy == "semantic_only:dedup@0.90"


def test_semantic_motion_keeps_every_frame_of_the_clips_without_embeddings():
    result = localize_frames("v", "q", "semantic_motion", [4, 0], plan(), {}, LocalizeSettings())
    assert result.frame_ids == [0, 1, 2, 3, 4, 20, 21, 22]
    assert result.duplicate_frame_ids == []


@pytest.mark.parametrize("kind", ["motion_only", "no_clues"])
def test_motion_only_and_no_clues_sample_uniformly_across_the_video(kind):
    ids, policy, threshold = candidate_frames(kind, [], plan(), LocalizeSettings(uniform_frames=5))
    assert ids == [0, 5, 11, 16, 22] and policy == f"{kind}:uniform" and threshold == 0.97
    emb = {f: unit([f + 1, 1, 0]) for f in range(23)}
    emb[5] = emb[0]  # a static stretch: identical frames
    result = localize_frames("v", "q", kind, [], plan(), emb, LocalizeSettings(uniform_frames=5))
    assert 5 in result.duplicate_frame_ids and 0 in result.frame_ids


def test_semantic_question_with_no_clips_gets_no_frames():
    result = localize_frames("v", "q", "semantic_only", [], plan(), {}, LocalizeSettings())
    assert result.frame_ids == [] and result.candidate_frame_ids == []


def test_unknown_clip_ids_are_ignored_and_missing_type_means_semantic():
    ids, policy, _ = candidate_frames(None, [99, 0], plan(), LocalizeSettings())
    assert ids == [0, 1, 2, 3, 4] and policy.startswith("semantic_only")
