"""Reviews as data (vidthinker/review.py): Wilson intervals and Cohen's kappa against hand-computed values,
the append-only table, the seeded stratified sample, figures from several reviewers, outdated reviews."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tests.demo_support import copy_run, demo_root
from vidthinker.quality.runs import find_runs, shard_paths
from vidthinker.review import (
    Review,
    ReviewError,
    append_review,
    cohen_kappa,
    current_hashes,
    draw_sample,
    fetch_records,
    read_reviews,
    record_hash,
    review_figures,
    review_gate_failure,
    reviewed_ids,
    reviews_dir,
    run_index,
    wilson,
)
from vidthinker.schema import VideoITGRecord, validate_row
from vidthinker.shards import read_shard_manifest, write_shard


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_root(tmp_path_factory)


@pytest.fixture
def run(demo, tmp_path):
    return copy_run(find_runs(demo / "runs")[-1], tmp_path / "run")


def _all_good(run) -> list[VideoITGRecord]:
    out = []
    for path in shard_paths(run):
        out += [validate_row(VideoITGRecord, row, source=str(path)) for row in pq.read_table(path).to_pylist()]
    return [r for r in out if r.ok]


# --------------------------------------------------------------------------- statistics


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


# --------------------------------------------------------------------------- the table


def test_reviews_are_appended_never_edited(run):
    one = append_review(run, Review(reviewer="alice", record_id="a/q1", record_hash="h1", frames="right"))
    before = (one.read_bytes(), one.stat().st_mtime_ns)
    two = append_review(run, Review(reviewer="alice", record_id="a/q1", record_hash="h1", frames="wrong"))
    assert one != two and (one.read_bytes(), one.stat().st_mtime_ns) == before
    assert [r.frames for r in read_reviews(run)] == ["right", "wrong"]
    assert sorted(p.name for p in reviews_dir(run).iterdir()) == sorted([one.name, two.name])


def test_bad_reviews_are_refused_with_the_reason(run):
    with pytest.raises(ReviewError, match="give at least one verdict"):
        append_review(run, Review(reviewer="alice", record_id="a/q1", record_hash="h"))
    with pytest.raises(ValidationError, match="reviewer"):
        Review(reviewer="a b/c", record_id="a/q1", record_hash="h", frames="right")
    with pytest.raises(ValidationError):
        Review(reviewer="alice", record_id="a/q1", record_hash="h", frames="mostly")
    reviews_dir(run).mkdir(exist_ok=True)
    (reviews_dir(run) / "broken.json").write_text("{}")
    with pytest.raises(ReviewError, match="broken.json: not a review"):
        read_reviews(run)


# --------------------------------------------------------------------------- sampling


def test_sample_is_seeded_stratified_and_skips_reviewed_records(run):
    index = run_index(run)
    good = _all_good(run)
    assert len(index) == len(good)
    types = index.type_counts()
    sample = draw_sample(index, 8, seed=5)
    assert draw_sample(index, 8, seed=5) == sample and draw_sample(index, 8, seed=6) != sample
    assert len({s.record_id for s in sample}) == 8
    assert {s.instruction_type for s in sample} == set(types)  # every type is drawn (8 ≥ 4 types)
    holding = {index.shards[int(n)] for n in set(index.shard_no.tolist())}  # shards with good records
    assert {s.shard for s in sample} == holding
    for kind in types:  # inside a type, shards get their proportional share (within one record)
        drawn = [s for s in sample if s.instruction_type == kind]
        rows = index.shard_no[index.types == kind]
        for n in set(rows.tolist()):
            share = len(drawn) * (rows == n).sum() / len(rows)
            assert abs(sum(1 for s in drawn if s.shard == index.shards[n]) - share) < 1
    records = fetch_records(sample)
    by_id = {r.id: r for r in good}
    assert [r.id for r in records] == [s.record_id for s in sample]
    assert all(r == by_id[r.id] for r in records)
    # a reviewer's reviewed records are not drawn again; another reviewer still gets them
    for record in records[:3]:
        append_review(run, Review(reviewer="alice", record_id=record.id, record_hash=record_hash(record), frames="right"))
    mine = reviewed_ids(run, "alice", index)
    assert mine == {r.id for r in records[:3]}
    again = draw_sample(index, len(index), seed=5, exclude=mine)
    assert len(again) == len(index) - 3 and not {s.record_id for s in again} & mine
    assert reviewed_ids(run, "bob", index) == set()
    with pytest.raises(ReviewError, match="sample size 0"):
        draw_sample(index, 0, seed=1)


# --------------------------------------------------------------------------- figures


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


def test_review_gate_names_the_figure(run):
    assert review_gate_failure(run, None) is None
    assert "no current review of the frames" in review_gate_failure(run, 0.5)
    records = fetch_records(draw_sample(run_index(run), 4, seed=1))
    for record in records:
        append_review(run, Review(reviewer="alice", record_id=record.id, record_hash=record_hash(record), frames="right"))
    low = wilson(4, 4)[0]  # 0.5101
    assert review_gate_failure(run, round(low - 0.01, 3)) is None
    message = review_gate_failure(run, 0.6)
    assert message.startswith("reviewed frame precision of run: Wilson 95% lower bound 0.510")
    assert "publish.min_reviewed_frame_precision = 0.6" in message and "\n" not in message
