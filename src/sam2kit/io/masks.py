"""Mask file formats: binary PNG, DAVIS palette PNG, RLE (uncompressed and COCO), COCO JSON.

Conventions: a mask is an (H, W) bool numpy array; a stack of masks is (N, H, W). RLE runs are
in COCO's column-major (Fortran) order and start with a run of zeros (possibly empty). Every
writer is atomic (see `sam2kit.io.atomic`). pycocotools is imported only where used.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from sam2kit.io.atomic import atomic_path, save_json

if TYPE_CHECKING:
    import torch

__all__ = [
    "CocoWriter",
    "coco_rle_to_mask",
    "davis_palette",
    "decode_rle",
    "encode_rle",
    "load_mask_png",
    "load_palette_png",
    "mask_to_box_xywh",
    "masks_to_uncompressed_rle",
    "rle_area",
    "save_coco_json",
    "save_mask_png",
    "save_palette_png",
    "to_coco_rle",
    "uncompressed_to_coco_rle",
]

RLE = dict[str, Any]  # {"size": [h, w], "counts": list[int] | str}


def _require_pycocotools() -> Any:
    try:
        from pycocotools import mask as mask_utils
    except ImportError as error:
        raise ImportError(
            "COCO RLE needs pycocotools: pip install pycocotools  (or pip install 'sam2kit[coco]')"
        ) from error
    return mask_utils


def _check_masks(mask: np.ndarray, ndim: int, what: str = "mask") -> np.ndarray:
    shape = "(H, W)" if ndim == 2 else "(N, H, W)"
    if not isinstance(mask, np.ndarray):
        hint = "; convert a tensor with .cpu().numpy()" if hasattr(mask, "cpu") else ""
        raise TypeError(f"{what} must be a numpy bool array {shape}, got {type(mask).__name__}{hint}")
    if mask.dtype != np.bool_:
        raise TypeError(
            f"{what} must be a bool array {shape}, got dtype {mask.dtype}; threshold it first, e.g. mask > 0"
        )
    if mask.ndim != ndim:
        raise ValueError(f"{what} must have shape {shape}, got {mask.shape}")
    return mask


# ---- binary and palette PNG ---------------------------------------------------------------
def save_mask_png(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Save an (H, W) bool mask as an 8-bit grayscale PNG (0 / 255), atomically."""
    mask = _check_masks(mask, 2)
    with atomic_path(path) as temporary:
        Image.fromarray(mask.astype(np.uint8) * 255).save(temporary, format="PNG")
    return Path(path)


def load_mask_png(path: str | os.PathLike) -> np.ndarray:
    """Load a mask PNG as (H, W) bool: nonzero gray value / nonzero palette index = True."""
    with Image.open(path) as image:
        if image.mode in ("1", "L", "P", "I", "I;16"):
            values = np.array(image)
        else:
            values = np.array(image.convert("L"))
    return values > 0


@functools.lru_cache(maxsize=1)
def _palette_table() -> bytes:
    ids = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.uint8)
    for bit in range(8):  # bit-interleave: bits 3k, 3k+1, 3k+2 of the id go to R, G, B bit 7-k
        for channel in range(3):
            palette[:, channel] |= (((ids >> (3 * bit + channel)) & 1) << (7 - bit)).astype(np.uint8)
    return palette.tobytes()


def davis_palette() -> np.ndarray:
    """The (256, 3) uint8 Pascal VOC / DAVIS colormap: 0 black, 1 (128,0,0), 2 (0,128,0), ..."""
    return np.frombuffer(_palette_table(), dtype=np.uint8).reshape(256, 3).copy()


def save_palette_png(path: str | os.PathLike, label_map: np.ndarray) -> Path:
    """Save an (H, W) map of object ids 0..255 (0 = background) as an indexed DAVIS-palette PNG.

    Raises:
        TypeError: not an integer (or bool) array.
        ValueError: not 2-D, or ids outside 0..255.
    """
    if not isinstance(label_map, np.ndarray) or not (
        np.issubdtype(label_map.dtype, np.integer) or label_map.dtype == np.bool_
    ):
        kind = getattr(label_map, "dtype", type(label_map).__name__)
        raise TypeError(f"label_map must be an integer numpy array (H, W), got {kind}")
    if label_map.ndim != 2:
        raise ValueError(f"label_map must have shape (H, W), got {label_map.shape}")
    if label_map.size and (label_map.min() < 0 or label_map.max() > 255):
        raise ValueError(f"object ids must be in 0..255 for a palette PNG, got {label_map.min()}..{label_map.max()}")
    image = Image.fromarray(label_map.astype(np.uint8))
    image.putpalette(_palette_table())
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG")
    return Path(path)


def load_palette_png(path: str | os.PathLike) -> np.ndarray:
    """Load an (H, W) uint8 map of object ids from an indexed PNG (or a gray one, or an RGB one
    drawn with the DAVIS palette).

    Raises:
        ValueError: an RGB image containing colours that are not in the DAVIS palette.
    """
    with Image.open(path) as image:
        if image.mode in ("P", "L"):
            return np.array(image, dtype=np.uint8)
        rgb = np.array(image.convert("RGB")).astype(np.int64)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    palette = davis_palette().astype(np.int64)
    palette_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    order = np.argsort(palette_codes)
    position = np.clip(np.searchsorted(palette_codes[order], codes), 0, 255)
    found = palette_codes[order][position] == codes
    if not found.all():
        raise ValueError(f"{path}: RGB colours that are not in the DAVIS palette; expected an indexed PNG")
    return order[position].astype(np.uint8)


