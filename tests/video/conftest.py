"""Fixtures for the vidthinker.video tests: media made with ffmpeg, and a decode worker of a test's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vidthinker.video import DecodeWorker

# The media module must be importable by name in the decode worker too (see its docstring).
sys.path.append(str(Path(__file__).parent))  # appended: never shadow real packages
import video_test_media as fx


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    try:
        return fx.make_media(tmp_path_factory.mktemp("video_media"))
    except (RuntimeError, FileNotFoundError, subprocess.CalledProcessError) as err:
        pytest.skip(f"cannot make test media with ffmpeg: {err}")


@pytest.fixture
def worker():
    w = DecodeWorker()  # own worker, spawned after fx is importable, so it can load the stand-ins
    yield w
    w.close()
