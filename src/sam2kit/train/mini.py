"""``sam2kit-mini`` for training: its preset (:data:`sam2kit.config.EXTRA_PRESETS`, where the
architecture is described) with the trunk's stochastic depth set for a run."""

from __future__ import annotations

import dataclasses

from ..config import MINI_NAME, SAM2Config, get_config

__all__ = ["MINI_NAME", "mini_config"]


def mini_config(drop_path_rate: float = 0.0) -> SAM2Config:
    """The ``sam2kit-mini`` configuration, with ``drop_path_rate`` in its trunk (0 at inference)."""
    config = get_config(MINI_NAME)
    if drop_path_rate == config.trunk.drop_path_rate:
        return config
    return config.replace(trunk=dataclasses.replace(config.trunk, drop_path_rate=drop_path_rate))
