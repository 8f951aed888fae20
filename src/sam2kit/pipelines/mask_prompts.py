"""Mask prompts given as files: a PNG of the image (or video frame) size, non-zero = the object.

Read and checked before the model is loaded; for images also turned into the low-resolution logits
that :meth:`sam2kit.predict.image.ImagePredictor.predict` takes as ``mask_input`` (videos hand the
binary mask to :meth:`sam2kit.predict.video.VideoPredictor.add_new_mask`, which resizes it itself).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import ImageReadError

__all__ = ["MASK_PROMPT_LOGIT", "load_prompt_mask", "mask_to_low_res_logits"]

#: Logit given to object (+) and background (-) pixels of a mask prompt: the scale the model uses
#: when it takes a given mask as its own output (sigmoid(10) ~ 1 - 4.5e-5).
MASK_PROMPT_LOGIT = 10.0


def load_prompt_mask(path: str | Path, frame_hw: tuple[int, int], frame_name: str = "image") -> np.ndarray:
    """Read a mask prompt PNG as ``(H, W)`` bool (non-zero gray value / palette index = the object).

    Args:
        path: the PNG (any mode PIL reads; 8/16-bit gray, palette, RGB).
        frame_hw: ``(H, W)`` of the image or video frame the mask must match.
        frame_name: what the mask must match, for messages (``"image"``, ``"video frame"``).
    Raises:
        FileNotFoundError: no such file. ImageReadError: not a readable image.
        ValueError: its size differs from the frame's.
    """
    from ..io.masks import load_mask_png

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        mask = load_mask_png(path)
    except (OSError, ValueError) as error:
        raise ImageReadError(f"cannot read mask {path}: {error}") from None
    if mask.ndim != 2 or mask.shape != tuple(frame_hw):
        got = f"{mask.shape[1]}x{mask.shape[0]}" if mask.ndim == 2 else f"of shape {mask.shape}"
        raise ValueError(f"mask {path} is {got} pixels but the {frame_name} is {frame_hw[1]}x{frame_hw[0]} "
                         f"(width x height); give a mask PNG of the {frame_name}'s size")
    return mask


def mask_to_low_res_logits(mask: np.ndarray, low_res_hw: tuple[int, int]) -> np.ndarray:
    """A binary ``(H, W)`` mask as the ``(1, h, w)`` float32 logits of an image predictor's
    ``mask_input`` (``low_res_hw``: the prompt encoder's ``mask_input_size``, 256x256 at 1024 input).

    The model sees the image stretched to a square, so the mask is stretched the same way: an
    antialiased bilinear resize gives each low-res pixel its object fraction ``f`` in [0, 1], mapped
    linearly to ``(2 f - 1) * MASK_PROMPT_LOGIT`` (edges stay soft, inside / outside saturate).
    """
    import torch
    import torch.nn.functional as F

    fraction = torch.from_numpy(np.asarray(mask, dtype=bool).astype(np.float32))[None, None]  # (1, 1, H, W)
    if tuple(fraction.shape[-2:]) != low_res_hw:
        fraction = F.interpolate(fraction, size=low_res_hw, mode="bilinear", align_corners=False,
                                 antialias=True).clamp(0.0, 1.0)
    return ((2.0 * fraction[0] - 1.0) * MASK_PROMPT_LOGIT).numpy()  # (1, h, w)
