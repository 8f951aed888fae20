"""Loading weights into a built model, with every key and shape checked first."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointMismatchError
from .formats import read_state_dict
from .presets import preset_of

__all__ = ["load_checkpoint", "load_state_dict_checked"]


def load_state_dict_checked(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    source: str = "state dict",
    config_name: str = "?",
) -> None:
    """Load ``state`` (official key names) into ``model`` after checking every key and shape.

    Raises:
        CheckpointMismatchError: (with ``strict``) names the missing, unexpected and mis-shaped
            keys, and the preset the weights are those of when they match another one.
    """
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    mismatched = [
        (k, tuple(state[k].shape), tuple(own[k].shape))
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if strict and (missing or unexpected or mismatched):
        weights_preset = preset_of(state)
        raise CheckpointMismatchError(
            source, config_name, missing, unexpected, mismatched,
            weights_preset=weights_preset if weights_preset != config_name else None,
        )
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(usable, strict=False)


def load_checkpoint(model: nn.Module, path: str | Path, *, strict: bool = True, config_name: str = "?") -> None:
    """Load a checkpoint file (any format :func:`~sam2kit.checkpoints.read_state_dict` reads)
    into ``model`` after checking every key and shape.

    Raises:
        FileNotFoundError, CheckpointError: as ``read_state_dict``.
        CheckpointMismatchError: (with ``strict``) as :func:`load_state_dict_checked`.
    """
    load_state_dict_checked(model, read_state_dict(path), strict=strict, source=str(path), config_name=config_name)
