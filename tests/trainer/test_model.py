"""The selector model: shapes, token budget, full vs causal attention, per-frame pooling, save/load."""

from __future__ import annotations

import pytest
import torch

from trainer.config import SelectorConfig, TrainConfig, tiny_config, tokens_per_side
from trainer.model import FrameSelector, pool_grid


def make(variant: str = "C", seed: int = 0, **overrides) -> FrameSelector:
    torch.manual_seed(seed)
    return FrameSelector(tiny_config(variant, **overrides)).eval()


def feats(t: int, seed: int = 1, grid: int = 4, dim: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, grid, grid, dim, generator=g)


def test_tokens_per_side_matches_paper_formula():
    assert tokens_per_side(512, 16384, 27) == 5  # floor(sqrt(32)) = 5 -> 25 tokens/frame
    assert tokens_per_side(256, 16384, 27) == 8  # sqrt(64)
    assert tokens_per_side(100, 16384, 27) == 12  # floor(sqrt(163.84))
    assert tokens_per_side(16, 16384, 27) == 27  # 32 clamped to the patch grid
    assert tokens_per_side(20000, 16384, 27) == 1  # more frames than budget: one token each
    with pytest.raises(ValueError):
        tokens_per_side(0, 16384, 27)


@pytest.mark.parametrize("variant", ["C", "B"])
def test_shapes_and_budget(variant):
    model = make(variant)
    ids = model.encode_instruction("what colour is the square?")
    out = model([feats(7), feats(3, seed=2)], [ids, ids[:5]], budget=64, return_hidden=True)
    assert out.logits.shape == (2, 7) and out.logits.dtype == torch.float32
    assert out.frame_mask.tolist() == [[True] * 7, [True] * 3 + [False] * 4]
    assert out.logits[1, 3:].abs().sum() == 0
    # budget 64: 7 frames -> floor(sqrt(9.14)) = 3 -> 9 tokens; 3 frames -> floor(sqrt(21.3)) = 4 (grid 4)
    assert [(lay.side, lay.tokens_per_frame) for lay in out.layouts] == [(3, 9), (4, 16)]
    extra = 7 if variant == "B" else 0  # B appends one anchor per frame
    assert out.layouts[0].seq_len == 7 * 9 + ids.shape[0] + extra
    assert out.hidden.shape[1] == max(lay.seq_len for lay in out.layouts)


def test_pool_grid_is_adaptive_average():
    x = torch.arange(2 * 4 * 4 * 1, dtype=torch.float32).reshape(2, 4, 4, 1)
    pooled = pool_grid(x, 2)
    assert pooled.shape == (2, 2, 2, 1)
    assert pooled[0, 0, 0, 0] == x[0, :2, :2, 0].mean()
    assert pooled[1, 1, 1, 0] == x[1, 2:, 2:, 0].mean()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_full_attention_c_vs_causal_b(attn):
    """A later token (the instruction, or a later frame) changes an earlier frame's score under C; under B
    the frame tokens never see later tokens (their states are unchanged) and only the anchors react."""
    frames = feats(4)
    later_frames = frames.clone()
    later_frames[3] += 1.0  # perturb the LAST frame only

    c = make("C", attn_implementation=attn)
    ids_a = c.encode_instruction("where is the red circle?")
    ids_b = ids_a.clone()
    ids_b[-1] = (ids_b[-1] + 7) % 500 + 3  # perturb the LAST instruction token only
    with torch.no_grad():
        base = c([frames], [ids_a], budget=64)
        text = c([frames], [ids_b], budget=64)
        later = c([later_frames], [ids_a], budget=64)
    assert not torch.allclose(base.logits[0, 0], text.logits[0, 0], atol=1e-6)  # instruction -> frame 0
    assert not torch.allclose(base.logits[0, 0], later.logits[0, 0], atol=1e-6)  # frame 3 -> frame 0

    b = make("B", attn_implementation=attn)
    with torch.no_grad():
        base = b([frames], [ids_a], budget=64, return_hidden=True)
        text = b([frames], [ids_b], budget=64, return_hidden=True)
        later = b([later_frames], [ids_a], budget=64, return_hidden=True)
    n_frame_tokens = base.layouts[0].frame_tokens
    # frame tokens: unaffected by the instruction and by later frames (frames 0..2 before frame 3)
    assert torch.allclose(base.hidden[0, :n_frame_tokens], text.hidden[0, :n_frame_tokens], atol=1e-6)
    first3 = 3 * base.layouts[0].tokens_per_frame
    assert torch.allclose(base.hidden[0, :first3], later.hidden[0, :first3], atol=1e-6)
    # the scored anchors come after the instruction, so they do depend on it
    assert not torch.allclose(base.logits, text.logits, atol=1e-6)


