"""Reviewed figures (vidthinker/review/figures.py): Wilson intervals and Cohen's kappa against
hand-computed values, figures from several reviewers, outdated reviews."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from vidthinker.quality.runs import shard_paths
from vidthinker.review import (
    Review,
    append_review,
    cohen_kappa,
    current_hashes,
    draw_sample,
    fetch_records,
    record_hash,
    review_figures,
    run_index,
    wilson,
)
from vidthinker.schema import VideoITGRecord, validate_row
from vidthinker.shards import read_shard_manifest, write_shard


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # p = 0.8, z = 1.96: centre (0.8 + 0.19207) / 1.38415 = 0.71674, half 1.96 * sqrt(0.016 + 0.0096037) / 1.38415 = 0.22657
    (8, 10, 0.49016, 0.94332),
    # p = 0: centre = half = 0.19207 / 1.38415 = 0.13877
    (0, 10, 0.0, 0.27753),
    # p = 0.5, n = 100: centre 0.5, half 1.96 * sqrt(0.0025 + 0.00009604) / 1.038415 = 0.09617
    (50, 100, 0.40383, 0.59617),
])
def test_wilson_against_hand_computed_values(k, n, low, high):
    assert wilson(k, n) == pytest.approx((low, high), abs=2e-5)


def test_wilson_of_nothing_is_none():
    assert wilson(0, 0) is None


def test_cohen_kappa_against_hand_computed_values():
    # two raters, yes/no, 50 items: 20 yes-yes, 5 yes-no, 10 no-yes, 15 no-no
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    # three labels, 10 items: p_o = 0.7; marginals A = B = (5, 3, 2)/10; p_e = 0.25 + 0.09 + 0.04 = 0.38
    # kappa = 0.32 / 0.62 = 0.516129
    three = ([("r", "r")] * 4 + [("p", "p")] * 2 + [("w", "w")] + [("r", "p"), ("p", "w"), ("w", "r")])
    assert cohen_kappa(three) == pytest.approx(0.32 / 0.62)
    assert cohen_kappa([("r", "r")] * 5) is None  # chance agreement 1: undefined
    assert cohen_kappa([]) is None


def test_figures_from_two_reviewers_and_outdated_reviews(run):
    index = run_index(run)
    records = fetch_records(draw_sample(index, 6, seed=2))
    a = [("right", "right", True), ("partly", "right", True), ("wrong", "wrong", False),
         ("right", "right", True), ("partly", "wrong", True), ("right", "right", False)]
    b = [("right", "right", True), ("wrong", "right", True), ("wrong", "wrong", True), ("right", "wrong", True)]
    for record, (f, c, t) in zip(records, a):
        append_review(run, Review(reviewer="alice", record_id=record.id, record_hash=record_hash(record), frames=f, clips=c, type_ok=t))
    for record, (f, c, t) in zip(records, b):
        append_review(run, Review(reviewer="bob", record_id=record.id, record_hash=record_hash(record), frames=f, clips=c, type_ok=t))
    append_review(run, Review(reviewer="bob", record_id="no-such/q9", record_hash="x", frames="right"))
    figures = review_figures(run)
    g = figures.groups["all"]
    # per record: mean of the reviewers' scores; records 1-4 twice, 5-6 once
    frame_scores = [1.0, (0.5 + 0.0) / 2, 0.0, 1.0, 0.5, 1.0]
    assert (g.reviewed, g.records, g.frames.n) == (6, len(index), 6)
    assert g.frames.value == pytest.approx(sum(frame_scores) / 6)
    assert (g.frames.low, g.frames.high) == pytest.approx(wilson(sum(frame_scores), 6))
    assert g.clips.value == pytest.approx((1 + 1 + 0 + 0.5 + 0 + 1) / 6)
    assert g.type_accuracy.value == pytest.approx((1 + 1 + 0.5 + 1 + 1 + 0) / 6)
    assert g.share_reviewed == pytest.approx(6 / len(index))
    assert (figures.double_reviewed, figures.gone, figures.outdated) == (4, 1, 0)
    assert figures.kappa["frames"] == pytest.approx(cohen_kappa([(x[0], y[0]) for x, y in zip(a, b)]))
    assert figures.kappa["clips"] == pytest.approx(cohen_kappa([(x[1], y[1]) for x, y in zip(a, b)]))
    per_type = sum(figures.groups[t].reviewed for t in figures.groups if t != "all")
    assert per_type == 6

    # a rerun changes the first record's frames: both reviews of it become outdated and leave the figures
    changed = records[0]
    shard = next(p for p in shard_paths(run) if changed.id in {r["id"] for r in pq.read_table(p, columns=["id"]).to_pylist()})
    rows = [validate_row(VideoITGRecord, r, source=str(shard)) for r in pq.read_table(shard).to_pylist()]
    rows = [r.model_copy(update={"frame_num": r.frame_num[:-1]}) if r.id == changed.id else r for r in rows]
    manifest = read_shard_manifest(shard)
    write_shard(rows, shard, shard_id=manifest.shard_id, video_ids=manifest.video_ids)
    assert current_hashes(run, [changed.id])[changed.id] != record_hash(changed)
    after = review_figures(run)
    assert (after.outdated, after.groups["all"].reviewed, after.double_reviewed) == (2, 5, 3)
    assert after.groups["all"].frames.value == pytest.approx(sum(frame_scores[1:]) / 5)
