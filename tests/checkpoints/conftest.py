"""Checkpoints of every preset without their cost: state dicts whose tensors have the right keys,
shapes and dtypes but no data.

``preset_shapes(name)`` builds the real model on the ``meta`` device (its state dict is shapes
only), so the keys and shapes are the model's, not a second description of them. Files are
written from :func:`expanded`: every tensor a zero-strided view of one element, which
``torch.save`` stores as that one element, so a SAM 2.1 large ``.pt`` is a few hundred kB.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from sam2kit.config import EXTRA_PRESETS, PRESETS, SAM2Config
from sam2kit.modeling.sam2 import SAM2Model

#: Every preset the inference must tell apart: the eight official ones and sam2kit's own.
ALL_PRESETS: dict[str, SAM2Config] = {**PRESETS, **EXTRA_PRESETS}


class _MetaExceptLinspace(TorchFunctionMode):
    """``torch.device("meta")``, except for ``torch.linspace``: Hiera reads its drop-path rates
    with ``.tolist()``, which needs values (and adds no weights)."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        from torch.utils._device import _device_constructors

        kwargs = dict(kwargs or {})
        if func in _device_constructors() and kwargs.get("device") is None:
            kwargs["device"] = "cpu" if func is torch.linspace else "meta"
        return func(*args, **kwargs)


@cache
def _meta_state(config: SAM2Config) -> dict[str, torch.Tensor]:
    with _MetaExceptLinspace():
        model = SAM2Model(config)
    return dict(model.state_dict())


def meta_state(config: SAM2Config) -> dict[str, torch.Tensor]:
    """The state dict of ``config``'s model, as ``meta`` tensors (keys, shapes, dtypes)."""
    return dict(_meta_state(config))


def expanded(state: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Tensors of ``state``'s shapes, each a zero-strided view of one stored element."""
    return {key: torch.zeros((), dtype=dtype).expand(value.shape) for key, value in state.items()}


@pytest.fixture(scope="session")
def preset_shapes() -> Any:
    """``preset_shapes(name)``: the meta state dict of a preset's model."""
    return lambda name: meta_state(ALL_PRESETS[name])
