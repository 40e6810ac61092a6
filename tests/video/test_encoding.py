"""vidthinker.video.encoding: resizing and JPEG data URLs."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import video_test_media as fx

from vidthinker import video


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
