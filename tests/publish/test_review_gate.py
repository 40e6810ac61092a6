"""The review gate and the card's reviewed figures: `vidthinker publish` refuses a run whose reviewed frame
precision (Wilson 95% lower bound) is under publish.min_reviewed_frame_precision, in one line naming the
figure, and sends nothing; at or over it the release goes through and its card reports the figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.demo_support import copy_run
from tests.publish.conftest import USER
from vidthinker.quality.runs import find_runs
from vidthinker.review import Review, append_review, draw_sample, fetch_records, record_hash, run_index

# 10 reviewed records, all frames right: p = 1, Wilson 95% = [0.7225, 1] (hand: z²/n = 0.38415,
# centre = 1.19207 / 1.38415 = 0.86122, half = 1.96 · sqrt(0.0096037) / 1.38415 = 0.13877).
LOW_10_OF_10 = 0.7225


@pytest.fixture
def reviewed_run(demo, tmp_path) -> Path:
    run = copy_run(find_runs(demo / "runs")[-1], tmp_path / "run")
    sample = draw_sample(run_index(run), 10, seed=3)
    for record in fetch_records(sample):
        append_review(run, Review(reviewer="alice", record_id=record.id, record_hash=record_hash(record),
                                  frames="right", clips="right", type_ok=True))
    return run


def _publish(out: Path, repo: str, *extra: str):
    from vidthinker.cli import app

    return CliRunner().invoke(app, [*extra, "publish", "--out", str(out), "--repo-id", f"{USER}/{repo}", "--public"])


def test_publish_refuses_below_the_gate_and_sends_nothing(hub, reviewed_run, monkeypatch):
    monkeypatch.setenv("VIDTHINKER_PUBLISH__MIN_REVIEWED_FRAME_PRECISION", "0.8")
    refused = _publish(reviewed_run, "gated")
    assert refused.exit_code == 2, refused.output
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert len(lines) == 1, refused.output
    assert "reviewed frame precision" in lines[0] and "Wilson 95% lower bound 0.722" in lines[0]
    assert "publish.min_reviewed_frame_precision = 0.8" in lines[0] and "10 reviewed records" in lines[0]
    assert ("dataset", f"{USER}/gated") not in hub.state.repos


def test_publish_passes_at_or_over_the_gate_and_the_card_reports_the_figures(hub, reviewed_run, monkeypatch):
    monkeypatch.delenv("VIDTHINKER_PUBLISH__MIN_REVIEWED_FRAME_PRECISION", raising=False)
    done = _publish(reviewed_run, "gated-ok", "--set", "publish.min_reviewed_frame_precision=0.72")
    assert done.exit_code == 0, done.output
    assert ("dataset", f"{USER}/gated-ok") in hub.state.repos
    card = (reviewed_run / "_hf" / f"{USER}__gated-ok" / "README.md").read_text()
    assert "### Reviewed quality" in card
    assert "| all | 10 of " in card and "1.000 [0.722, 1.000] (n=10)" in card


def test_the_gate_is_off_by_default_and_refuses_an_unreviewed_run(hub, demo, tmp_path, monkeypatch):
    monkeypatch.delenv("VIDTHINKER_PUBLISH__MIN_REVIEWED_FRAME_PRECISION", raising=False)
    run = copy_run(find_runs(demo / "runs")[0], tmp_path / "plain")
    done = _publish(run, "ungated")
    assert done.exit_code == 0, done.output
    assert "Reviewed quality" not in (run / "_hf" / f"{USER}__ungated" / "README.md").read_text()
    refused = _publish(run, "ungated-2", "--set", "publish.min_reviewed_frame_precision=0.5")
    assert refused.exit_code == 2 and "no current review of the frames" in refused.output
