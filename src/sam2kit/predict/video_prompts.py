"""Prompts given on a video or stream frame, validated and converted to the model's prompt tensors.

Shared by :class:`VideoPredictor` and :class:`StreamPredictor`: clicks and boxes in frame pixels
(or normalised to [0, 1]) become :class:`PointPrompts` in model-input pixels; masks of any
resolution become a binary ``(1, 1, S, S)`` mask prompt.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.sam2 import PointPrompts
from .transforms import as_float_tensor, check_boxes, check_points, to_model_coords

#: Point labels the model uses for the two corners of a box.
BOX_CORNER_LABELS = (2, 3)


def point_prompts(
    points: Any,
    labels: Any,
    box: Any,
    frame_hw: tuple[int, int],
    model_size: int,
    device: torch.device,
    *,
    normalize_coords: bool = True,
    box_allowed: bool = True,
) -> PointPrompts:
    """One object's clicks and/or box on one frame as ``PointPrompts`` (coords ``(1, P, 2)``,
    labels ``(1, P)``), the box corners first.

    Args:
        points: ``(N, 2)`` (x, y) pixels of the frame, or [0, 1] with ``normalize_coords=False``.
        labels: ``(N,)``: 1 foreground, 0 background.
        box: ``(4,)`` XYXY in the same units.
        frame_hw: ``(H, W)`` of the frame. model_size: the model's input size S.
        box_allowed: False when the clicks are appended to earlier ones (a box must come first).
    Raises:
        ValueError: points without labels (or the reverse), no prompt at all, several objects' prompts,
            a box where none is allowed, or invalid coordinates (see ``check_points`` / ``check_boxes``).
        TypeError: non-numeric input.
    """
    if (points is None) != (labels is None):
        raise ValueError("points and labels must be given together")
    if points is None and box is None:
        raise ValueError("give points (with labels) and/or a box")
    pixels = not normalize_coords
    parts_xy, parts_labels = [], []
    if box is not None:
        if not box_allowed:
            raise ValueError("a box must come first: add it with clear_old_points=True")
        boxes = check_boxes(as_float_tensor(box, "box", device), frame_hw, pixels)
        if boxes.shape[0] != 1:
            raise ValueError("one box per object and call; got several")
        parts_xy.append(boxes.reshape(1, 2, 2))
        parts_labels.append(torch.tensor([BOX_CORNER_LABELS], dtype=torch.int32, device=device))
    if points is not None:
        coords = as_float_tensor(points, "points", device)
        label_values = torch.as_tensor(
            labels if isinstance(labels, torch.Tensor) else np.asarray(labels), device=device
        )
        coords, label_values = check_points(coords, label_values.to(torch.int32), frame_hw, pixels)
        if coords.shape[0] != 1:
            raise ValueError("points must have shape (N, 2) for one object")
        parts_xy.append(coords)
        parts_labels.append(label_values)
    coords = to_model_coords(torch.cat(parts_xy, dim=1), frame_hw, model_size, pixels)
    return PointPrompts(coords, torch.cat(parts_labels, dim=1))


def mask_prompt(mask: Any, model_size: int, device: torch.device) -> torch.Tensor:
    """An object's ``(H, W)`` mask (bool, or non-zero = object; any resolution) as a binary
    ``(1, 1, S, S)`` float mask prompt (antialiased resize, then threshold at 0.5).

    Raises:
        ValueError: not a non-empty 2D array.
    """
    mask_t = torch.as_tensor(mask if isinstance(mask, torch.Tensor) else np.asarray(mask), device=device)
    if mask_t.ndim != 2 or min(mask_t.shape) == 0:
        raise ValueError(f"mask must be a non-empty 2D (H, W) array, got shape {tuple(mask_t.shape)}")
    mask_in = mask_t.bool().float()[None, None]
    if tuple(mask_in.shape[-2:]) != (model_size, model_size):
        size = (model_size, model_size)
        mask_in = F.interpolate(mask_in, size=size, mode="bilinear", align_corners=False, antialias=True)
        mask_in = (mask_in >= 0.5).float()
    return mask_in
