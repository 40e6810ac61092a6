"""vidthinker.video.isolation and .worker: a crash or a hang in the decode worker process."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import video_test_media as fx
from video_test_media import ids_of

from vidthinker import video
from vidthinker.video import CorruptVideo, VideoDecodeTimeout, VideoError, decoding

try:  # nothing in here may hang; with pytest-timeout, a hang fails the test instead of the run
    import pytest_timeout  # noqa: F401

    pytestmark = pytest.mark.timeout(120)
except ImportError:
    pass


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_a_crash_in_the_worker_becomes_corrupt_video(media, worker, monkeypatch, backend):
    path = media["known.mp4"]
    assert ids_of(video.decode_frames(path, [1], worker=worker)) == [1]
    first_pid = worker.pid
    monkeypatch.setattr(decoding, "_decode_in_process", fx.abort_decode)
    with pytest.raises(CorruptVideo, match="crashed") as caught:
        video.decode_frames(path, [1], backend=backend, worker=worker)
    assert "SIGABRT" in caught.value.reason and caught.value.path == str(path)
    monkeypatch.undo()
    assert ids_of(video.decode_frames(path, [2, 3], worker=worker)) == [2, 3]
    assert worker.pid != first_pid


def test_a_hang_becomes_a_timeout_and_the_worker_recovers(media, worker, monkeypatch):
    path = media["known.mp4"]
    video.decode_frames(path, [0], worker=worker)  # started and warm: the limit measures the call only
    monkeypatch.setattr(decoding, "_decode_in_process", fx.sleepy_decode)
    started = time.monotonic()
    with pytest.raises(VideoDecodeTimeout) as caught:
        video.decode_frames(path, [0], timeout_s=1.0, worker=worker)
    assert time.monotonic() - started < 5
    assert caught.value.path == str(path) and "1 s" in caught.value.reason
    monkeypatch.undo()
    assert ids_of(video.decode_frames(path, [4], worker=worker)) == [4]


def test_errors_survive_pickling():
    err = pickle.loads(pickle.dumps(CorruptVideo("/a.mp4", "bad bytes")))
    assert type(err) is CorruptVideo and (err.path, err.reason) == ("/a.mp4", "bad bytes")
    assert str(err) == "/a.mp4: bad bytes" and isinstance(err, VideoError)


def test_module_imports_without_decord_loaded():
    # The library must not drag decord into every process that only probes or plans.
    code = "import sys, vidthinker.video; assert 'decord' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(video.__file__).parents[2])
