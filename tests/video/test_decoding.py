"""vidthinker.video.decoding: frame-accurate decoding with both backends, in-process and isolated."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
import video_test_media as fx
from video_test_media import ids_of

from vidthinker import video
from vidthinker.video import CorruptVideo, UnsupportedVideo

try:  # nothing in here may hang; with pytest-timeout, a hang fails the test instead of the run
    import pytest_timeout  # noqa: F401

    pytestmark = pytest.mark.timeout(120)
except ImportError:
    pass

BACKENDS = ["decord", "pyav"]

# ------------------------------------------------------------------------------------------- decoding

SCATTERED = [200, 0, 1, 24, 25, 26, 29, 30, 359, 5, 5, 100, 358, 0]  # unordered, repeats, GOP edges


@pytest.mark.parametrize("isolate", [False, True], ids=["in_process", "isolated"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_returns_the_requested_frames_in_order(media, backend, isolate):
    frames = video.decode_frames(media["known.mp4"], SCATTERED, backend=backend, isolate=isolate)
    assert frames.shape == (len(SCATTERED), fx.HEIGHT, fx.WIDTH, 3) and frames.dtype == np.uint8
    assert ids_of(frames) == SCATTERED
    # Stripe levels come back within a few gray levels of what was encoded.
    expected = np.stack([fx.make_frame(i) for i in SCATTERED]).astype(int)
    assert np.abs(frames.astype(int) - expected)[:, :, [10, 100, 220, 300]].max() <= 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_every_frame_backwards_is_frame_accurate(media, backend):
    everything = list(range(fx.NUM_FRAMES))[::-1]
    frames = video.decode_frames(media["known.mp4"], everything, backend=backend, isolate=False, max_side=96)
    assert ids_of(frames) == everything


def test_backends_agree(media):
    ids = list(range(0, fx.NUM_FRAMES, 7))
    for max_side in (None, 160):
        a = video.decode_frames(media["known.mp4"], ids, backend="decord", isolate=False, max_side=max_side)
        b = video.decode_frames(media["known.mp4"], ids, backend="pyav", isolate=False, max_side=max_side)
        assert a.shape == b.shape
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 16


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_decode_mkv_without_frame_count(media, backend):
    ids = [0, 31, 150, 359]
    assert ids_of(video.decode_frames(media["known.mkv"], ids, backend=backend, isolate=False)) == ids


def test_max_side_downscales_in_the_worker_and_never_upscales(media):
    small = video.decode_frames(media["known.mp4"], [3], max_side=160)
    assert small.shape == (1, 120, 160, 3) and ids_of(small) == [3]
    big = video.decode_frames(media["known.mp4"], [3], max_side=1000, isolate=False)
    assert big.shape == (1, fx.HEIGHT, fx.WIDTH, 3)


def test_decode_grid_frames(media):
    info = video.probe(media["known.mp4"])
    grid = list(range(video.grid_size(info)))
    assert grid == list(range(12))
    frames = video.decode_grid_frames(info, grid, max_side=128)
    assert ids_of(frames) == [30 * k for k in grid]
    half = video.decode_grid_frames(info, [0, 1, 23], grid_fps=2.0, isolate=False, max_side=128)
    assert ids_of(half) == [0, 15, 345]


def test_decode_edge_cases(media):
    info = video.probe(media["known.mp4"])
    empty = video.decode_frames(media["known.mp4"], [], info=info, max_side=100)
    assert empty.shape == (0, 75, 100, 3)
    with pytest.raises(ValueError):
        video.decode_frames(media["known.mp4"], [fx.NUM_FRAMES], info=info)
    with pytest.raises(ValueError):
        video.decode_frames(media["known.mp4"], [0], backend="opencv")  # type: ignore[arg-type]


def test_av1_falls_back_to_pyav(media):
    if "av1.mkv" not in media:
        pytest.skip("this ffmpeg has no AV1 encoder (libsvtav1 / libaom-av1)")
    info = video.probe(media["av1.mkv"])
    assert info.codec == "av1" and info.num_frames == 4 * fx.FPS
    ids = [0, 29, 30, 61, 119]
    assert ids_of(video.decode_frames(media["av1.mkv"], ids)) == ids  # auto -> PyAV
    with pytest.raises(UnsupportedVideo, match="decord"):
        video.decode_frames(media["av1.mkv"], ids, backend="decord")


@pytest.mark.parametrize("angle", [90, 270])
def test_rotation_is_applied_like_ffmpeg_does(media, angle):
    path = media[f"rot{angle}.mp4"]
    info = video.probe(path)
    assert info.rotation in (90, 270) and (info.width, info.height) == (fx.HEIGHT, fx.WIDTH)
    shown = subprocess.run(  # ffmpeg autorotates by default: our reference for "as displayed"
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    reference = np.frombuffer(shown, np.uint8).reshape(fx.WIDTH, fx.HEIGHT, 3).astype(int)
    for backend in BACKENDS:
        frames = video.decode_frames(path, [0, 77], backend=backend, isolate=False)
        assert frames.shape == (2, fx.WIDTH, fx.HEIGHT, 3)
        assert np.abs(frames[0].astype(int) - reference).mean() < 2.0, backend
        upright = np.rot90(frames, k=-info.rotation // 90, axes=(1, 2))
        assert ids_of(upright) == [0, 77], backend
        resized = video.decode_frames(path, [77], backend=backend, isolate=False, max_side=160)
        assert resized.shape == (1, 160, 120, 3), backend


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_truncated_mkv_fails_only_past_the_cut(media, backend):
    path = media["truncated.mkv"]
    info = video.probe(path)  # the header still announces 12 s
    assert ids_of(video.decode_frames(path, [0, 40], backend=backend, info=info)) == [0, 40]
    started = time.monotonic()
    with pytest.raises(CorruptVideo, match="truncated") as caught:
        video.decode_frames(path, [0, fx.NUM_FRAMES - 1], backend=backend, info=info)
    assert time.monotonic() - started < 10
    assert caught.value.path == str(path)


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_damaged_data_never_hangs_or_kills_the_caller(media, backend):
    # H.264 decoders conceal damage inside the stream, so frames (with artefacts) are a valid answer;
    # anything but frames or CorruptVideo, or a long wait, is not.
    info = video.probe(media["corrupt.mp4"])
    started = time.monotonic()
    try:
        frames = video.decode_grid_frames(info, range(video.grid_size(info)), backend=backend, timeout_s=20)
        assert frames.shape == (12, fx.HEIGHT, fx.WIDTH, 3)
    except CorruptVideo as err:
        assert err.path == info.path
    assert time.monotonic() - started < 25
    assert ids_of(video.decode_frames(media["known.mp4"], [7], backend=backend)) == [7]
