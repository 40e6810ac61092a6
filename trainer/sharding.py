"""Fully sharded data parallel (PyTorch FSDP2, `fully_shard`) for selectors too big for DDP.

DDP keeps a full copy of the weights, gradients and AdamW state on every GPU: 16 bytes per trainable
parameter, about 120 GB for a Qwen2-7B selector, more than an 80 GB H100 holds. FSDP shards all three
over the ranks, so a 7B selector trains on 8 GPUs with ~15 GB of model state each.

Layout: each decoder layer of the LM is its own FSDP unit (gathered just before it runs, freed after),
and the selector itself is the root unit (projector, head, embeddings, final norm). The frozen vision
encoder is left out (`ignored_params`): it is small, never trained, and runs outside the selector's
forward (frame features are computed and cached before training), so it stays a plain local module.

Checkpoints stay the format every other path reads: the full state dict, gathered to rank 0 on the CPU
(`full_model_state`), written by `FrameSelector.save_pretrained`; the optimizer state likewise, keyed
by parameter names (`full_optimizer_state`), so a resumed FSDP run can use any world size.
"""

from __future__ import annotations

from typing import Any

import torch

from trainer.model import FrameSelector

STRATEGIES = ("ddp", "fsdp")


def _options(**kwargs: Any):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def shard_selector(model: FrameSelector, device: torch.device, world: int, bf16: bool) -> None:
    """Shard `model` in place over the default process group (one FSDP unit per LM layer + the root)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (world,))
    # bf16 compute with fp32 master weights and fp32 gradient reduction (what autocast gives DDP).
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16
        else MixedPrecisionPolicy()
    )
    layers = getattr(model.lm, "layers", None)
    if layers is None:
        raise ValueError(f"FSDP needs an LM with `.layers`; {type(model.lm).__name__} has none")
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy, ignored_params=set(model.vision.parameters()))


def full_model_state(model: FrameSelector) -> dict[str, torch.Tensor]:
    """The whole state dict on rank 0's CPU (empty on other ranks). Collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_options(cpu_offload=True))
    # Gathered tensors can be views into one flat buffer; safetensors refuses to save partial views.
    return {name: tensor.clone() for name, tensor in state.items()}


def full_optimizer_state(model: FrameSelector, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state keyed by parameter names, on rank 0's CPU. Collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))


def load_full_optimizer_state(model: FrameSelector, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a `full_optimizer_state` into a sharded model's optimizer (every rank passes the full state)."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=_options())


def full_grad_norm(norm: torch.Tensor) -> torch.Tensor:
    """`clip_grad_norm_` over sharded parameters returns a DTensor; its value is the same on every rank."""
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm
