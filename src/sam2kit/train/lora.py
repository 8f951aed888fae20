"""LoRA adapters (Hu et al., 2021) on the image encoder's attention, merged into plain weights on save.

:func:`add_lora` turns the ``qkv`` and ``proj`` linear layers of every Hiera block into
:class:`LoRALinear`: the frozen weight ``W`` plus a trainable low-rank update
``(alpha / r) * B @ A`` (``A`` random, ``B`` zero, so training starts from the plain model). The
adapted layer keeps its ``weight`` / ``bias`` parameters under the official keys and adds
``lora_A`` / ``lora_B`` beside them; :func:`merged_state_dict` folds the update into ``weight`` and
drops the adapter keys, which gives a checkpoint with exactly the official keys.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LoRALinear", "add_lora", "merge_lora", "merged_state_dict", "LORA_PARAMS"]

#: Names of the adapter parameters inside a :class:`LoRALinear`.
LORA_PARAMS = ("lora_A", "lora_B")


class LoRALinear(nn.Linear):
    """A linear layer ``y = x W^T + b + (alpha / r) (x A^T) B^T``.

    Args:
        base: the layer to adapt; its ``weight`` and ``bias`` parameters are shared, not copied.
        rank: r, the adapters' inner width; alpha: the scale's numerator (default: r, scale 1).
    Attributes:
        lora_A: ``(r, in_features)``; lora_B: ``(out_features, r)``, zero at first.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None) -> None:
        nn.Module.__init__(self)  # the parameters come from ``base``: nn.Linear's own would be thrown away
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty((rank, self.in_features), device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros((self.out_features, rank), device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own initialisation
        self.rank = rank
        self.scaling = (rank if alpha is None else alpha) / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in_features) -> (..., out_features)
        update = F.linear(F.linear(x, self.lora_A), self.lora_B)
        return F.linear(x, self.weight, self.bias) + self.scaling * update

    def merged_weight(self) -> torch.Tensor:
        """``W + (alpha / r) B A``: ``(out_features, in_features)``."""
        return self.weight + self.scaling * (self.lora_B @ self.lora_A)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling:g}"


def add_lora(model: nn.Module, rank: int, alpha: float | None = None) -> list[str]:
    """Adapt the ``qkv`` and ``proj`` layers of every attention of ``model.image_encoder.trunk``
    (in place). Returns the adapted layers' names. The new ``lora_A`` are drawn from torch's global
    random generator (seed it first for a reproducible run)."""
    blocks = cast(nn.ModuleList, model.get_submodule("image_encoder.trunk.blocks"))
    adapted = []
    for block_name, block in blocks.named_children():
        for layer_name in ("qkv", "proj"):
            layer = getattr(block.attn, layer_name)
            if isinstance(layer, LoRALinear):
                raise ValueError(f"blocks.{block_name}.attn.{layer_name} already has LoRA adapters")
            setattr(block.attn, layer_name, LoRALinear(layer, rank, alpha))
            adapted.append(f"image_encoder.trunk.blocks.{block_name}.attn.{layer_name}")
    return adapted


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state dict (detached, on the CPU) with every LoRA update folded into its weight
    and no adapter keys: the keys of the plain model. ``model`` is left as it is."""
    merged = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LoRALinear):
                merged[f"{name}.weight"] = module.merged_weight()
    state = {}
    for key, value in model.state_dict().items():
        if key.rsplit(".", 1)[-1] in LORA_PARAMS:
            continue
        state[key] = merged.get(key, value).detach().cpu().contiguous()
    return state


def merge_lora(model: nn.Module) -> int:
    """Replace every :class:`LoRALinear` of ``model`` by a plain ``nn.Linear`` with the merged
    weight (in place); returns how many were merged."""
    count = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None,
                                  device=child.weight.device, dtype=child.weight.dtype)
                with torch.no_grad():
                    plain.weight.copy_(child.merged_weight())
                    if child.bias is not None:
                        plain.bias.copy_(child.bias)
                plain.weight.requires_grad_(child.weight.requires_grad)
                if plain.bias is not None and child.bias is not None:
                    plain.bias.requires_grad_(child.bias.requires_grad)
                setattr(parent, child_name, plain)
                count += 1
    return count
