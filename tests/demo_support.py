"""Realistic annotation runs for the quality, dashboard and publishing tests, made once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ARTIFACTS = Path(os.environ.get("VIDTHINKER_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


def demo_root(tmp_path_factory) -> Path:
    """`<tmp>/demo-runs` with synth/ (4 videos) and runs/ (3 runs, the last one drifted); built once."""
    from tests.demo_runs import make_demo_runs

    root = tmp_path_factory.getbasetemp() / "demo-runs"
    done = root / ".done"
    if not done.exists():
        if root.exists():
            shutil.rmtree(root)
        make_demo_runs(root, runs=3, videos=4, seed=7, min_seconds=20, max_seconds=40)
        done.write_text("ok")
    return root


def copy_run(run: Path, target: Path) -> Path:
    """A private copy of a run folder (tests that add shards or write files must not touch the shared one)."""
    shutil.copytree(run, target)
    return target
