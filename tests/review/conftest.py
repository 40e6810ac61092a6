import pytest

from tests.demo_support import copy_run, demo_root
from vidthinker.quality.runs import find_runs


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_root(tmp_path_factory)


@pytest.fixture
def run(demo, tmp_path):
    return copy_run(find_runs(demo / "runs")[-1], tmp_path / "run")
