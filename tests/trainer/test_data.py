"""Selector data: records → samples, grid sampling, labels, pos_weight and loss numbers, feature cache."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainer.config import tiny_config
from trainer.data import (
    FeatureCache,
    INDEX_DIR,
    LoadReport,
    MissingVideosError,
    VideoFeatures,
    build_examples,
    data_version,
    frame_plan,
    load_samples,
    make_labels,
    pos_weight,
    selector_loss,
)
from trainer.model import FrameSelector
from vidthinker.video import VideoInfo, grid_to_frame_index, uniform_indices


def test_pos_weight_hand_cases():
    assert pos_weight(np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])) == pytest.approx(2.0)  # sqrt(8/2)
    assert pos_weight(np.array([1] + [0] * 99)) == 5.0  # sqrt(99) = 9.95 capped at 5
    assert pos_weight(np.array([1] + [0] * 15)) == pytest.approx(math.sqrt(15))  # 3.87 < 5
    assert pos_weight(np.array([1, 1, 1, 0])) == pytest.approx(math.sqrt(1 / 3))  # < 1 is kept
    assert pos_weight(np.array([1, 0])) == 1.0
    assert pos_weight(np.array([0, 0, 0])) == 1.0  # no positives: weight unused
    assert pos_weight(np.array([1, 1])) == 1.0  # no negatives: sqrt(0) would zero the loss
    assert pos_weight(np.array([1] + [0] * 99), cap=20) == pytest.approx(math.sqrt(99))


def test_loss_matches_hand_computation():
    logits = torch.tensor([[0.0, 2.0, -1.0, 5.0], [1.0, -2.0, 0.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])  # sample 2 has 2 frames
    sp = lambda x: math.log1p(math.exp(x))
    pw1 = math.sqrt(3)  # 1 pos, 3 neg
    s1 = (pw1 * sp(-0.0) + sp(2.0) + sp(-1.0) + sp(5.0)) / 4
    pw2 = 1.0  # 1 pos, 1 neg
    s2 = (sp(1.0) + pw2 * sp(2.0)) / 2
    assert selector_loss(logits, labels, mask).item() == pytest.approx((s1 + s2) / 2, rel=1e-6)
    # the same through torch's own weighted BCE on sample 1
    ref = F.binary_cross_entropy_with_logits(logits[0], labels[0], pos_weight=torch.tensor(pw1))
    assert s1 == pytest.approx(ref.item(), rel=1e-6)


def test_labels_follow_grid_ids():
    assert make_labels([0, 2, 4, 6], [2, 3, 6]).tolist() == [0.0, 1.0, 0.0, 1.0]
    assert make_labels([0, 1], []).tolist() == [0.0, 0.0]


def test_grid_sampling_caps_with_uniform_indices(video30):
    full = frame_plan(video30, cap=512)
    assert full.n_grid == 8 and full.grid_ids == tuple(range(8))
    assert full.video_frame_ids == tuple(30 * k for k in range(8))
    capped = frame_plan(video30, cap=3)
    assert capped.grid_ids == tuple(uniform_indices(8, 3)) == (0, 3, 7)
    assert capped.video_frame_ids == (0, 90, 210)


def grid_to_video_frame(grid_ids: list[int], fps: float, num_frames: int) -> list[int]:
    """vidthinker.video's grid rule for a video long enough to hold every grid id given."""
    info = VideoInfo("/v.mp4", max(grid_ids) + 1.0, fps, num_frames, 64, 48, "h264", 0, "mp4", False)
    return grid_to_frame_index(info, grid_ids)


def test_grid_to_video_frame_rounds_half_up():
    assert grid_to_video_frame([0, 1, 2, 3], 29.97, 10_000) == [0, 30, 60, 90]
    assert grid_to_video_frame([1, 3], 2.5, 100) == [3, 8]  # 2.5 -> 3, 7.5 -> 8
    assert grid_to_video_frame([100], 30, 50) == [49]  # clamped to the last frame


