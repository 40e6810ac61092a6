"""vidthinker.video: probe, grid and clip arithmetic, decoding with both backends, isolation, errors."""

from __future__ import annotations

import base64
import io
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vidthinker import video
from vidthinker.video import (
    Clip,
    CorruptVideo,
    DecodeWorker,
    EmptyVideo,
    NotAVideo,
    UnsupportedVideo,
    VideoDecodeTimeout,
    VideoError,
    VideoInfo,
    VideoNotFound,
    VideoPathNotAllowed,
)

# The fixtures module must be importable by name in the decode worker too (see its docstring).
sys.path.append(str(Path(__file__).parent))  # appended: never shadow real packages
import conftest_video_fixtures as fx

try:  # nothing in here may hang; with pytest-timeout, a hang fails the test instead of the run
    import pytest_timeout  # noqa: F401

    pytestmark = pytest.mark.timeout(120)
except ImportError:
    pass

BACKENDS = ["decord", "pyav"]


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    try:
        return fx.make_media(tmp_path_factory.mktemp("video_media"))
    except (RuntimeError, FileNotFoundError, subprocess.CalledProcessError) as err:
        pytest.skip(f"cannot make test media with ffmpeg: {err}")


def ids_of(frames: np.ndarray) -> list[int]:
    return [fx.frame_id(f) for f in frames]


def fake_info(duration_s: float, fps: float = 30.0, num_frames: int | None = None) -> VideoInfo:
    n = num_frames if num_frames is not None else round(duration_s * fps)
    return VideoInfo("/v.mp4", duration_s, fps, n, 320, 240, "h264", 0, "mp4", False)


# ---------------------------------------------------------------------------------------------- probe


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


# ------------------------------------------------------------------------------------ grid and clips


def test_grid_and_clips_for_23_4_seconds():
    info = fake_info(23.4)
    assert video.grid_size(info) == 24  # t = 0..23 s, all < 23.4
    assert video.grid_timestamps(info)[-1] == 23.0
    clips = video.plan_clips(info)
    assert len(clips) == 5
    assert clips[0] == Clip(0, 0.0, 5.0, (0, 1, 2, 3, 4))
    assert clips[4] == Clip(4, 20.0, 23.4, (20, 21, 22, 23))
    assert [g for c in clips for g in c.grid_ids] == list(range(24))
    assert video.grid_to_frame_index(info, [0, 1, 23]) == [0, 30, 690]


def test_grid_excludes_a_timestamp_equal_to_the_duration():
    info = fake_info(10.0)
    assert video.grid_size(info) == 10
    assert video.grid_size(fake_info(10.0 + 1e-9)) == 10  # float noise in a duration adds no frame
    assert video.grid_size(fake_info(10.001)) == 11
    assert [len(c.grid_ids) for c in video.plan_clips(info)] == [5, 5]


def test_grid_frame_index_clamps_and_rounds_half_up():
    # 10.02 s at 30 fps holds 300 frames (0..299); grid id 10 is t = 10 s -> frame 300 -> clamped.
    info = fake_info(10.02, num_frames=300)
    assert video.grid_to_frame_index(info, [9, 10]) == [270, 299]
    assert video.grid_to_frame_index(fake_info(4.0, fps=2.5), [1, 3]) == [3, 8]  # 2.5 -> 3, 7.5 -> 8
    ntsc = fake_info(60.0, fps=30000 / 1001)
    assert video.grid_to_frame_index(ntsc, [7, 59]) == [210, 1768]  # 209.79 -> 210, 1768.23 -> 1768
    with pytest.raises(ValueError):
        video.grid_to_frame_index(info, [11])
    with pytest.raises(ValueError):
        video.grid_to_frame_index(info, [-1])


