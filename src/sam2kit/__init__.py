"""sam2kit: SAM 2 (Segment Anything in Images and Videos), from scratch, in PyTorch.

The public names are imported on first use, so ``import sam2kit`` (and the ``sam2kit --help`` of
the command line) imports no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .build import build_model, from_pretrained
    from .model_spec import LoadedModel, ModelSpec, load_model
    from .predict.automatic import MaskGenerator, SAM2AutomaticMaskGenerator
    from .predict.image import ImagePredictor
    from .predict.stream import CameraPredictor, StreamPredictor
    from .predict.video import VideoPredictor

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "build_model": ".build",
    "from_pretrained": ".build",
    "ModelSpec": ".model_spec",
    "LoadedModel": ".model_spec",
    "load_model": ".model_spec",
    "ImagePredictor": ".predict.image",
    "VideoPredictor": ".predict.video",
    "StreamPredictor": ".predict.stream",
    "CameraPredictor": ".predict.stream",
    "MaskGenerator": ".predict.automatic",
    "SAM2AutomaticMaskGenerator": ".predict.automatic",
}

__all__ = [
    "build_model",
    "from_pretrained",
    "ModelSpec",
    "LoadedModel",
    "load_model",
    "ImagePredictor",
    "VideoPredictor",
    "StreamPredictor",
    "CameraPredictor",
    "MaskGenerator",
    "SAM2AutomaticMaskGenerator",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562), then keep the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sam2kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
