"""The seeded stratified sample (vidthinker/review/sample.py) and the reviewed records it skips."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from vidthinker.quality.runs import shard_paths
from vidthinker.review import (
    Review,
    ReviewError,
    append_review,
    draw_sample,
    fetch_records,
    record_hash,
    reviewed_ids,
    run_index,
)
from vidthinker.schema import VideoITGRecord, validate_row


def _all_good(run) -> list[VideoITGRecord]:
    out = []
    for path in shard_paths(run):
        out += [validate_row(VideoITGRecord, row, source=str(path)) for row in pq.read_table(path).to_pylist()]
    return [r for r in out if r.ok]


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
