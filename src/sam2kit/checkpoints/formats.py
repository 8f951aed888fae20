"""Reading and writing checkpoint files: official ``.pt``, ``.safetensors``, and both in the
``transformers`` key layout.

A file's format is told from its first bytes, not its name, so a renamed file (``weights.bin``)
reads the same. Every reader returns the official / sam2kit key names; files written by Hugging
Face ``transformers`` are renamed through :mod:`sam2kit.checkpoints.transformers_keys`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError
from .transformers_keys import from_transformers, is_transformers_layout, to_transformers

__all__ = ["LAYOUTS", "read_state_dict", "save_checkpoint"]

#: Key layouts :func:`save_checkpoint` writes.
LAYOUTS = ("official", "transformers")

#: safetensors dtype names -> torch dtypes (what a header may declare).
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _is_safetensors(path: Path) -> bool:
    """A ``.safetensors`` name, or the format's start: an 8-byte header length, then ``{``."""
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        start = f.read(9)
    return len(start) == 9 and start[8:9] == b"{" and 0 < int.from_bytes(start[:8], "little") < 100_000_000


def _read_safetensors(path: Path, shapes_only: bool) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if not shapes_only:
                return {key: f.get_tensor(key) for key in f.keys()}
            state = {}
            for key in f.keys():
                tensor_slice = f.get_slice(key)
                kind = tensor_slice.get_dtype()
                if kind not in _SAFETENSORS_DTYPES:
                    raise CheckpointError(
                        f"checkpoint {path}: {key} holds {kind} values; SAM 2 weights are floating point "
                        "(float32, or float16 / bfloat16)"
                    )
                state[key] = torch.empty(tensor_slice.get_shape(), dtype=_SAFETENSORS_DTYPES[kind], device="meta")
            return state
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"cannot read safetensors checkpoint {path}: {first_line} (truncated or not a safetensors file?)"
        ) from err


def _read_torch(path: Path, shapes_only: bool) -> dict[str, torch.Tensor]:
    payload = None
    if shapes_only:  # memory-mapped: the shapes without reading the weights
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # old (non-zip) files cannot be mapped; the plain load below reports real errors
            payload = None
    if payload is None:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for corrupt / non-torch files
            first_line = str(err).splitlines()[0] if str(err) else ""
            raise CheckpointError(
                f"cannot read checkpoint {path}: {type(err).__name__}: {first_line}"
                " (expected an official SAM 2 .pt file or a .safetensors file)"
            ) from err
    if isinstance(payload, Mapping) and "model" in payload and isinstance(payload["model"], Mapping):
        payload = payload["model"]
    if not isinstance(payload, Mapping) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise CheckpointError(f"{path} does not hold a state dict (expected {{'model': state_dict}})")
    if shapes_only:
        return {key: torch.empty(value.shape, dtype=value.dtype, device="meta") for key, value in payload.items()}
    return dict(payload)


def read_state_dict(path: str | Path, *, shapes_only: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file, under the official key names, read safely (no pickle
    code execution).

    Accepted: an official ``.pt`` (``{"model": state_dict}``; a bare state dict too) and a
    ``.safetensors`` file (told from the content, whatever the name), each with official keys or
    with the keys of Hugging Face ``transformers``' SAM 2 models (renamed here).

    Args:
        shapes_only: return ``meta`` tensors (shapes and dtypes, no values): cheap even for the
            large checkpoints (a ``.pt`` is memory-mapped, a ``.safetensors`` header is read).
    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable or truncated, not a state dict, no tensors, or tensors that
            are not floating point.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    state = _read_safetensors(path, shapes_only) if _is_safetensors(path) else _read_torch(path, shapes_only)
    if not state:
        raise CheckpointError(f"checkpoint {path} holds no tensors")
    for key, value in state.items():
        if not value.is_floating_point():
            raise CheckpointError(
                f"checkpoint {path}: {key} holds {str(value.dtype).removeprefix('torch.')} values; SAM 2 weights "
                "are floating point (float32, or float16 / bfloat16)"
            )
    if is_transformers_layout(state):
        try:
            state = from_transformers(state)
        except ValueError as err:
            raise CheckpointError(f"checkpoint {path} (transformers layout): {err}") from err
    return state


def save_checkpoint(model: nn.Module, path: str | Path, *, layout: str = "official") -> None:
    """Write the model's weights atomically: ``.safetensors`` by that suffix, else a torch file
    ``{"model": state_dict}`` (the official layout).

    Args:
        layout: ``"official"`` (sam2kit's and the reference's key names) or ``"transformers"``
            (the key names of Hugging Face ``transformers``' ``Sam2VideoModel``).
    Raises:
        ValueError: an unknown layout.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown checkpoint layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if layout == "transformers":
        state = to_transformers(state)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, tmp)
        else:
            torch.save({"model": state} if layout == "official" else state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
