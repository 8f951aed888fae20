"""Which preset a checkpoint is, told from its weights: the keys and shapes, not the file name.

Hiera's width and stage depths, the window sizes of its position embeddings, the widths of the
neck and memories and the depth of the memory attention all show in the shapes; SAM 2.1 shows in
two keys SAM 2 lacks (``no_obj_embed_spatial``, ``obj_ptr_tpos_proj``). The number of attention
heads and which blocks attend globally add no weights: they come with the preset the shapes pick
(no two presets share their shapes). The file name is only a last hint, between presets whose
shapes would be equal.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import EXTRA_PRESETS, PRESETS, SAM2Config, get_config
from .errors import CheckpointConfigError, CheckpointError
from .formats import read_state_dict

__all__ = ["WeightShapes", "config_shapes", "infer_config", "infer_config_from_file", "preset_of", "weight_shapes"]

_TRUNK = "image_encoder.trunk."
_BLOCK = re.compile(r"^image_encoder\.trunk\.blocks\.(\d+)\.")
_NECK = re.compile(r"^image_encoder\.neck\.convs\.(\d+)\.conv\.weight$")
#: Keys every SAM 2 checkpoint has, read for the shapes.
_REQUIRED = (
    "image_encoder.trunk.patch_embed.proj.weight",
    "image_encoder.trunk.pos_embed",
    "image_encoder.trunk.pos_embed_window",
    "image_encoder.neck.convs.0.conv.weight",
    "memory_attention.layers.0.linear1.weight",
    "memory_encoder.out_proj.weight",
)


@dataclass(frozen=True)
class WeightShapes:
    """What a state dict's keys and shapes say about the model that made it."""

    embed_dim: int  # Hiera's first-stage width
    stages: tuple[int, ...]  # blocks per Hiera stage
    stage_widths: tuple[int, ...]  # channels of each stage, lowest resolution first
    window_pos_embed_bkg_spatial_size: tuple[int, ...]
    first_window: int  # window of the first stage (the window position embedding's size)
    d_model: int
    mem_dim: int
    memory_attention_layers: int
    memory_attention_ffn_dim: int
    no_obj_embed_spatial: bool  # SAM 2.1
    obj_ptr_tpos_proj: bool  # SAM 2.1

    @property
    def version(self) -> str:
        """``"SAM 2.1"``, ``"SAM 2"`` or, with one of the two 2.1 keys only, a description."""
        if self.no_obj_embed_spatial and self.obj_ptr_tpos_proj:
            return "SAM 2.1"
        if not (self.no_obj_embed_spatial or self.obj_ptr_tpos_proj):
            return "SAM 2"
        return "no_obj_embed_spatial" + (" without" if self.no_obj_embed_spatial else " with") + " obj_ptr_tpos_proj"

    def differences(self, other: WeightShapes) -> list[str]:
        """``"field a vs b"`` for each field that differs (``self`` first)."""
        return [
            f"{field.name} {getattr(self, field.name)} vs {getattr(other, field.name)}"
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != getattr(other, field.name)
        ]

    def describe(self) -> str:
        """One line: the version and every shape that tells a preset."""
        return (
            f"{self.version}, Hiera embed dim {self.embed_dim}, stages {self.stages}, window pos-embed "
            f"{self.window_pos_embed_bkg_spatial_size} / {self.first_window}, d_model {self.d_model}, mem_dim "
            f"{self.mem_dim}, memory attention {self.memory_attention_layers} layers x FFN "
            f"{self.memory_attention_ffn_dim}"
        )


def config_shapes(config: SAM2Config) -> WeightShapes:
    """The :class:`WeightShapes` of the model that ``config`` builds."""
    trunk = config.trunk
    return WeightShapes(
        embed_dim=trunk.embed_dim,
        stages=tuple(trunk.stages),
        stage_widths=tuple(trunk.channel_list),
        window_pos_embed_bkg_spatial_size=tuple(trunk.window_pos_embed_bkg_spatial_size),
        first_window=trunk.window_spec[0],
        d_model=config.d_model,
        mem_dim=config.mem_dim,
        memory_attention_layers=config.memory_attention_layers,
        memory_attention_ffn_dim=config.memory_attention_ffn_dim,
        no_obj_embed_spatial=config.no_obj_embed_spatial,
        obj_ptr_tpos_proj=config.proj_tpos_enc_in_obj_ptrs,
    )


def _not_sam2(state: Mapping[str, torch.Tensor], source: str, missing: list[str]) -> CheckpointError:
    keys = list(state)
    if any(k.startswith(("image_encoder.blocks.", "mask_decoder.")) for k in keys) and not any(
        k.startswith("memory_attention.") for k in keys
    ):
        return CheckpointError(
            f"checkpoint {source} looks like a Segment Anything (SAM 1) model (image_encoder.blocks / mask_decoder "
            "keys, no memory_attention); sam2kit loads SAM 2 and SAM 2.1 checkpoints only"
        )
    return CheckpointError(
        f"checkpoint {source} is not a SAM 2 checkpoint: it lacks {', '.join(missing[:3])} (its keys start "
        f"{', '.join(keys[:3])}); expected official SAM 2 / 2.1 keys or those of transformers' Sam2 models"
    )


