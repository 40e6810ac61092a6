"""Fixtures of the quality tests: the demo runs (one synthetic set, three runs, the last one drifted), built once."""

from __future__ import annotations

import pytest

from tests.demo_support import demo_root
from vidthinker.quality.runs import find_runs


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_root(tmp_path_factory)


@pytest.fixture(scope="module")
def runs(demo):
    return find_runs(demo / "runs")
