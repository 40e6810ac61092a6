"""Run discovery: the runs under a folder, oldest first, and the runs before one (the drift baseline)."""

from __future__ import annotations

from vidthinker.quality.runs import find_runs, previous_runs


def test_runs_are_found_oldest_first(demo, runs):
    assert len(runs) == 3
    assert find_runs(runs[1]) == [runs[1]]
    assert previous_runs(runs[2]) == runs[:2]
    assert previous_runs(runs[0]) == []
