"""The publish gate on reviewed frame precision (vidthinker/review/publishing.py)."""

from __future__ import annotations

from vidthinker.review import (
    Review,
    append_review,
    draw_sample,
    fetch_records,
    record_hash,
    review_gate_failure,
    run_index,
    wilson,
)


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
