"""Checkpoint files: the formats read and written, the preset a checkpoint's weights reveal, and
the hub.

Modules, one concept each: :mod:`.formats` (official ``.pt`` / ``.safetensors``, in the official or
the ``transformers`` key layout), :mod:`.transformers_keys` (the key map between the two layouts),
:mod:`.presets` (the preset told from the weights' keys and shapes), :mod:`.loading` (strict key
and shape checks), :mod:`.hub` (Hugging Face hub downloads), :mod:`.bundled` (weights shipped in
the package), :mod:`.device`, :mod:`.errors`.
"""

from __future__ import annotations

from .bundled import bundled_checkpoint
from .device import resolve_device
from .errors import CheckpointConfigError, CheckpointDownloadError, CheckpointError, CheckpointMismatchError
from .formats import LAYOUTS, read_state_dict, save_checkpoint
from .hub import TRANSFORMERS_FILENAME, download_checkpoint
from .loading import load_checkpoint, load_state_dict_checked
from .presets import WeightShapes, config_shapes, infer_config, infer_config_from_file, preset_of, weight_shapes
from .transformers_keys import from_transformers, is_transformers_layout, to_transformers

__all__ = [
    "LAYOUTS",
    "TRANSFORMERS_FILENAME",
    "CheckpointConfigError",
    "CheckpointDownloadError",
    "CheckpointError",
    "CheckpointMismatchError",
    "WeightShapes",
    "bundled_checkpoint",
    "config_shapes",
    "download_checkpoint",
    "from_transformers",
    "infer_config",
    "infer_config_from_file",
    "is_transformers_layout",
    "load_checkpoint",
    "load_state_dict_checked",
    "preset_of",
    "read_state_dict",
    "resolve_device",
    "save_checkpoint",
    "to_transformers",
    "weight_shapes",
]
