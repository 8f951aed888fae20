"""sam2kit: SAM 2 (Segment Anything in Images and Videos), from scratch, in PyTorch."""

from .build import build_model, from_pretrained

__all__ = ["build_model", "from_pretrained"]
