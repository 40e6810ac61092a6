"""Fixtures of the evaluation tests: a shared frame store over the session's synthetic set, an oracle
selector (scores = ground truth) and a scripted multiple-choice "Video-LLM" for the stub server."""

from __future__ import annotations

import re

import numpy as np
import pytest

from eval.benchmarks import load_items
from tests.extras import require
from tests.tiny_models import tiny_tokenizer
from eval.frames import FrameStore
from eval.selectors import BaseSelector


@pytest.fixture(scope="session")
def items(synthetic_set):
    return load_items(synthetic_set)


@pytest.fixture(scope="session")
def store():
    return FrameStore(max_side=160, capacity=4)


class OracleSelector(BaseSelector):
    """Knows the truth: 1 for the question's ground-truth frames, 0 elsewhere (a test double)."""

    def __init__(self, items, name: str = "oracle"):
        self.name = name
        self.truth = {(i.video, i.question): set(i.gt_frames or ()) for i in items}

    def score_queries(self, video, queries, candidate_ids):
        path = video.path if hasattr(video, "path") else str(video)
        out = []
        for q in queries:
            truth = next(
                (t for (v, question), t in self.truth.items() if question == q.question and v == path), set()
            )
            out.append(np.array([1.0 if c in truth else 0.0 for c in candidate_ids]))
        return out


@pytest.fixture(scope="session")
def oracle(items):
    return OracleSelector(items)


def prompt_text(body) -> str:
    content = body["messages"][0]["content"]
    return "\n".join(p["text"] for p in content if p["type"] == "text")


def image_urls(body) -> list[str]:
    return [p["image_url"]["url"] for p in body["messages"][0]["content"] if p["type"] == "image_url"]


def parse_prompt(text: str) -> tuple[str, dict[str, str]]:
    lines = text.splitlines()
    options = {}
    for line in lines:
        m = re.match(r"^([A-J])\. (.*)$", line)
        if m:
            options[m.group(1)] = m.group(2)
    return lines[1], options


@pytest.fixture(scope="session")
def lite0():
    from vidthinker.models.embedders import make_embedder

    return make_embedder("efficientnet-lite0", num_threads=1)


@pytest.fixture(scope="session")
def tiny_selector_dir(tmp_path_factory):
    """A random-init tiny VideoITG selector (Variant C) saved as a checkpoint folder."""
    torch = require("torch", "train")
    require("transformers", "train")
    from trainer.config import tiny_config
    from trainer.model import build_selector

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-selector") / "videoitg-tiny"
    build_selector(tiny_config()).save_pretrained(out)
    return out


WORDS = ["a", "the", "what", "colour", "red", "blue", "green", "circle", "square", "moves", "word", "shown"]


def tiny_clip_dir(path):
    """A random-init tiny CLIP (image + text towers, word-level tokenizer) saved like a hub model."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok, vocab_size = tiny_tokenizer(WORDS)
    common = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = dict(
        common,
        vocab_size=vocab_size,
        max_position_embeddings=32,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    torch.manual_seed(0)
    model = CLIPModel(
        CLIPConfig(
            text_config=text, vision_config=dict(common, image_size=32, patch_size=8), projection_dim=24
        )
    )
    proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(path)
    proc.save_pretrained(path)
    tok.save_pretrained(path)
    return path
