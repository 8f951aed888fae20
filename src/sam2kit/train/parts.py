"""Which weights train (``--train decoder | memory | all``, LoRA adapters), the modules' modes, and
activation checkpointing.

- ``decoder``: the prompt encoder and the mask decoder, except the decoder's two projections of the
  high-resolution image features (``conv_s0`` / ``conv_s1``): they act on the image features before
  any prompt is seen, so they belong with the frozen encoder, whose output (theirs included) can
  then be cached once per frame.
- ``memory``: ``decoder`` plus the memory attention, the memory encoder and the small tracking
  parameters (temporal position encodings, no-memory / no-object embeddings, the object-pointer
  projections, the mask-prompt downsampler).
- ``all``: every weight; the image encoder with its own, lower learning rate.
- LoRA adapters (``lora_A`` / ``lora_B``) always train when present; the weights they adapt do not.

A frozen image encoder stays in eval mode (no drop path: its features are the same every time);
everything else is in train mode (the model's training branches: no dynamic multimask choice in
the decoder, soft masks into the memory encoder).
"""

from __future__ import annotations

import functools
from typing import Any, cast

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .lora import LORA_PARAMS

__all__ = [
    "DECODER_PREFIXES",
    "MEMORY_PREFIXES",
    "FEATURE_PROJECTIONS",
    "trainable_names",
    "set_trainable",
    "set_train_mode",
    "enable_activation_checkpointing",
]

DECODER_PREFIXES = ("sam_prompt_encoder.", "sam_mask_decoder.")
#: The decoder's projections of the stride-4 and stride-8 image features (see the module docstring).
FEATURE_PROJECTIONS = ("sam_mask_decoder.conv_s0.", "sam_mask_decoder.conv_s1.")
MEMORY_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "maskmem_tpos_enc",
    "no_mem_embed",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "no_obj_embed_spatial",
    "mask_downsample.",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
)


def _trains(name: str, part: str) -> bool:
    if name.rsplit(".", 1)[-1] in LORA_PARAMS:
        return True
    if part == "all":
        return True
    if name.startswith(FEATURE_PROJECTIONS):
        return False
    if name.startswith(DECODER_PREFIXES):
        return True
    return part == "memory" and name.startswith(MEMORY_PREFIXES)


def trainable_names(model: nn.Module, part: str) -> list[str]:
    """Names of the parameters that ``part`` (``"decoder"``, ``"memory"``, ``"all"``) trains, LoRA
    adapters included, frozen weights under adapters excluded."""
    if part not in ("decoder", "memory", "all"):
        raise ValueError(f"part must be 'decoder', 'memory' or 'all', got {part!r}")
    adapted = {
        f"{name}.{param}"
        for name, module in model.named_modules()
        if hasattr(module, LORA_PARAMS[0])
        for param in ("weight", "bias")
    }
    return [name for name, _ in model.named_parameters() if _trains(name, part) and name not in adapted]


def set_trainable(model: nn.Module, part: str) -> list[nn.Parameter]:
    """Freeze every parameter except those of ``part`` (see :func:`trainable_names`); returns the
    trainable ones, in ``named_parameters`` order."""
    names = set(trainable_names(model, part))
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)
        if name in names:
            trainable.append(param)
    return trainable


def set_train_mode(model: nn.Module, encoder_trains: bool) -> None:
    """Train mode, except a frozen image encoder (eval: deterministic, cacheable features)."""
    model.train()
    if not encoder_trains:
        model.get_submodule("image_encoder").eval()


def _checkpointed(function: Any, *args: Any, **kwargs: Any) -> Any:
    if not torch.is_grad_enabled():
        return function(*args, **kwargs)
    return checkpoint(function, *args, use_reentrant=False, **kwargs)


def _wrap(module: nn.Module, method: str) -> None:
    # An instance attribute shadows the class's method: the state dict keys stay the official ones,
    # which a wrapper module (adding a level to every key) would change.
    setattr(module, method, functools.partial(_checkpointed, getattr(module, method)))


def enable_activation_checkpointing(model: nn.Module, *, encoder: bool, memory_attention: bool) -> int:
    """Recompute, during backward, the activations of each Hiera block (``encoder``) and of each
    memory-attention layer's two sub-layers (``memory_attention``) instead of keeping them: less
    memory for about one more forward pass. Returns the number of wrapped units."""
    count = 0
    if encoder:
        for block in cast(nn.ModuleList, model.get_submodule("image_encoder.trunk.blocks")):
            _wrap(block, "forward")
            count += 1
    if memory_attention:
        # The first layer is entered through attend_self / attend_memory (its query is shared by
        # the objects of a frame), the others through forward, which calls the same two.
        for layer in cast(nn.ModuleList, model.get_submodule("memory_attention.layers")):
            _wrap(layer, "attend_self")
            _wrap(layer, "attend_memory")
            count += 2
    return count
