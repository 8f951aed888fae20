"""COCO instance segmentation: an annotation JSON (polygons, uncompressed or compressed RLE) with
its images folder. Needs pycocotools (``pip install 'sam2kit[coco]'``)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ...io.masks import coco_rle_to_mask
from .augment import DEFAULT_AUGMENT, AugmentOptions
from .common import DataError, ImageSample, SampleDataset, Split, read_rgb

__all__ = ["CocoDataset", "decode_segmentation"]


def _polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    try:
        from pycocotools import mask as mask_utils
    except ImportError as error:
        raise ImportError("COCO polygons need pycocotools: pip install 'sam2kit[coco]'") from error
    rles = mask_utils.frPyObjects([p for p in polygons if len(p) >= 6], height, width)
    if not rles:
        return np.zeros((height, width), dtype=bool)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygon list, or RLE dict with list or string counts) -> ``(H, W)`` bool.

    Raises:
        ValueError: an unknown format, or an RLE of another size.
    """
    if isinstance(segmentation, list):
        return _polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if [int(v) for v in segmentation["size"]] != [height, width]:
            raise ValueError(f"RLE size {segmentation['size']} differs from the image's [{height}, {width}]")
        return coco_rle_to_mask(segmentation)
    raise ValueError("expected a list of polygons or an RLE dict with 'size' and 'counts'")


class CocoDataset(SampleDataset):
    """Training images with the instance masks of a COCO JSON file.

    Args:
        annotations: the JSON file (``images``, ``annotations``; ``categories`` are not needed).
        images_dir: the folder the images' ``file_name`` entries are relative to.
        image_size / augment / max_objects / split / val_fraction / split_seed / seed: see
            :class:`~sam2kit.train.data.common.SampleDataset`.
        include_crowd: also use ``iscrowd`` annotations (off by default: they cover groups).
    Raises:
        DataError: an unreadable or malformed JSON, no image with an annotation; at load time: an
            image whose size differs from the JSON's, an annotation that decodes to an empty mask.
    """

    def __init__(
        self,
        annotations: str | Path,
        images_dir: str | Path,
        image_size: int,
        *,
        augment: AugmentOptions | None = DEFAULT_AUGMENT,
        max_objects: int | None = 3,
        split: Split = "all",
        val_fraction: float = 0.0,
        split_seed: int = 0,
        seed: int = 0,
        include_crowd: bool = False,
    ) -> None:
        self.annotations_path = Path(annotations)
        self.images_dir = Path(images_dir)
        try:
            doc = json.loads(self.annotations_path.read_text(encoding="utf-8"))
            images = {int(entry["id"]): entry for entry in doc["images"]}
            by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for ann in doc["annotations"]:
                if include_crowd or not ann.get("iscrowd", 0):
                    by_image[int(ann["image_id"])].append(ann)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(
                f"{self.annotations_path}: not a readable COCO instance JSON ({type(error).__name__}: {error}); "
                "expected {'images': [{id, file_name, height, width}], 'annotations': [{image_id, segmentation}]}"
            ) from None
        unknown = sorted(set(by_image) - set(images))
        if unknown:
            raise DataError(
                f"{self.annotations_path}: annotations refer to image id {unknown[0]}, which is not in 'images'"
            )
        keyed = {str(images[i]["file_name"]): i for i in by_image if by_image[i]}
        if not keyed:
            raise DataError(f"{self.annotations_path}: no image has an annotation; expected instance segmentations")
        super().__init__(list(keyed), image_size, augment, max_objects, split, val_fraction, split_seed, seed)
        self._image_ids = keyed
        self._images = images
        self._annotations = by_image

    def __getitem__(self, index: int) -> ImageSample:
        name = self.names[index]
        entry = self._images[self._image_ids[name]]
        image_path = self.images_dir / name
        if not image_path.is_file():
            raise DataError(
                f"{image_path}: image listed in {self.annotations_path.name} not found in {self.images_dir}"
            )
        image = read_rgb(image_path)
        height, width = int(entry.get("height", image.shape[0])), int(entry.get("width", image.shape[1]))
        if (height, width) != image.shape[:2]:
            raise DataError(
                f"{image_path}: image is {image.shape[1]}x{image.shape[0]} pixels but {self.annotations_path.name} "
                f"says {width}x{height}; expected the size of the annotations (width x height)"
            )
        masks: list[np.ndarray] = []
        object_ids: list[int] = []
        for ann in self._annotations[self._image_ids[name]]:
            try:
                mask = decode_segmentation(ann["segmentation"], height, width)
            except (ValueError, KeyError) as error:
                raise DataError(f"{self.annotations_path}: annotation {ann.get('id')} of {name}: {error}") from None
            if not mask.any():
                raise DataError(
                    f"{self.annotations_path}: annotation {ann.get('id')} of {name} is an empty mask; "
                    "expected a polygon or RLE covering at least one pixel"
                )
            masks.append(mask)
            object_ids.append(int(ann.get("id", len(object_ids) + 1)))
        return self.image_sample(index, name, image, np.stack(masks), object_ids)