@pytest.mark.parametrize("variant", ["C", "B"])
def test_padding_does_not_change_scores(variant):
    model = make(variant)
    ids = model.encode_instruction("count the triangles")
    with torch.no_grad():
        alone = model([feats(3)], [ids[:6]], budget=64).logits[0, :3]
        batched = model([feats(8, seed=5), feats(3)], [ids, ids[:6]], budget=64).logits[1, :3]
    assert torch.allclose(alone, batched, atol=1e-5)


def test_frame_score_is_head_of_its_own_pooled_tokens():
    """By construction: logit_t == head(mean of the LM's last states over frame t's token span) (C)
    and == head(state of anchor t) (B)."""
    for variant in ("C", "B"):
        model = make(variant)
        ids = model.encode_instruction("which frame shows the blue star?")
        with torch.no_grad():
            out = model([feats(5)], [ids], budget=80, return_hidden=True)
            lay = out.layouts[0]
            for t in range(lay.num_frames):
                if variant == "C":
                    span = out.hidden[0, t * lay.tokens_per_frame : (t + 1) * lay.tokens_per_frame]
                    state = span.mean(dim=0)
                else:
                    state = out.hidden[0, lay.seq_len - lay.num_frames + t]
                expected = model.head(state).squeeze(-1)
                assert torch.allclose(out.logits[0, t], expected, atol=1e-5)


def test_vision_is_frozen_and_gets_no_gradient():
    model = make("C")
    model.train()
    assert not model.vision.training  # BatchNorm/dropout of the frozen encoder stay in eval mode
    assert all(not p.requires_grad for p in model.vision.parameters())
    out = model([feats(4)], [model.encode_instruction("hi")], budget=64)
    out.logits.sum().backward()
    assert all(p.grad is None for p in model.vision.parameters())
    assert model.head.weight.grad is not None and model.projector[0].weight.grad is not None
    assert model.lm.get_input_embeddings().weight.grad is not None


def test_gradient_checkpointing_gives_same_gradients():
    grads = []
    for ckpt in (False, True):
        model = make("C")
        model.train()
        if ckpt:
            model.enable_gradient_checkpointing()
        out = model([feats(4)], [model.encode_instruction("a question")], budget=64)
        out.logits.square().sum().backward()
        grads.append(model.projector[0].weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("variant", ["C", "B"])
def test_checkpoint_reloads_to_identical_scores(tmp_path, variant):
    model = make(variant, seed=3)
    with torch.no_grad():
        model.head.bias.fill_(0.25)  # something a fresh init would not have
    model.save_pretrained(tmp_path / "ckpt", metadata={"data_version": "sha256:test"})
    assert (tmp_path / "ckpt" / "config.json").is_file() and (
        tmp_path / "ckpt" / "model.safetensors"
    ).is_file()
    again = FrameSelector.from_pretrained(tmp_path / "ckpt")
    cfg = SelectorConfig.load(tmp_path / "ckpt" / "config.json")
    assert cfg.variant == variant and cfg.metadata["data_version"] == "sha256:test"
    ids = model.encode_instruction("what is moving?")
    assert torch.equal(ids, again.encode_instruction("what is moving?"))
    with torch.no_grad():
        a = model([feats(6)], [ids]).logits
        b = again([feats(6)], [ids]).logits
    assert torch.equal(a, b)
    assert model.encoder_id() == again.encoder_id()


def test_config_round_trip_and_validation(tmp_path):
    cfg = TrainConfig(model=tiny_config("B"), lr=1e-4, budget_range=(100, 200))
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again.model.variant == "B" and again.budget_range == (100, 200) and again.lr == 1e-4
    assert TrainConfig.from_dict({"model": "tiny-b"}).model.variant == "B"
    with pytest.raises(ValueError):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(ValueError):
        tiny_config("A")


def test_hf_tokenizer_is_saved_with_the_checkpoint(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from trainer.model import HFTokenizer

    vocab = {"[UNK]": 0, "what": 5, "is": 6, "red": 7, "?": 8}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    model = make("C")
    model.tokenizer = HFTokenizer(
        PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]"), "local-test"
    )
    model.config.text["tokenizer"] = "local-test"  # not on any hub: must come from the checkpoint
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "tokenizer" / "tokenizer_config.json").is_file()
    again = FrameSelector.from_pretrained(tmp_path / "ckpt")
    assert again.encode_instruction("what is red ?").tolist() == [5, 6, 7, 8]


