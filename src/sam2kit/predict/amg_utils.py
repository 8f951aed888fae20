"""Building blocks of the automatic mask generator: point grids, crops, boxes, scores, RLE.

Each function gives the same numbers as its namesake in the reference `sam2.utils.amg`; where the
reference works one mask at a time, these work on whole batches of tensors.

Coordinates are pixels, boxes XYXY (x0, y0, x1, y1) unless a name says XYWH, crop boxes are
`[x0, y0, x1, y1]` Python int lists. RLEs are uncompressed COCO RLEs in column-major order:
``{"size": [H, W], "counts": [n_background, n_foreground, n_background, ...]}``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import ItemsView, Iterator, KeysView, Sequence
from itertools import product
from typing import Any

import numpy as np
import torch

from .postprocess import connected_components

__all__ = [
    "MaskData",
    "is_box_near_crop_edge",
    "box_xyxy_to_xywh",
    "batch_iterator",
    "mask_to_rle_pytorch",
    "rle_to_mask",
    "area_from_rle",
    "calculate_stability_score",
    "build_point_grid",
    "build_all_layer_point_grids",
    "generate_crop_boxes",
    "uncrop_boxes_xyxy",
    "uncrop_points",
    "uncrop_masks",
    "remove_small_regions",
    "remove_small_regions_batched",
    "coco_encode_rle",
    "batched_mask_to_box",
]

_Field = torch.Tensor | np.ndarray | list


class MaskData:
    """Named per-mask fields that share their first dimension: tensors, arrays or lists.

    `data["boxes"]`, `data["rles"] = [...]`, `del data["masks"]`, `"masks" in data`, `data.keys()`,
    `data.items()`; `filter` and `cat` edit in place. A field may be None (kept as None).
    """

    def __init__(self, **fields: _Field | None) -> None:
        self._fields: dict[str, _Field | None] = {}
        for name, value in fields.items():
            self[name] = value

    def __setitem__(self, name: str, value: _Field | None) -> None:
        if value is not None and not isinstance(value, (torch.Tensor, np.ndarray, list)):
            raise TypeError(
                f"MaskData field {name!r} must be a torch.Tensor, np.ndarray or list, "
                f"got {type(value).__name__}"
            )
        self._fields[name] = value

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __delitem__(self, name: str) -> None:
        del self._fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def keys(self) -> KeysView[str]:
        return self._fields.keys()

    def items(self) -> ItemsView[str, Any]:
        return self._fields.items()

    def filter(self, keep: torch.Tensor | np.ndarray | Sequence[int] | Sequence[bool]) -> None:
        """Keep the entries selected by `keep`: a bool mask or integer indices (in that order)."""
        keep_tensor = torch.as_tensor(keep)
        keep_list: list[int] | None = None  # for list fields; built once, on first need
        for name, value in self._fields.items():
            if value is None:
                continue
            if isinstance(value, torch.Tensor):
                self._fields[name] = value[keep_tensor.to(value.device)]
            elif isinstance(value, np.ndarray):
                self._fields[name] = value[keep_tensor.cpu().numpy()]
            else:
                if keep_list is None:
                    is_mask = keep_tensor.dtype == torch.bool
                    indices = keep_tensor.nonzero() if is_mask else keep_tensor
                    keep_list = indices.flatten().tolist()
                self._fields[name] = [value[i] for i in keep_list]

    def cat(self, other: MaskData) -> None:
        """Append `other`'s entries after this one's, field by field (copies new fields)."""
        for name, value in other.items():
            mine = self._fields.get(name)
            if mine is None:
                self._fields[name] = copy.deepcopy(value)
            elif isinstance(value, torch.Tensor):
                self._fields[name] = torch.cat([mine, value], dim=0)
            elif isinstance(value, np.ndarray):
                self._fields[name] = np.concatenate([mine, value], axis=0)
            elif isinstance(value, list):
                self._fields[name] = mine + copy.deepcopy(value)
            else:
                raise TypeError(f"MaskData field {name!r} has unsupported type {type(value)}")

    def to_numpy(self) -> None:
        """Move every tensor field to a float32 NumPy array, as the reference does."""
        for name, value in self._fields.items():
            if isinstance(value, torch.Tensor):
                self._fields[name] = value.detach().float().cpu().numpy()


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


def box_xyxy_to_xywh(box_xyxy: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """(..., 4) XYXY boxes -> new (..., 4) XYWH boxes, same type and dtype."""
    box_xywh = box_xyxy.clone() if isinstance(box_xyxy, torch.Tensor) else box_xyxy.copy()
    box_xywh[..., 2] = box_xyxy[..., 2] - box_xyxy[..., 0]
    box_xywh[..., 3] = box_xyxy[..., 3] - box_xyxy[..., 1]
    return box_xywh


def batch_iterator(batch_size: int, *args: Sequence[Any]) -> Iterator[list[Any]]:
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


def mask_to_rle_pytorch(masks: torch.Tensor) -> list[dict[str, Any]]:
    """Encode (B, H, W) bool masks as uncompressed column-major COCO RLEs.

    All change points of the batch are found in one pass and copied to the host once.
    """
    batch, height, width = masks.shape
    num_pixels = height * width
    flat = (masks != 0).transpose(1, 2).reshape(batch, num_pixels)  # column-major
    if num_pixels == 0:
        return [{"size": [height, width], "counts": []} for _ in range(batch)]
    mask_index, change = (flat[:, 1:] != flat[:, :-1]).nonzero(as_tuple=True)
    run_start = change + 1  # first pixel of each run after the first, sorted by mask
    num_changes = torch.bincount(mask_index, minlength=batch)
    # Run i of a mask ends where run i+1 starts; a mask's last run ends at num_pixels.
    is_first = torch.ones_like(mask_index, dtype=torch.bool)
    is_first[1:] = mask_index[1:] != mask_index[:-1]
    previous_start = torch.where(is_first, 0, run_start.roll(1))
    lengths_before_change = (run_start - previous_start).tolist()
    last_start = torch.zeros(batch, dtype=run_start.dtype, device=masks.device)
    last_start.scatter_reduce_(0, mask_index, run_start, reduce="amax")
    last_lengths = (num_pixels - last_start).tolist()
    starts_with_foreground = flat[:, 0].tolist()

    rles, offset = [], 0
    for i, n_changes in enumerate(num_changes.tolist()):
        counts = [0] if starts_with_foreground[i] else []
        counts.extend(lengths_before_change[offset : offset + n_changes])
        counts.append(last_lengths[i])
        offset += n_changes
        rles.append({"size": [height, width], "counts": counts})
    return rles


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode an uncompressed COCO RLE to an (H, W) bool array.

    Raises:
        ValueError: if the counts do not add up to H * W.
    """
    height, width = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != height * width:
        raise ValueError(f"RLE counts sum to {counts.sum()}, expected {height} * {width}")
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(width, height).transpose()


