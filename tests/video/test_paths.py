"""vidthinker.video.paths: the allowed roots, after symlinks and ".."."""

from __future__ import annotations

import os

import pytest
import video_test_media as fx

from vidthinker import video
from vidthinker.video import VideoPathNotAllowed

try:  # nothing in here may hang; with pytest-timeout, a hang fails the test instead of the run
    import pytest_timeout  # noqa: F401

    pytestmark = pytest.mark.timeout(120)
except ImportError:
    pass


def test_allowed_roots(media, tmp_path):
    root = media["known.mp4"].parent
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(media["known.mp4"].read_bytes())
    assert video.check_allowed(media["known.mp4"], [root]) == media["known.mp4"].resolve()
    assert video.check_allowed(outside, None) == outside.resolve()
    assert video.probe(media["known.mp4"], allowed_roots=[root]).num_frames == fx.NUM_FRAMES

    escape_link = root / "escape.mp4"
    escape_link.symlink_to(outside)
    inside_link = root / "alias.mp4"
    inside_link.symlink_to(media["known.mp4"])
    dotdot = root / os.path.relpath(outside, root)  # root/../<tmp>/outside.mp4
    assert ".." in dotdot.parts
    for bad in [outside, escape_link, dotdot, root / ".." / "x.mp4"]:
        with pytest.raises(VideoPathNotAllowed) as caught:
            video.probe(bad, allowed_roots=[root])
        assert caught.value.path == str(bad) and "outside the allowed roots" in caught.value.reason
        with pytest.raises(VideoPathNotAllowed):
            video.decode_frames(bad, [0], allowed_roots=[root])
    with pytest.raises(VideoPathNotAllowed):
        video.check_allowed(media["known.mp4"], [])
    assert video.probe(inside_link, allowed_roots=str(root)).num_frames == fx.NUM_FRAMES
