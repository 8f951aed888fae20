"""The automatic mask generator's plan and measures: point grids, crop boxes, the crop-edge test,
mask boxes, stability scores and small-region clean-up.

Each function gives the same numbers as its namesake in the reference `sam2.utils.amg`; where the
reference works one mask at a time, these work on whole batches of tensors. (Its RLE helpers have
one home in sam2kit: `sam2kit.io.masks`.)

Coordinates are pixels, boxes XYXY (x0, y0, x1, y1), crop boxes `[x0, y0, x1, y1]` Python int lists.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import product
from typing import Any

import numpy as np
import torch

from .postprocess import connected_components

__all__ = [
    "is_box_near_crop_edge",
    "batch_iterator",
    "calculate_stability_score",
    "build_point_grid",
    "build_all_layer_point_grids",
    "check_point_grids",
    "generate_crop_boxes",
    "uncrop_boxes_xyxy",
    "remove_small_regions_batched",
    "batched_mask_to_box",
    "boxes_from_extent",
]

def is_box_near_crop_edge(
    boxes: torch.Tensor, crop_box: list[int], orig_box: list[int], atol: float = 20.0
) -> torch.Tensor:
    """Which boxes touch (within `atol` px) an edge of their crop that is not an image edge.

    Args:
        boxes: (N, 4) XYXY boxes in crop coordinates.
        crop_box: the crop, XYXY in image pixels.
        orig_box: the whole image, XYXY (usually `[0, 0, W, H]`).
        atol: distance in pixels that counts as touching.

    Returns:
        (N,) bool.
    """
    crop = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    image = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    boxes = uncrop_boxes_xyxy(boxes, crop_box).float()
    near_crop = torch.isclose(boxes, crop, atol=atol, rtol=0)
    near_image = torch.isclose(boxes, image, atol=atol, rtol=0)
    return (near_crop & ~near_image).any(dim=-1)


def batch_iterator(batch_size: int, *args: Sequence[Any] | np.ndarray | torch.Tensor) -> Iterator[list[Any]]:
    """Yield `[arg[i:i + batch_size] for arg in args]` over equal-length sequences.

    Raises:
        ValueError: if no sequence is given, their lengths differ, or `batch_size` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not args or any(len(arg) != len(args[0]) for arg in args):
        raise ValueError("batch_iterator needs one or more sequences of the same length")
    for start in range(0, len(args[0]), batch_size):
        yield [arg[start : start + batch_size] for arg in args]


def calculate_stability_score(
    masks: torch.Tensor, mask_threshold: float, threshold_offset: float
) -> torch.Tensor:
    """IoU between a mask thresholded at `mask_threshold +- threshold_offset`.

    The high-threshold mask lies inside the low-threshold one, so the IoU is a ratio of pixel
    counts. Rows are summed in int16 and images in int32, as the reference does, to avoid an
    int64 copy of the masks (rows must be shorter than 32768 px).

    Args:
        masks: (..., H, W) logits.

    Returns:
        (...) float32; NaN where the low-threshold mask is empty.
    """
    def area(binary: torch.Tensor) -> torch.Tensor:
        return binary.sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)

    intersections = area(masks > (mask_threshold + threshold_offset))
    unions = area(masks > (mask_threshold - threshold_offset))
    return intersections / unions


def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n_per_side**2, 2) float64 points (x, y) of a regular grid in [0, 1]^2, x varying fastest,
    centred in their cells (the first is at 1 / (2 * n_per_side)).

    Raises:
        ValueError: if `n_per_side` < 1.
    """
    if n_per_side < 1:
        raise ValueError(f"n_per_side must be >= 1, got {n_per_side}")
    half_cell = 1 / (2 * n_per_side)
    coords = np.linspace(half_cell, 1 - half_cell, n_per_side)
    xs, ys = np.meshgrid(coords, coords)
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(
    n_per_side: int, n_layers: int, scale_per_layer: int
) -> list[np.ndarray]:
    """Point grids for crop layers 0..n_layers: layer i has int(n_per_side / scale**i) per side."""
    return [
        build_point_grid(int(n_per_side / (scale_per_layer**layer)))
        for layer in range(n_layers + 1)
    ]


def check_point_grids(point_grids: Any, crop_n_layers: int) -> list[np.ndarray]:
    """Validate explicit point grids: one (N_i, 2) array of (x, y) in [0, 1] per crop layer.

    Returns them as float64 arrays.

    Raises:
        TypeError: not a list of arrays.
        ValueError: fewer grids than layers, a grid that is empty, not (N, 2), or outside [0, 1].
    """
    if isinstance(point_grids, np.ndarray) or not isinstance(point_grids, Sequence):
        raise TypeError("point_grids must be a list of (N, 2) arrays, one per crop layer")
    if len(point_grids) < crop_n_layers + 1:
        raise ValueError(
            f"point_grids has {len(point_grids)} grid(s) but crop_n_layers={crop_n_layers} needs "
            f"{crop_n_layers + 1} (one per layer, layer 0 = the whole image)"
        )
    grids = []
    for layer, grid in enumerate(point_grids):
        array = np.asarray(grid, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
            raise ValueError(
                f"point_grids[{layer}] must be a non-empty (N, 2) array of (x, y), got shape {array.shape}"
            )
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError(f"point_grids[{layer}] must hold normalised coordinates in [0, 1]")
        grids.append(array)
    return grids


def generate_crop_boxes(
    im_size: tuple[int, ...], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes for the multi-crop mask generator.

    Layer 0 is the whole image; layer i >= 1 tiles it with (2**i)**2 overlapping crops, x-major.

    Args:
        im_size: (H, W) of the image.
        n_layers: number of crop layers after the full image.
        overlap_ratio: overlap between neighbouring crops, as a fraction of the short side
            scaled by 2 / crops_per_side.

    Returns:
        crop boxes as `[x0, y0, x1, y1]` int lists, and the layer of each.
    """
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    boxes, layers = [[0, 0, im_w, im_h]], [0]
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = int(math.ceil((overlap * (per_side - 1) + im_w) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + im_h) / per_side))
        x0s = [int((crop_w - overlap) * i) for i in range(per_side)]
        y0s = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(x0s, y0s):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(layer)
    return boxes, layers


