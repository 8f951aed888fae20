"""Which model to run, and the one path from that description to a ready model.

A :class:`ModelSpec` says what every entry point (the CLI commands, the pipelines, a service, a
batch job) lets its user choose: a checkpoint (local file or hub id), a config, a device and a
precision. :func:`load_model` turns it into a :class:`LoadedModel`: the model in eval mode plus
what was resolved (config, device), ready to be recorded next to the results.

Importing this module imports no torch; :func:`load_model` does.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ArgumentError

if TYPE_CHECKING:
    import torch

    from .config import SAM2Config
    from .modeling.sam2 import SAM2Model

__all__ = ["DEFAULT_CHECKPOINT", "LoadedModel", "ModelSpec", "ModelSpecError", "checkpoint_kind", "load_model"]

logger = logging.getLogger(__name__)

#: The checkpoint used when none is named: official SAM 2.1 tiny from the Hugging Face hub.
DEFAULT_CHECKPOINT = "facebook/sam2.1-hiera-tiny"


class ModelSpecError(ArgumentError):
    """A :class:`ModelSpec` names no usable model; ``argument`` is the field at fault
    (``"checkpoint"``, ``"config"``, ``"device"``, ``"precision"`` or ``"image_size"``)."""


@dataclass(frozen=True)
class ModelSpec:
    """A model to load.

    Attributes:
        checkpoint: a local checkpoint file (official ``.pt`` or ``.safetensors``, official keys or
            those of Hugging Face ``transformers``' SAM 2 models), one of the eight
            official Hugging Face hub ids (downloaded once, then cached), or ``None`` for random
            weights (then ``config`` is required).
        config: a preset name, a hub id, an official YAML file or a :class:`~sam2kit.config.SAM2Config`;
            ``None``: told from the hub id or from the checkpoint file's weights (their keys and
            shapes, whatever the file's name).
        device: a torch device (``"cpu"``, ``"cuda:1"``, ``"mps"``); ``None``: the best available.
        precision: ``"fp32"`` (exact), ``"bf16"`` or ``"fp16"`` (see :func:`sam2kit.build_model`).
        image_size: the model's input resolution in pixels, overriding the config's (custom models
            only; a checkpoint file does not record it).
    """

    checkpoint: str | Path | None = DEFAULT_CHECKPOINT
    config: str | Path | SAM2Config | None = None
    device: str | torch.device | None = None
    precision: str = "fp32"
    image_size: int | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A model made from a :class:`ModelSpec`, with what the spec resolved to."""

    model: SAM2Model
    spec: ModelSpec
    config: SAM2Config
    device: torch.device

    def to_json(self) -> dict[str, Any]:
        """``{"checkpoint", "config", "image_size", "device", "precision"}``, to record with results."""
        checkpoint = self.spec.checkpoint
        return {
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "config": self.config.name,
            "image_size": self.config.image_size,
            "device": str(self.device),
            "precision": self.spec.precision,
        }


def load_model(spec: ModelSpec) -> LoadedModel:
    """Build the model that ``spec`` names, in eval mode, on its device.

    Everything that can be checked cheaply (checkpoint kind, config, device, precision) is checked
    before a download or a weight load starts.

    Raises:
        ModelSpecError: a checkpoint that is neither a file nor an official hub id (or is a folder),
            an unknown config or one that cannot be told from the checkpoint, an unusable device or
            precision, an invalid image size.
        FileNotFoundError: a YAML config that does not exist.
        sam2kit.checkpoints.CheckpointError: an unreadable or mismatched checkpoint, or a hub
            checkpoint that cannot be downloaded (``CheckpointDownloadError``).
    """
    from .build import build_model, resolve_config, resolve_precision
    from .checkpoints import bundled_checkpoint, download_checkpoint, resolve_device
    from .config import list_presets

    kind = checkpoint_kind(spec.checkpoint)
    if kind == "none" and spec.config is None:
        raise ModelSpecError(
            "config needed: without a checkpoint (random weights) the config says which model to build",
            argument="config",
        )
    try:
        cfg = resolve_config(spec.config, spec.checkpoint)
    except KeyError:
        raise ModelSpecError(
            f"config {spec.config!r} is unknown; use a preset name ({', '.join(list_presets())}) or an "
            "official YAML file",
            argument="config",
        ) from None
    except ValueError as err:
        raise ModelSpecError(str(err), argument="config") from None
    if spec.image_size is not None and spec.image_size != cfg.image_size:
        try:
            cfg = cfg.replace(image_size=spec.image_size)
        except ValueError as err:
            raise ModelSpecError(str(err), argument="image_size") from None
    try:
        device = resolve_device(spec.device)
    except ValueError as err:
        raise ModelSpecError(str(err), argument="device") from None
    try:
        with warnings.catch_warnings():  # checked early only; build_model warns (once) about slow bf16
            warnings.simplefilter("ignore", RuntimeWarning)
            resolve_precision(spec.precision, device)
    except ValueError as err:
        raise ModelSpecError(f"precision {spec.precision}: {err}", argument="precision") from None

    started = time.perf_counter()
    path: Path | None = None
    if kind == "hub":
        logger.info("fetching %s from the Hugging Face hub (cached after the first time)", spec.checkpoint)
        path = download_checkpoint(str(spec.checkpoint))
    elif kind == "bundled":
        path = bundled_checkpoint(str(spec.checkpoint))
    elif kind == "file":
        path = Path(spec.checkpoint).expanduser()  # type: ignore[arg-type]
    logger.info("loading %s (%s, %dpx) on %s", path or "random weights", cfg.name, cfg.image_size, device)
    model = build_model(cfg, checkpoint=path, device=device, precision=spec.precision)
    logger.debug("model ready in %.2f s", time.perf_counter() - started)
    return LoadedModel(model=model, spec=spec, config=cfg, device=device)


def checkpoint_kind(checkpoint: str | Path | None) -> str:
    """``"file"``, ``"hub"``, ``"bundled"`` (a model shipped in the package) or ``"none"``.

    Raises:
        ModelSpecError: a folder, or neither an existing file, an official hub id nor a bundled model.
    """
    from .config import BUNDLED, HUB_IDS, bundled_name

    if checkpoint is None:
        return "none"
    local = Path(checkpoint).expanduser()
    if local.is_file():
        return "file"
    if str(checkpoint) in HUB_IDS:
        return "hub"
    if bundled_name(checkpoint):
        return "bundled"
    if local.is_dir():
        raise ModelSpecError(
            f"checkpoint {checkpoint} is a folder; pass the checkpoint file inside it", argument="checkpoint"
        )
    raise ModelSpecError(
        f"checkpoint {str(checkpoint)!r} not found: it is neither an existing file, an official hub id "
        f"({', '.join(sorted(HUB_IDS))}) nor a bundled model ({', '.join(sorted(BUNDLED))})",
        argument="checkpoint",
    )
