"""vidthinker.video.probing: metadata of good files; damaged and invalid input named and classified."""

from __future__ import annotations

import time

import pytest
import video_test_media as fx

from vidthinker import video
from vidthinker.video import CorruptVideo, EmptyVideo, NotAVideo, UnsupportedVideo, VideoNotFound

try:  # nothing in here may hang; with pytest-timeout, a hang fails the test instead of the run
    import pytest_timeout  # noqa: F401

    pytestmark = pytest.mark.timeout(120)
except ImportError:
    pass


def test_probe_reads_mp4_metadata(media):
    info = video.probe(media["known.mp4"])
    assert info.path == str(media["known.mp4"].resolve())
    assert info.duration_s == pytest.approx(fx.SECONDS)
    assert info.fps == pytest.approx(fx.FPS)
    assert (info.num_frames, info.num_frames_estimated) == (fx.NUM_FRAMES, False)
    assert (info.width, info.height, info.rotation) == (fx.WIDTH, fx.HEIGHT, 0)
    assert info.codec == "h264" and "mp4" in info.container and not info.has_audio


def test_probe_estimates_frame_count_when_container_lacks_it(media):
    info = video.probe(media["known.mkv"])
    assert "matroska" in info.container
    assert info.num_frames_estimated and info.num_frames == fx.NUM_FRAMES


def test_probe_sees_audio_track(media):
    assert video.probe(media["with_audio.mp4"]).has_audio


def test_probe_accepts_file_uri(media):
    assert video.probe(media["known.mp4"].resolve().as_uri()).num_frames == fx.NUM_FRAMES


# -------------------------------------------------------------------------------- damaged and invalid

BAD_INPUTS = [
    ("missing.mp4", VideoNotFound, "not found"),
    ("empty.mp4", EmptyVideo, "0 bytes"),
    ("notes.mp4", NotAVideo, "not a media file"),
    ("audio.m4a", NotAVideo, "no video stream (audio-only?)"),
    ("audio.wav", NotAVideo, "no video stream (audio-only?)"),
    ("cover_art.m4a", NotAVideo, "no video stream (audio-only?)"),
    ("no_frames.mp4", EmptyVideo, "no audio or video streams"),
    ("truncated.mp4", CorruptVideo, "truncated"),
    ("truncated_faststart.mp4", CorruptVideo, "truncated"),
    ("corrupt_header.mp4", CorruptVideo, "damaged"),
    ("cover.png", NotAVideo, "still image"),
    (".", NotAVideo, "directory"),
]


@pytest.mark.parametrize(("name", "error", "reason"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_named_and_classified(media, name, error, reason):
    path = media["known.mp4"].parent / name
    for call in (lambda: video.probe(path), lambda: video.decode_frames(path, [0])):
        started = time.monotonic()
        with pytest.raises(error) as caught:
            call()
        assert time.monotonic() - started < 5
        assert type(caught.value) is error
        assert caught.value.path == str(path) and reason in caught.value.reason
        assert str(caught.value) == f"{path}: {caught.value.reason}"


def test_remote_uris_are_refused_with_a_reason():
    for uri in ("https://example.com/v.mp4", "s3://bucket/v.mp4"):
        with pytest.raises(UnsupportedVideo, match="out of scope") as caught:
            video.probe(uri)
        assert caught.value.path == uri
    with pytest.raises(UnsupportedVideo, match="remote host"):
        video.probe("file://otherhost/v.mp4")
