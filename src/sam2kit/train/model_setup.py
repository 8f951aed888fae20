"""The model a run trains: its config (a preset, an official YAML, ``sam2kit-mini``; the input size
and the trunk's drop path set by the options), its starting weights, LoRA adapters, which weights
train, activation checkpointing, modes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import SAM2Config, list_presets
from ..model_spec import ModelSpec, ModelSpecError, load_model
from ..modeling.sam2 import SAM2Model
from .lora import add_lora
from .mini import MINI_NAME, mini_config
from .options import TrainOptions
from .parts import enable_activation_checkpointing, set_train_mode, set_trainable

__all__ = ["TrainingModel", "resolve_training_config", "build_training_model"]


@dataclass
class TrainingModel:
    """A model ready to train: ``model`` (train mode, frozen parts frozen), its ``config``, the
    ``trainable`` parameters, and the names of the LoRA-adapted layers (empty without LoRA)."""

    model: SAM2Model
    config: SAM2Config
    trainable: list[nn.Parameter]
    lora_layers: list[str]

    @property
    def num_trainable(self) -> int:
        return sum(param.numel() for param in self.trainable)

    @property
    def num_parameters(self) -> int:
        return sum(param.numel() for param in self.model.parameters())


def resolve_training_config(options: TrainOptions) -> SAM2Config:
    """The config ``options`` name, with their input size and the trunk's drop path.

    Raises:
        ModelSpecError: a checkpoint that is neither a file nor a hub id, an unknown config, or none
            and a checkpoint whose name does not tell it.
        FileNotFoundError: a YAML config that does not exist.
    """
    from ..build import resolve_config
    from ..config import HUB_IDS

    checkpoint = options.checkpoint
    if checkpoint is not None and not Path(checkpoint).expanduser().is_file() and checkpoint not in HUB_IDS:
        raise ModelSpecError(
            f"checkpoint {checkpoint!r} not found: it is neither an existing file nor an official hub id "
            f"({', '.join(sorted(HUB_IDS))})",
            argument="checkpoint",
        )
    if options.config == MINI_NAME:
        config = mini_config()
    else:
        try:
            config = resolve_config(options.config, options.checkpoint)
        except KeyError:
            raise ModelSpecError(
                f"config {options.config!r} is unknown; use {MINI_NAME}, a preset name "
                f"({', '.join(list_presets())}) or an official YAML file",
                argument="config",
            ) from None
        except ValueError as error:
            raise ModelSpecError(str(error), argument="config") from None
    if options.image_size is not None and options.image_size != config.image_size:
        try:
            config = config.replace(image_size=options.image_size)
        except ValueError as error:
            raise ModelSpecError(str(error), argument="image_size") from None
    trunk = dataclasses.replace(config.trunk, drop_path_rate=options.drop_path_rate)
    return config.replace(trunk=trunk)


def build_training_model(options: TrainOptions, device: torch.device) -> TrainingModel:
    """Build (from ``options.checkpoint``, or random weights drawn after seeding torch with
    ``options.seed``) and prepare the model of a run.

    Raises:
        ModelSpecError / FileNotFoundError / sam2kit.checkpoints.CheckpointError: as
        :func:`sam2kit.model_spec.load_model`.
    """
    config = resolve_training_config(options)
    torch.manual_seed(options.seed)
    loaded = load_model(ModelSpec(checkpoint=options.checkpoint, config=config, device=device, precision="fp32"))
    model = loaded.model
    lora_layers = add_lora(model, options.lora, options.lora_alpha) if options.lora else []
    trainable = set_trainable(model, options.train)
    if options.act_ckpt:
        enable_activation_checkpointing(
            model, encoder=options.encoder_trains, memory_attention=options.train in ("memory", "all")
        )
    set_train_mode(model, options.encoder_trains)
    return TrainingModel(model, config, trainable, lora_layers)