@pytest.mark.parametrize("select_layer", [-2, 1])
def test_vision_tower_stops_at_the_selected_layer(tmp_path, select_layer):
    """Features from the truncated tower equal the full tower's `hidden_states[select_layer]`, and a
    checkpoint of the truncated selector reloads with the same features."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from trainer.config import tiny_siglip_config

    torch.manual_seed(0)
    model = FrameSelector(
        tiny_config("C", vision={"kind": "siglip", "config": tiny_siglip_config(), "select_layer": select_layer})
    ).eval()
    cfg = dict(tiny_siglip_config())
    cfg.pop("model_type", None)
    full = SiglipVisionModel(SiglipVisionConfig(**cfg, vision_use_head=False)).eval()
    depth = cfg["num_hidden_layers"]
    kept = model.vision.tower.encoder.layers
    assert len(kept) == (depth + 1 + select_layer if select_layer < 0 else select_layer) < depth
    missing, unexpected = full.load_state_dict(model.vision.model.state_dict(), strict=False)
    assert not unexpected and missing  # the dropped layers (and post-norm) are all that differ
    frames = torch.randint(0, 256, (3, 40, 40, 3), dtype=torch.uint8).numpy()
    with torch.no_grad():
        pixels = model.vision.preprocess(frames)
        want = full(pixel_values=pixels, output_hidden_states=True).hidden_states[select_layer]
        got = model.vision(pixels)
    grid = model.vision.grid
    assert torch.allclose(got, want.reshape(3, grid, grid, -1), atol=1e-5)
    model.save_pretrained(tmp_path / "ckpt")
    again = FrameSelector.from_pretrained(tmp_path / "ckpt")
    assert torch.equal(again.encode_frames(frames), model.encode_frames(frames))


def test_select_layer_outside_the_tower_is_rejected():
    from trainer.config import tiny_siglip_config

    with pytest.raises(ValueError, match="select_layer 99 is outside a"):
        FrameSelector(tiny_config("C", vision={"kind": "siglip", "config": tiny_siglip_config(), "select_layer": 99}))


def test_compiled_blocks_give_the_eager_scores_and_gradients():
    """`compile_blocks` (TrainConfig.compile / --compile) compiles every LM and vision block; scores and
    gradients match eager ones, across two sequence lengths (the second recompiles dynamically)."""
    eager, compiled = make("C", seed=5).train(), make("C", seed=5).train()
    compiled.enable_gradient_checkpointing()
    n = compiled.compile_blocks()
    assert n == len(compiled.lm.layers) + len(compiled.vision.tower.encoder.layers)
    batches = [([feats(6), feats(9, seed=2)], ["what moves?", "a longer question here"]), ([feats(4)], ["red?"])]
    for features, questions in batches:
        for model in (eager, compiled):
            model.zero_grad()
        outs = []
        for model in (eager, compiled):
            ids = [model.encode_instruction(q) for q in questions]
            out = model(features, ids, budget=64)
            out.logits.square().sum().backward()
            outs.append(out.logits.detach())
        assert torch.allclose(outs[0], outs[1], atol=1e-5)
        assert torch.allclose(eager.projector[0].weight.grad, compiled.projector[0].weight.grad, atol=1e-5)
