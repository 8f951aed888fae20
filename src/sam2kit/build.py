"""``build_model``: the one place where a :class:`SAM2Config` becomes modules."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from .checkpoints import infer_config, infer_config_from_file, load_state_dict_checked, read_state_dict, resolve_device
from .config import HUB_IDS, SAM2Config, bundled_name, config_from_yaml, get_config, list_presets
from .modeling.sam2 import SAM2Model

#: The model built when neither a config nor a checkpoint is given.
DEFAULT_CONFIG = "sam2.1_hiera_tiny"


def build_model(
    config: str | Path | SAM2Config | None = None,
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    *,
    strict: bool = True,
    precision: str | torch.dtype = "fp32",
) -> SAM2Model:
    """Build a SAM 2 model in eval mode, optionally loading weights.

    Args:
        config: a preset name (``"sam2.1_hiera_tiny"``, ``"sam2_hiera_large"``, ...), a hub id,
            a :class:`SAM2Config`, or the path of an official YAML config. ``None``: the preset the
            checkpoint's weights reveal (their keys and shapes, whatever the file's name), or
            SAM 2.1 tiny without a checkpoint.
        checkpoint: an official ``.pt`` file (``{"model": state_dict}``) or a ``.safetensors`` file,
            with official keys or those of Hugging Face ``transformers``' SAM 2 models (any name).
            Without it the weights are randomly initialised.
        device: ``"cpu"``, ``"cuda"``, ``"mps"`` ...; default: the best available.
        strict: raise :class:`~sam2kit.checkpoints.CheckpointMismatchError` on any missing,
            unexpected or mis-shaped key.
        precision: ``"fp32"`` (default, exact), or the opt-in reduced precision ``"bf16"`` (CPUs with
            AVX-512 BF16 or AMX, and GPUs) or ``"fp16"`` (GPUs): the image encoder and the memory
            attention, nearly all the FLOPs, run in that dtype; the heads stay float32 (see
            :meth:`SAM2Model.set_precision`).
    Raises:
        KeyError: an unknown preset name or hub id. FileNotFoundError: a YAML config or a checkpoint
            that does not exist.
        ValueError: an unknown precision, fp16 on the CPU, or an unusable device.
        sam2kit.checkpoints.CheckpointError: an unreadable or non-SAM 2 checkpoint, or (no config)
            one whose weights match no preset (``CheckpointConfigError``).
    """
    if checkpoint is None:
        cfg = resolve_config(DEFAULT_CONFIG if config is None else config)
        model = _construct(cfg)
    else:
        state = read_state_dict(checkpoint)
        if config is None:
            cfg = infer_config(state, hint=Path(checkpoint).name, source=str(checkpoint))
        else:
            cfg = resolve_config(config)
        model = _construct(cfg)
        load_state_dict_checked(model, state, strict=strict, source=str(checkpoint), config_name=cfg.name)
        del state
    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    model = model.to(torch_device).eval()
    if dtype != torch.float32:
        model.set_precision(dtype)
    return model


#: File suffixes of checkpoints, stripped to read a preset name off an official file name.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")


def resolve_config(config: str | Path | SAM2Config | None, checkpoint: str | Path | None = None) -> SAM2Config:
    """The :class:`SAM2Config` that ``config`` names or, when it is ``None``, that ``checkpoint`` reveals.

    Args:
        config: a :class:`SAM2Config`, a preset name (``"sam2.1_hiera_tiny"``, ``"sam2.1_hiera_t"``),
            a hub id, or an official YAML file (an official YAML name such as
            ``configs/sam2.1/sam2.1_hiera_t.yaml`` names its preset even where the file is absent).
        checkpoint: a hub id, or a checkpoint file, whose weights' keys and shapes tell the preset
            (only its shapes are read); a path that does not exist can still name an official
            file (``sam2.1_hiera_tiny.pt``). Used only when ``config`` is ``None``.
    Raises:
        KeyError: an unknown preset name or hub id (the message lists the known ones).
        FileNotFoundError: a ``.yaml`` / ``.yml`` config that neither exists nor names a preset.
        ValueError: no config, and no checkpoint, or a missing checkpoint file whose name names none.
        sam2kit.checkpoints.CheckpointError: an unreadable or non-SAM 2 checkpoint file, or one whose
            weights match no preset (``CheckpointConfigError``, naming the shapes and the nearest).
    """
    if isinstance(config, SAM2Config):
        return config
    if config is not None:
        text = str(config)
        if not text.endswith((".yaml", ".yml")):
            return get_config(text)
        path = Path(text).expanduser()
        if path.is_file():
            return config_from_yaml(path)
        try:
            return get_config(text)
        except KeyError:
            raise FileNotFoundError(f"config file not found: {text}") from None
    if checkpoint is None:
        raise ValueError("config needed: there is no checkpoint to tell it from")
    if str(checkpoint) in HUB_IDS or bundled_name(checkpoint):
        return get_config(str(checkpoint))
    if Path(checkpoint).expanduser().is_file():
        return infer_config_from_file(Path(checkpoint).expanduser())
    file_name = Path(checkpoint).name
    stem = file_name
    for suffix in CHECKPOINT_SUFFIXES:
        stem = stem.removesuffix(suffix)
    try:
        return get_config(stem)
    except KeyError:
        raise ValueError(
            f"config needed: checkpoint {file_name!r} does not exist and its name names no preset "
            f"(official files are named like sam2.1_hiera_tiny.pt); give one of: {', '.join(list_presets())}, "
            "or an official YAML file"
        ) from None


#: Names accepted for ``precision``.
PRECISIONS = {
    "fp32": torch.float32, "float32": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}


def resolve_precision(precision: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"fp32"`` / ``"bf16"`` / ``"fp16"`` (or a dtype) -> the dtype, checked against the device.

    bf16 on a CPU without bf16 instructions (AVX-512 BF16 or AMX) still works but is emulated and
    slower than fp32, so it warns.

    Raises:
        ValueError: an unknown name, or fp16 on the CPU (no fast fp16 matmuls there; use bf16).
    """
    if isinstance(precision, torch.dtype):
        dtype = precision
        if dtype not in PRECISIONS.values():
            raise ValueError(f"unsupported precision {dtype}; use one of fp32, bf16, fp16")
    else:
        try:
            dtype = PRECISIONS[str(precision).lower()]
        except KeyError:
            raise ValueError(f"unknown precision {precision!r}; use one of fp32, bf16, fp16") from None
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError("fp16 is not supported on the CPU (its fp16 matmuls are slow); use bf16 or fp32")
    if device.type == "cpu" and dtype == torch.bfloat16 and not cpu_has_bf16():
        warnings.warn(
            "this CPU has no bf16 instructions (AVX-512 BF16 / AMX): bf16 runs emulated, slower than fp32",
            RuntimeWarning,
            stacklevel=3,
        )
    return dtype


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls natively: the ``avx512_bf16`` or ``amx_bf16`` flag
    on Linux x86; elsewhere what oneDNN reports."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _construct(cfg: SAM2Config) -> SAM2Model:
    """Random-weight model of ``cfg`` (the model builds its own sub-modules from the config)."""
    return SAM2Model(cfg)


def from_pretrained(
    model_id: str = "facebook/sam2.1-hiera-tiny",
    device: str | torch.device | None = None,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    precision: str | torch.dtype = "fp32",
) -> SAM2Model:
    """Build a model from a Hugging Face hub id (one of the eight official repositories) or the name
    of a model shipped in the package (``"sam2kit-mini"``, offline).

    A hub checkpoint is fetched once with huggingface_hub and cached. Offline and uncached, a
    :class:`~sam2kit.checkpoints.CheckpointDownloadError` says how to get the file or pass a local one.
    """
    from .checkpoints import bundled_checkpoint, download_checkpoint

    if bundled_name(model_id):
        return build_model(model_id, checkpoint=bundled_checkpoint(model_id), device=device, precision=precision)
    path = download_checkpoint(model_id, cache_dir=cache_dir, local_files_only=local_files_only)
    return build_model(model_id, checkpoint=path, device=device, precision=precision)