def test_samples_from_shards_skip_errors(shards):
    report = LoadReport()
    samples = load_samples(shards, report=report)
    assert report.skipped_error == 1 and len(report.files) == 2
    assert len(samples) == report.records - 1 > 0
    assert all(not s.sample_id.endswith("/broken") for s in samples)
    assert len({s.sample_id for s in samples}) == len(samples)
    assert all(s.frame_num == tuple(sorted(s.frame_num)) for s in samples)


def test_samples_from_videoitg_json(tmp_path, video30):
    items = [
        {
            "id": "v1",
            "video": video30.name,
            "question": "q1",
            "answer": "a",
            "frame_num": [3, 1],
            "clip_num": [0],
            "motion": "no",
            "existence": "yes",
        },
        {
            "id": "v1",
            "video": video30.name,
            "question": "q2",
            "answer": "a",
            "frame_num": [],
            "clip_num": [],
            "motion": "yes",
            "existence": "no",
        },
    ]
    path = tmp_path / "videoitg.json"
    path.write_text(json.dumps(items))
    samples = load_samples(path, video_root=video30.parent)
    assert [s.sample_id for s in samples] == ["v1", "v1-1"]  # ids repeat across a video's questions
    assert samples[0].frame_num == (1, 3) and samples[0].video == str(video30)
    plan = frame_plan(samples[0].video)
    assert make_labels(plan.grid_ids, samples[0].frame_num).tolist() == [0, 1, 0, 1, 0, 0, 0, 0]


def test_data_version_tracks_shard_contents(tmp_path, shards):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    assert data_version(copy) == data_version(shards)
    (copy / "part-00001.parquet").write_bytes((copy / "part-00001.parquet").read_bytes() + b"\0")
    assert data_version(copy) != data_version(shards)


def _record(video: str, video_id: str, qa: str, frames=(1,), error=None):
    import datetime as dt

    from vidthinker.schema import Provenance, VideoITGRecord

    return VideoITGRecord(
        id=f"{video_id}/{qa}", video=video, question=f"where is {qa}?", answer="", frame_num=list(frames),
        video_id=video_id, qa_id=qa, error=error, error_stage="retrieve" if error else None,
        provenance=Provenance(pipeline_version="0", clip_seconds=5, grid_fps=1,
                              created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))


def test_shard_index_is_cached_on_the_manifest_hash(tmp_path, video30, monkeypatch):
    from trainer import data as D
    from vidthinker.shards import write_shard

    folder = tmp_path / "shards"
    write_shard([_record(str(video30), "a", "q0", (3, 1)), _record(str(video30), "a", "q1", error="Timeout: x")],
                folder / "s0.parquet")
    write_shard([_record(video30.name, "b", "q0", (2,))], folder / "s1.parquet")
    first = LoadReport()
    samples = load_samples(folder, video_root=video30.parent, report=first)
    assert [(s.sample_id, s.video, s.frame_num) for s in samples] == [
        ("a/q0", str(video30), (1, 3)), ("b/q0", str(video30), (2,))]
    assert (first.records, first.skipped_error, first.index_hits, first.videos) == (3, 1, 0, 1)
    assert len(list((folder / INDEX_DIR).glob("*.parquet"))) == 2
    version = data_version(folder)

    # a warm start reads the cached index only: no shard is opened, and the manifests give the version
    monkeypatch.setattr(D, "_build_index", lambda path: pytest.fail(f"{path} read again"))
    monkeypatch.setattr(D, "content_hash", lambda path: pytest.fail(f"{path} hashed again"))
    again = LoadReport()
    assert load_samples(folder, video_root=video30.parent, report=again) == samples
    assert (again.records, again.skipped_error, again.index_hits) == (3, 1, 2)
    assert data_version(folder) == version
    monkeypatch.undo()

    # a shard rewritten with other records: a new version, and its index is rebuilt (the other one is not)
    write_shard([_record(video30.name, "b", "q0", (4,))], folder / "s1.parquet")
    assert data_version(folder) != version
    third = LoadReport()
    assert [s.frame_num for s in load_samples(folder, video_root=video30.parent, report=third)] == [(1, 3), (4,)]
    assert third.index_hits == 1 and len(list((folder / INDEX_DIR).glob("*.parquet"))) == 2