def test_clip_plan_is_configurable():
    info = fake_info(12.0)
    two_fps = video.plan_clips(info, clip_seconds=5.0, grid_fps=2.0)
    assert [c.grid_ids for c in two_fps] == [tuple(range(10)), tuple(range(10, 20)), tuple(range(20, 24))]
    assert video.grid_timestamps(info, grid_fps=2.0)[:3] == [0.0, 0.5, 1.0]
    assert [c.grid_ids for c in video.plan_clips(info, clip_seconds=4.0)] == [
        (0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)
    ]  # fmt: skip
    with pytest.raises(ValueError):
        video.plan_clips(info, clip_seconds=2.5, grid_fps=1.0)  # half a grid frame per clip
    with pytest.raises(ValueError):
        video.plan_clips(info, grid_fps=0)


def test_uniform_indices():
    assert video.uniform_indices(5, 512) == [0, 1, 2, 3, 4]
    assert video.uniform_indices(10, 3) == [0, 4, 9]
    assert video.uniform_indices(10, 1) == [0]
    assert video.uniform_indices(10, 0) == [] and video.uniform_indices(0, 5) == []
    for total, n in [(513, 512), (600, 512), (3600, 512), (10_000, 7), (100, 99)]:
        ids = video.uniform_indices(total, n)
        assert len(ids) == n and ids == sorted(set(ids)) and ids[0] == 0 and ids[-1] == total - 1
        assert ids == np.linspace(0, total - 1, n).astype(int).tolist()
    with pytest.raises(ValueError):
        video.uniform_indices(-1, 3)


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


# ----------------------------------------------------------------------------------------- isolation


@pytest.fixture
def worker():
    w = DecodeWorker()  # own worker, spawned after fx is importable, so it can load the stand-ins
    yield w
    w.close()


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_a_crash_in_the_worker_becomes_corrupt_video(media, worker, monkeypatch, backend):
    path = media["known.mp4"]
    assert ids_of(video.decode_frames(path, [1], worker=worker)) == [1]
    first_pid = worker.pid
    monkeypatch.setattr(video, "_decode_in_process", fx.abort_decode)
    with pytest.raises(CorruptVideo, match="crashed") as caught:
        video.decode_frames(path, [1], backend=backend, worker=worker)
    assert "SIGABRT" in caught.value.reason and caught.value.path == str(path)
    monkeypatch.undo()
    assert ids_of(video.decode_frames(path, [2, 3], worker=worker)) == [2, 3]
    assert worker.pid != first_pid


def test_a_hang_becomes_a_timeout_and_the_worker_recovers(media, worker, monkeypatch):
    path = media["known.mp4"]
    video.decode_frames(path, [0], worker=worker)  # started and warm: the limit measures the call only
    monkeypatch.setattr(video, "_decode_in_process", fx.sleepy_decode)
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


# --------------------------------------------------------------------------------------- path policy


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


# ------------------------------------------------------------------------------------ resize, encode


def test_resize_and_jpeg():
    from PIL import Image

    frame = fx.make_frame(123, width=640, height=360)
    small = video.resize_max_side(frame, 320)
    assert small.shape == (180, 320, 3) and fx.frame_id(small) == 123
    assert video.resize_max_side(frame, 1000) is frame
    assert video.resize_max_side(frame, None) is frame
    assert video.fit_max_side(1280, 720, 448) == (448, 252)
    assert video.fit_max_side(720, 1280, 448) == (252, 448)

    data = video.encode_jpeg(frame, quality=90)
    assert data[:2] == b"\xff\xd8"
    assert fx.frame_id(np.asarray(Image.open(io.BytesIO(data)))) == 123
    url = video.jpeg_data_url(frame, max_side=160, quality=80)
    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.size == (160, 90)
    with pytest.raises(ValueError):
        video.encode_jpeg(frame.astype(np.float32))


def test_module_imports_without_decord_loaded():
    # The library must not drag decord into every process that only probes or plans.
    code = "import sys, vidthinker.video; assert 'decord' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(video.__file__).parents[1])