def uncrop_boxes_xyxy(boxes: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    """(..., 4) XYXY boxes from crop to image coordinates."""
    x0, y0 = crop_box[0], crop_box[1]
    return boxes + torch.tensor([x0, y0, x0, y0], device=boxes.device)


def remove_small_regions_batched(
    masks: torch.Tensor, area_thresh: float, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill small holes in, or drop small islands from, a (B, H, W) bool batch of masks (8-connected
    components, on the masks' device): the reference's `remove_small_regions`, batched.

    `mode="holes"`: background components with area < `area_thresh` pixels become foreground.
    `mode="islands"`: foreground components with area < `area_thresh` are dropped; if that would
    drop all of them, only the largest is kept (ties: the first in raster order of 2x2 blocks,
    matching the OpenCV numbering the reference relies on).

    Returns:
        (B, H, W) bool masks (unchanged masks equal their input) and (B,) bool "changed" flags.

    Raises:
        ValueError: for an unknown `mode` or a non-3-D `masks`.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    if masks.ndim != 3:
        raise ValueError(f"masks must be (B, H, W), got {tuple(masks.shape)}")
    masks = masks != 0
    working = ~masks if mode == "holes" else masks
    labels, areas = connected_components(working[:, None])
    labels, areas = labels[:, 0], areas[:, 0]
    is_small = working & (areas < area_thresh)
    changed = is_small.flatten(1).any(dim=1)
    if mode == "holes":
        return masks | is_small, changed
    kept = working & ~is_small
    # Where every island is small, keep the largest (lowest label = first in 2x2-block order).
    largest_area = areas.flatten(1).amax(dim=1).view(-1, 1, 1)
    no_label = torch.iinfo(labels.dtype).max
    candidates = torch.where(working & (areas == largest_area), labels, no_label)
    largest_label = candidates.flatten(1).amin(dim=1).view(-1, 1, 1)
    only_largest = working & (labels == largest_label)
    nothing_kept = ~kept.flatten(1).any(dim=1).view(-1, 1, 1)
    return torch.where(nothing_kept, only_largest, kept), changed


def batched_mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """XYXY boxes around (..., H, W) bool masks -> (..., 4) int64, inclusive pixel coordinates.

    Empty masks give [0, 0, 0, 0]. An input with no elements gives float32 zeros of shape
    (..., 4), as the reference does.
    """
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, device=masks.device)
    return boxes_from_extent(masks.any(dim=-1), masks.any(dim=-2))


def boxes_from_extent(rows_used: torch.Tensor, cols_used: torch.Tensor) -> torch.Tensor:
    """XYXY int64 boxes (..., 4) spanning the used rows (..., H) and columns (..., W) (bool);
    [0, 0, 0, 0] where no row is used."""
    height, width = rows_used.shape[-1], cols_used.shape[-1]
    rows = torch.arange(height, device=rows_used.device)
    cols = torch.arange(width, device=cols_used.device)
    top = torch.where(rows_used, rows, height).amin(dim=-1)
    bottom = torch.where(rows_used, rows, -1).amax(dim=-1)
    left = torch.where(cols_used, cols, width).amin(dim=-1)
    right = torch.where(cols_used, cols, -1).amax(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    return boxes.masked_fill(~rows_used.any(dim=-1, keepdim=True), 0)