def test_missing_videos_are_found_first_with_examples_and_the_hint(tmp_path, video30):
    from vidthinker.shards import write_shard

    folder = tmp_path / "shards"
    records = [_record(f"clips/v{i}.mp4", f"v{i}", "q0") for i in range(3)] + [_record(str(video30), "ok", "q0")]
    write_shard(records, folder / "s0.parquet")
    with pytest.raises(MissingVideosError) as caught:
        load_samples(folder, max_missing_share=0.5)
    message = str(caught.value)
    assert "3 of 4 videos of the records are missing" in message
    assert str(folder / "clips" / "v0.mp4") in message and "--video-root" in message
    # under the limit: the samples of missing videos are skipped and reported
    report = LoadReport()
    samples = load_samples(folder, report=report, max_missing_share=0.8)
    assert [s.sample_id for s in samples] == ["ok/q0"]
    assert report.skipped_missing_video == 3 and len(report.missing_videos) == 3


def test_feature_cache_reuses_features_and_measures_saving(tmp_path, shards, capsys):
    torch.manual_seed(0)
    model = FrameSelector(tiny_config()).eval()
    samples = load_samples(shards)
    videos = sorted({s.video for s in samples})
    videos = videos[:2]  # keeps the uncached baseline short
    examples = [ex for ex in build_examples(samples, model, cap=512) if ex.sample.video in videos]
    assert len(examples) > len(videos)  # several questions per video

    # without a cache: decode + encode for every question (what a naive per-sample loader does)
    start = time.perf_counter()
    naive = []
    for ex in examples:
        naive.append(VideoFeatures(model, FeatureCache(None, memory_bytes=0)).get(ex.sample.video))
    t_none = time.perf_counter() - start

    # with the cache: once per video (cold), then memory hits
    cache = FeatureCache(tmp_path / "cache")
    vf = VideoFeatures(model, cache)
    start = time.perf_counter()
    for i, ex in enumerate(examples):
        got = vf.get(ex.sample.video)
        assert torch.equal(got, naive[i])
    t_cold = time.perf_counter() - start
    assert cache.stats.misses == len(videos) and cache.stats.memory_hits == len(examples) - len(videos)

    # a new process (fresh memory) reads the disk cache
    disk = FeatureCache(tmp_path / "cache")
    vf2 = VideoFeatures(model, disk)
    start = time.perf_counter()
    for ex in examples:
        vf2.get(ex.sample.video)
    t_warm = time.perf_counter() - start
    assert disk.stats.misses == 0 and disk.stats.disk_hits == len(videos)

    # keys change with the encoder weights and with the frames
    other = FrameSelector(tiny_config()).eval()
    plan = frame_plan(videos[0])
    key = FeatureCache.key(videos[0], model.encoder_id(), plan.video_frame_ids, 32, 4)
    assert key != FeatureCache.key(videos[0], other.encoder_id(), plan.video_frame_ids, 32, 4)
    assert key != FeatureCache.key(videos[0], model.encoder_id(), plan.video_frame_ids[:-1], 32, 4)
    assert key != FeatureCache.key(videos[0], model.encoder_id(), plan.video_frame_ids, 64, 4)

    with capsys.disabled():
        print(
            f"\n[feature cache] {len(examples)} questions over {len(videos)} videos: "
            f"no cache {t_none:.2f} s, cold cache {t_cold:.2f} s ({t_none / t_cold:.1f}x faster), "
            f"warm disk cache {t_warm:.3f} s ({t_none / max(t_warm, 1e-9):.0f}x faster)"
        )
    assert t_cold < t_none
