"""Which torch device to load weights onto: the best available, or a named one checked to exist."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> the best available device (cuda, then mps, then cpu); a name -> that device,
    checked to be present.

    Raises:
        ValueError: not a torch device name, or a CUDA / MPS device this machine does not have.
    """
    if device is not None:
        try:
            resolved = torch.device(device)
        except RuntimeError as err:
            raise ValueError(f"device {device!r} is not a torch device: {str(err).splitlines()[0]}") from None
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device}: no CUDA GPU is available to this torch ({torch.__version__})")
        mps = getattr(torch.backends, "mps", None)
        if resolved.type == "mps" and not (mps is not None and mps.is_available()):
            raise ValueError(f"device {device}: Apple MPS is not available on this machine")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