def weight_shapes(state: Mapping[str, torch.Tensor], source: str = "state dict") -> WeightShapes:
    """Read :class:`WeightShapes` off a state dict with the official key names (``meta`` tensors
    from ``read_state_dict(..., shapes_only=True)`` do).

    Raises:
        CheckpointError: not a SAM 2 state dict (a SAM 1 one is named as such).
    """
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise _not_sam2(state, source, missing)
    blocks = {int(m.group(1)) for key in state if (m := _BLOCK.match(key))}
    starts = sorted(i for i in blocks if f"{_TRUNK}blocks.{i}.proj.weight" in state)  # first block of stages 2..
    bounds = [0, *starts, max(blocks) + 1] if blocks else [0, 0]
    necks = sorted(int(m.group(1)) for key in state if (m := _NECK.match(key)))
    layers = {int(k.split(".")[2]) for k in state if k.startswith("memory_attention.layers.")}
    return WeightShapes(
        embed_dim=int(state["image_encoder.trunk.patch_embed.proj.weight"].shape[0]),
        stages=tuple(b - a for a, b in zip(bounds, bounds[1:], strict=False)),
        stage_widths=tuple(int(state[f"image_encoder.neck.convs.{i}.conv.weight"].shape[1]) for i in necks),
        window_pos_embed_bkg_spatial_size=tuple(int(n) for n in state["image_encoder.trunk.pos_embed"].shape[2:]),
        first_window=int(state["image_encoder.trunk.pos_embed_window"].shape[-1]),
        d_model=int(state["image_encoder.neck.convs.0.conv.weight"].shape[0]),
        mem_dim=int(state["memory_encoder.out_proj.weight"].shape[0]),
        memory_attention_layers=len(layers),
        memory_attention_ffn_dim=int(state["memory_attention.layers.0.linear1.weight"].shape[0]),
        no_obj_embed_spatial="no_obj_embed_spatial" in state,
        obj_ptr_tpos_proj="obj_ptr_tpos_proj.weight" in state,
    )


def _all_presets() -> list[SAM2Config]:
    return [*PRESETS.values(), *EXTRA_PRESETS.values()]


def _hinted(hint: str | None) -> str | None:
    """The preset a file name names (``sam2.1_hiera_tiny.pt``), if any."""
    if not hint:
        return None
    stem = Path(hint).name
    for suffix in (".safetensors", ".pt", ".pth", ".bin", ".ckpt"):
        stem = stem.removesuffix(suffix)
    try:
        return get_config(stem).name
    except KeyError:
        return None


def infer_config(
    state: Mapping[str, torch.Tensor], *, hint: str | None = None, source: str = "state dict"
) -> SAM2Config:
    """The preset (official or sam2kit's own) whose model has exactly these weight shapes.

    Args:
        state: official key names (``meta`` tensors suffice).
        hint: a file name; only breaks a tie between presets with equal shapes.
        source: how to name the checkpoint in errors (its path).
    Raises:
        CheckpointError: not a SAM 2 state dict.
        CheckpointConfigError: a SAM 2 state dict that matches no preset; the message gives the
            shapes found and the nearest preset (pass the config explicitly then).
    """
    found = weight_shapes(state, source)
    hinted = _hinted(hint)
    matches = [cfg for cfg in _all_presets() if config_shapes(cfg) == found]
    if matches:
        return next((cfg for cfg in matches if cfg.name == hinted), matches[0])
    nearest = min(_all_presets(), key=lambda cfg: (len(found.differences(config_shapes(cfg))), cfg.name != hinted))
    differences = found.differences(config_shapes(nearest))
    raise CheckpointConfigError(
        f"cannot tell the model config of checkpoint {source} from its weights: they match no preset (found "
        f"{found.describe()}); the nearest preset, {nearest.name}, differs in {'; '.join(differences)} "
        "(checkpoint vs preset). Pass the config that made it (a preset name or an official YAML file)",
        nearest=nearest.name,
    )


def infer_config_from_file(path: str | Path) -> SAM2Config:
    """:func:`infer_config` of a checkpoint file, reading only its shapes (cheap for any size);
    its file name is the hint.

    Raises:
        FileNotFoundError, CheckpointError: as :func:`~sam2kit.checkpoints.read_state_dict` and
            :func:`infer_config`.
    """
    return infer_config(read_state_dict(path, shapes_only=True), hint=Path(path).name, source=str(path))


def preset_of(state: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the preset with these weight shapes, or ``None`` (also for non-SAM 2 dicts)."""
    try:
        return infer_config(state).name
    except CheckpointError:
        return None
