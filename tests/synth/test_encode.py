"""The system-ffmpeg encoder path (PyAV's in-process libx264 is covered by every written set)."""

from __future__ import annotations

import shutil

import pytest

from tests.extras import require

av = require("av")

from vidthinker import synth


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg on PATH")
def test_ffmpeg_pipe_encoder(tmp_path):
    scene = synth.plan_scene(
        0,
        3,
        min_seconds=12,
        max_seconds=12,
        width=160,
        height=120,
        fps=10,
        footage_ok={s: "off" for s in synth.FOOTAGE},
    )
    path = tmp_path / "x.mp4"
    assert (
        synth.encode_video(synth.render_frames(scene), path, 160, 120, 10, backend="ffmpeg-libx264")
        == "ffmpeg-libx264"
    )
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == 120