def area_from_rle(rle: dict[str, Any]) -> int:
    """Foreground pixel count of an uncompressed RLE."""
    return sum(rle["counts"][1::2])


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


def uncrop_points(points: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    """(..., 2) XY points from crop to image coordinates."""
    x0, y0 = crop_box[0], crop_box[1]
    return points + torch.tensor([x0, y0], device=points.device)


def uncrop_masks(
    masks: torch.Tensor, crop_box: list[int], orig_h: int, orig_w: int
) -> torch.Tensor:
    """(..., h, w) crop masks -> (..., orig_h, orig_w), zero outside the crop."""
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) == (0, 0, orig_w, orig_h):
        return masks
    return torch.nn.functional.pad(masks, (x0, orig_w - x1, y0, orig_h - y1), value=0)


def remove_small_regions(
    mask: np.ndarray, area_thresh: float, mode: str
) -> tuple[np.ndarray, bool]:
    """Fill small holes in, or drop small islands from, one mask (8-connectivity).

    `mode="holes"`: background components with area < `area_thresh` become foreground.
    `mode="islands"`: foreground components with area < `area_thresh` are dropped; if that would
    drop all of them, only the largest is kept (ties: the first in raster order of 2x2 blocks,
    matching OpenCV's numbering that the reference relies on).

    Uses scipy.ndimage when installed (fast on CPU), otherwise `connected_components`.

    Args:
        mask: (H, W) bool array.
        area_thresh: in pixels.
        mode: "holes" or "islands".

    Returns:
        The new mask ((H, W) bool; `mask` itself when unchanged) and whether it changed.

    Raises:
        ValueError: for an unknown `mode`.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    fill_holes = mode == "holes"
    binary = np.asarray(mask, dtype=bool)
    try:
        from scipy import ndimage
    except ImportError:
        new_masks, changed = remove_small_regions_batched(
            torch.from_numpy(binary)[None], area_thresh, mode
        )
        return (new_masks[0].numpy(), True) if bool(changed[0]) else (mask, False)

    working = ~binary if fill_holes else binary

    labels, num_regions = ndimage.label(working, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel(), minlength=num_regions + 1)[1:]
    is_small = sizes < area_thresh
    if not is_small.any():
        return mask, False
    if fill_holes:
        return binary | np.concatenate([[False], is_small])[labels], True
    keep = np.concatenate([[False], ~is_small])
    if not keep.any():
        largest = np.flatnonzero(sizes == sizes.max()) + 1
        if len(largest) > 1:
            largest = largest[np.argmin(_first_block(labels, largest))]
        keep[largest] = True
    return keep[labels], True


def _first_block(labels: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Index, in raster order of 2x2 pixel blocks, of the first block of each listed region."""
    rows, cols = np.indices(labels.shape)
    block = (rows // 2) * ((labels.shape[1] + 1) // 2) + cols // 2
    first = np.full(labels.max() + 1, block.size)
    np.minimum.at(first, labels.ravel(), block.ravel())
    return first[regions]


def remove_small_regions_batched(
    masks: torch.Tensor, area_thresh: float, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """`remove_small_regions` for a (B, H, W) bool tensor batch, on its device.

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


def coco_encode_rle(uncompressed_rle: dict[str, Any]) -> dict[str, Any]:
    """Compress an uncompressed RLE with pycocotools; counts become a str (JSON-friendly)."""
    try:
        from pycocotools import mask as mask_utils
    except ImportError as error:
        raise ImportError(
            "coco_rle output needs pycocotools: pip install 'sam2kit[coco]'"
        ) from error
    height, width = uncompressed_rle["size"]
    rle = mask_utils.frPyObjects(uncompressed_rle, height, width)
    rle["counts"] = rle["counts"].decode("utf-8")
    return rle


def batched_mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """XYXY boxes around (..., H, W) bool masks -> (..., 4) int64, inclusive pixel coordinates.

    Empty masks give [0, 0, 0, 0]. An input with no elements gives float32 zeros of shape
    (..., 4), as the reference does.
    """
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, device=masks.device)
    height, width = masks.shape[-2:]
    rows = torch.arange(height, device=masks.device)
    cols = torch.arange(width, device=masks.device)
    row_used = masks.any(dim=-1)  # (..., H)
    col_used = masks.any(dim=-2)  # (..., W)
    top = torch.where(row_used, rows, height).amin(dim=-1)
    bottom = torch.where(row_used, rows, -1).amax(dim=-1)
    left = torch.where(col_used, cols, width).amin(dim=-1)
    right = torch.where(col_used, cols, -1).amax(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    is_empty = row_used.any(dim=-1, keepdim=True).logical_not()
    return boxes.masked_fill(is_empty, 0)
