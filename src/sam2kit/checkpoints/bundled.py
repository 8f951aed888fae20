"""Weights shipped inside the package (``sam2kit-mini``): found by name, offline."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..config import BUNDLED, bundled_name
from .errors import CheckpointError

__all__ = ["bundled_checkpoint"]


def bundled_checkpoint(name: str) -> Path:
    """Path of the weights of the bundled model ``name`` (``"sam2kit-mini"``; ``_`` for ``-`` too).

    Raises:
        KeyError: not the name of a bundled model (the message lists them).
        CheckpointError: the package was installed without the weights file.
    """
    key = bundled_name(name)
    if key is None:
        raise KeyError(f"unknown bundled model {name!r}; bundled: {', '.join(sorted(BUNDLED))}")
    path = Path(str(files("sam2kit") / "weights" / BUNDLED[key]))
    if not path.is_file():
        raise CheckpointError(f"the weights of {key} are missing from this installation (expected {path})")
    return path
