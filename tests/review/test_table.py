"""The reviews table (vidthinker/review/table.py): appended, never edited; bad reviews refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vidthinker.review import (
    Review,
    ReviewError,
    append_review,
    read_reviews,
    reviews_dir,
)


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