# ---- RLE ------------------------------------------------------------------------------------
def _change_point_keys(masks: Any) -> np.ndarray:
    """Sorted keys n * H * W + p for every column-major pixel p > 0 of mask n that differs from
    pixel p - 1; `masks` is (N, H, W) bool, numpy or torch (any device).

    Works on the untransposed layout (a transposed copy costs more than everything else): runs
    change either inside a column (vertical neighbours) or from the bottom of column c to the
    top of column c + 1. Only the few change points are sorted.
    """
    _, height, width = masks.shape
    total = height * width
    if isinstance(masks, np.ndarray):
        vertical = np.flatnonzero(masks[:, 1:, :] != masks[:, :-1, :])  # (N, H-1, W) raveled
        across = np.flatnonzero(masks[:, 0, 1:] != masks[:, -1, :-1])  # (N, W-1) raveled
        mask_v, rest = np.divmod(vertical, (height - 1) * width) if height > 1 else (vertical, vertical)
        row, column = np.divmod(rest, width)
        mask_a, column_a = np.divmod(across, width - 1) if width > 1 else (across, across)
        keys = np.concatenate([mask_v * total + column * height + row + 1, mask_a * total + (column_a + 1) * height])
        keys.sort()
        return keys
    import torch

    mask_v, row, column = (masks[:, 1:, :] != masks[:, :-1, :]).nonzero(as_tuple=True)
    mask_a, column_a = (masks[:, 0, 1:] != masks[:, -1, :-1]).nonzero(as_tuple=True)
    key_tensor = torch.cat([mask_v * total + column * height + row + 1, mask_a * total + (column_a + 1) * height])
    return key_tensor.sort().values.cpu().numpy()


def _runs_from_change_points(keys: np.ndarray, first_pixels: np.ndarray, height: int, width: int) -> list[RLE]:
    total = height * width
    mask_ids, positions = np.divmod(keys, total)
    bounds = np.searchsorted(mask_ids, np.arange(len(first_pixels) + 1))
    rles = []
    for index, first_pixel in enumerate(first_pixels):
        edges = np.concatenate(([0], positions[bounds[index] : bounds[index + 1]], [total]))
        counts = np.diff(edges)
        if first_pixel:
            counts = np.concatenate(([0], counts))
        rles.append({"size": [height, width], "counts": counts.tolist()})
    return rles


def encode_rle(mask: np.ndarray) -> RLE:
    """Uncompressed COCO RLE of an (H, W) bool mask: {"size": [h, w], "counts": [ints]}."""
    mask = _check_masks(mask, 2)
    height, width = mask.shape
    if mask.size == 0:
        return {"size": [height, width], "counts": []}
    return _runs_from_change_points(_change_point_keys(mask[None]), mask[:1, 0], height, width)[0]


def decode_rle(rle: RLE) -> np.ndarray:
    """(H, W) bool mask of an RLE; `counts` may be a list (uncompressed) or a COCO string.

    Raises:
        ValueError: the runs do not add up to h * w.
    """
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        return coco_rle_to_mask(rle)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != height * width or (counts < 0).any():
        raise ValueError(f"RLE counts sum to {counts.sum()} but size {height}x{width} needs {height * width}")
    values = np.arange(counts.size) % 2 == 1
    return np.ascontiguousarray(np.repeat(values, counts).reshape(width, height).T)


def rle_area(rle: RLE) -> int:
    """Number of foreground pixels of an RLE (uncompressed or COCO string)."""
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        return int(_require_pycocotools().area(_coco_bytes(rle)))
    return int(sum(counts[1::2]))


def masks_to_uncompressed_rle(masks: torch.Tensor) -> list[RLE]:
    """Uncompressed RLEs of a (N, H, W) bool tensor (any device), one dict per mask.

    All change points are found in one vectorised pass (on the tensor's device; CPU tensors go
    through numpy, whose nonzero is several times faster); only the per-mask split is Python.
    """
    import torch

    if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool or masks.ndim != 3:
        raise TypeError(
            "masks must be a bool tensor (N, H, W), got "
            f"{getattr(masks, 'dtype', type(masks).__name__)} {tuple(getattr(masks, 'shape', ()))}"
        )
    num_masks, height, width = masks.shape
    if num_masks == 0:
        return []
    if height * width == 0:
        return [{"size": [height, width], "counts": []} for _ in range(num_masks)]
    if masks.device.type == "cpu":
        array = masks.numpy()
        return _runs_from_change_points(_change_point_keys(array), array[:, 0, 0], height, width)
    first_pixels = masks[:, 0, 0].cpu().numpy()
    return _runs_from_change_points(_change_point_keys(masks), first_pixels, height, width)


