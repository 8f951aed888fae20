"""Where a person clicks on an object: its most interior pixel.

Shared by the held-out scoring (one click per object) and the training prompt simulation (which
can click there instead of uniformly inside the object), so both place the click the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["interior_points"]


def interior_points(masks: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` float (x, y) pixel indices of the pixel farthest inside each of ``masks``
    ``(B, H, W)`` (chessboard distance to the background; ties: the one nearest the mask's
    centroid, then the first in row-major order).

    Raises:
        ValueError: ``masks`` is not ``(B, H, W)``, or one of them is empty.
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (B, H, W), got {tuple(masks.shape)}")
    masks = masks.bool()
    batch, height, width = masks.shape
    if batch and not bool(masks.flatten(1).any(dim=1).all()):
        raise ValueError("cannot click on an empty mask")
    core = masks[:, None].float()
    current = core
    while True:  # erode until nothing is left; the last non-empty erosion of each mask is its core
        current = -F.max_pool2d(-F.pad(current, (1, 1, 1, 1), value=0.0), 3, stride=1)
        alive = current.flatten(1).any(dim=1)
        if not bool(alive.any()):
            break
        core = torch.where(alive[:, None, None, None], current, core)
    ys = torch.arange(height, device=masks.device, dtype=torch.float64)[:, None]
    xs = torch.arange(width, device=masks.device, dtype=torch.float64)[None, :]
    weights = masks.to(torch.float64)
    area = weights.sum(dim=(1, 2))
    cy = (weights * ys).sum(dim=(1, 2)) / area
    cx = (weights * xs).sum(dim=(1, 2)) / area
    distance = (ys - cy[:, None, None]) ** 2 + (xs - cx[:, None, None]) ** 2  # (B, H, W)
    distance = distance.masked_fill(core[:, 0] == 0, float("inf"))
    index = distance.flatten(1).argmin(dim=1)
    return torch.stack([index % width, index // width], dim=1).float()
