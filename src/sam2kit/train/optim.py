"""AdamW parameter groups (a lower image-encoder learning rate with layer-wise decay, no weight
decay on biases and LayerNorms) and the warm-up + cosine schedule, as the official recipe sets them.

Layer-wise decay: the trunk's patch embedding is layer 0, block i layer i + 1, the rest of the
trunk the last layer L + 1; layer l learns at ``encoder_lr * decay ** (L + 1 - l)``; the position
embeddings keep the full encoder rate (the recipe's override), and so does the neck. LoRA adapters
are new weights: they learn at the heads' rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import cast

import torch
from torch import nn

from .lora import LORA_PARAMS

__all__ = ["parameter_groups", "lr_factor", "set_learning_rates", "build_optimizer", "trainable_parameters"]


def _no_weight_decay(model: nn.Module) -> set[str]:
    """Biases and the weights of LayerNorm layers (the recipe's exemptions)."""
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if param_name == "bias" or isinstance(module, nn.LayerNorm):
                names.add(full)
    return names


def _encoder_scale(name: str, num_blocks: int, decay: float) -> float:
    """The layer-wise factor of an image-encoder parameter."""
    trunk = "image_encoder.trunk."
    if not name.startswith(trunk) or "pos_embed" in name:
        return 1.0
    rest = name[len(trunk):]
    if rest.startswith("patch_embed."):
        layer = 0
    elif rest.startswith("blocks."):
        layer = int(rest.split(".")[1]) + 1
    else:
        layer = num_blocks + 1
    return decay ** (num_blocks + 1 - layer)


def parameter_groups(
    model: nn.Module, *, lr: float, encoder_lr: float, layer_decay: float, weight_decay: float
) -> list[dict]:
    """AdamW groups of the trainable parameters of ``model`` (one per learning rate and weight
    decay); each group's ``base_lr`` is its peak rate and ``names`` its parameters' names."""
    no_decay = _no_weight_decay(model)
    num_blocks = len(cast(nn.ModuleList, model.get_submodule("image_encoder.trunk.blocks")))
    groups: dict[tuple[float, float], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_adapter = name.rsplit(".", 1)[-1] in LORA_PARAMS
        if name.startswith("image_encoder.") and not is_adapter:
            base_lr = encoder_lr * _encoder_scale(name, num_blocks, layer_decay)
        else:
            base_lr = lr
        decay = 0.0 if name in no_decay else weight_decay
        group = groups.setdefault(
            (base_lr, decay), {"params": [], "names": [], "base_lr": base_lr, "lr": base_lr, "weight_decay": decay}
        )
        group["params"].append(param)
        group["names"].append(name)
    return list(groups.values())


def build_optimizer(groups: list[dict]) -> torch.optim.AdamW:
    """AdamW over ``groups`` (betas / eps: torch's defaults, as the recipe)."""
    if not groups:
        raise ValueError("nothing to train: no parameter requires gradients")
    return torch.optim.AdamW(groups)


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """The schedule at optimizer step ``step`` (0-based): linear warm-up from ``1 / warmup`` to 1
    over ``warmup_steps``, then a half cosine from 1 down to ``min_ratio`` at the last step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def set_learning_rates(optimizer: torch.optim.Optimizer, factor: float) -> list[float]:
    """Every group at ``base_lr * factor``; returns the groups' rates."""
    rates = []
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
        rates.append(group["lr"])
    return rates


def trainable_parameters(groups: Iterable[dict]) -> list[nn.Parameter]:
    return [param for group in groups for param in group["params"]]