def _coco_bytes(rle: RLE) -> RLE:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def to_coco_rle(masks: np.ndarray) -> RLE | list[RLE]:
    """Compressed COCO RLE via pycocotools, with `counts` as str (JSON-ready).

    (H, W) bool -> one dict; (N, H, W) bool -> a list of N dicts.
    """
    mask_utils = _require_pycocotools()
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        mask = _check_masks(masks, 2)
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    masks = _check_masks(masks, 3, "masks")
    if masks.shape[0] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")} for rle in rles]


def uncompressed_to_coco_rle(rle: RLE) -> RLE:
    """Compress an uncompressed RLE (list counts) to a COCO RLE with str counts."""
    height, width = (int(v) for v in rle["size"])
    coco = _require_pycocotools().frPyObjects(rle, height, width)
    return {"size": [height, width], "counts": coco["counts"].decode("ascii")}


def coco_rle_to_mask(rle: RLE) -> np.ndarray:
    """(H, W) bool mask of a COCO RLE (str/bytes counts, or list counts)."""
    if not isinstance(rle["counts"], (str, bytes)):
        return decode_rle(rle)
    return _require_pycocotools().decode(_coco_bytes(rle)).astype(bool)


def mask_to_box_xywh(mask: np.ndarray) -> list[int]:
    """Tight box [x, y, w, h] in pixels, COCO convention (w = x_max - x_min + 1); empty -> zeros."""
    mask = _check_masks(mask, 2)
    columns = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    if columns.size == 0:
        return [0, 0, 0, 0]
    x0, x1, y0, y1 = int(columns[0]), int(columns[-1]), int(rows[0]), int(rows[-1])
    return [x0, y0, x1 - x0 + 1, y1 - y0 + 1]


# ---- COCO JSON ------------------------------------------------------------------------------
class CocoWriter:
    """Build a COCO instance-segmentation dict ("images", "annotations", "categories").

    Annotations carry segmentation as COCO RLE with str counts, integer area, bbox [x, y, w, h],
    iscrowd 0, optional score and any extra per-mask numbers (e.g. predicted_iou). The result
    loads with `pycocotools.coco.COCO`.
    """

    def __init__(self, categories: Sequence[str] = ("object",)) -> None:
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.categories = [{"id": index + 1, "name": name} for index, name in enumerate(categories)]
        self._image_sizes: dict[int, tuple[int, int]] = {}

    def add_image(self, file_name: str, height: int, width: int, *, image_id: int | None = None) -> int:
        """Register an image; returns its id (1, 2, ... unless given)."""
        image_id = len(self.images) + 1 if image_id is None else int(image_id)
        if image_id in self._image_sizes:
            raise ValueError(f"image id {image_id} is already used")
        self.images.append({"id": image_id, "file_name": str(file_name), "height": int(height), "width": int(width)})
        self._image_sizes[image_id] = (int(height), int(width))
        return image_id

    def add_masks(
        self,
        image_id: int,
        masks: np.ndarray,
        *,
        scores: Sequence[float] | np.ndarray | None = None,
        category_id: int = 1,
        **extra: Sequence[float] | np.ndarray,
    ) -> list[int]:
        """Add (N, H, W) (or one (H, W)) bool masks of image `image_id`; returns annotation ids.

        `scores` and each `extra` sequence (e.g. predicted_iou=..., stability_score=...) give one
        number per mask.
        """
        if image_id not in self._image_sizes:
            raise KeyError(f"unknown image id {image_id}; call add_image first")
        if isinstance(masks, np.ndarray) and masks.ndim == 2:
            masks = masks[None]
        masks = _check_masks(masks, 3, "masks")
        if masks.shape[1:] != self._image_sizes[image_id]:
            expected = self._image_sizes[image_id]
            raise ValueError(f"masks are {masks.shape[1:]} but image {image_id} is {expected} (H, W)")
        columns = {"score": scores, **extra} if scores is not None else dict(extra)
        for name, values in columns.items():
            if len(values) != masks.shape[0]:
                raise ValueError(f"{name} has {len(values)} values for {masks.shape[0]} masks")
        ids: list[int] = []
        for index, rle in enumerate(to_coco_rle(masks)):
            annotation: dict[str, Any] = {
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": int(category_id),
                "segmentation": rle,
                "area": int(masks[index].sum()),
                "bbox": mask_to_box_xywh(masks[index]),
                "iscrowd": 0,
            }
            annotation.update({name: float(values[index]) for name, values in columns.items()})
            self.annotations.append(annotation)
            ids.append(annotation["id"])
        return ids

    def to_dict(self) -> dict[str, Any]:
        return {"images": list(self.images), "annotations": list(self.annotations), "categories": list(self.categories)}

    def save(self, path: str | os.PathLike) -> Path:
        return save_coco_json(path, self.to_dict())


def save_coco_json(path: str | os.PathLike, coco: dict[str, Any]) -> Path:
    """Write a COCO dict atomically (compact: RLE strings make indentation pointless)."""
    missing = [key for key in ("images", "annotations", "categories") if key not in coco]
    if missing:
        raise ValueError(f"COCO dict is missing keys {missing}")
    return save_json(path, coco, indent=None)
