"""Image + mask folders: ``DIR/images/NAME.{jpg,jpeg,png}`` with ``DIR/masks/NAME.png``, where
each non-zero value of the mask (palette index, gray level, 16-bit value or RGB colour) is one
object."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .augment import DEFAULT_AUGMENT, AugmentOptions
from .common import (
    IMAGE_SUFFIXES,
    DataError,
    ImageSample,
    SampleDataset,
    Split,
    check_same_size,
    label_map_to_masks,
    read_label_map,
    read_rgb,
    warn_unpaired,
)

__all__ = ["ImageFolderDataset"]


class ImageFolderDataset(SampleDataset):
    """Training images with instance masks from a folder of pairs.

    Args:
        root: the folder holding ``images/`` and ``masks/``.
        image_size / augment / max_objects / split / val_fraction / split_seed / seed: see
            :class:`~sam2kit.train.data.common.SampleDataset`.
    Raises:
        DataError: no ``images/`` or ``masks/`` folder, or no image with a mask of the same name;
            at load time: a mask whose size differs from its image, an empty mask, unreadable files.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int,
        *,
        augment: AugmentOptions | None = DEFAULT_AUGMENT,
        max_objects: int | None = 3,
        split: Split = "all",
        val_fraction: float = 0.0,
        split_seed: int = 0,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        images_dir, masks_dir = self.root / "images", self.root / "masks"
        expected = "expected DIR/images/NAME.jpg (or .png) with DIR/masks/NAME.png"
        if not images_dir.is_dir() or not masks_dir.is_dir():
            raise DataError(f"{self.root}: no images/ and masks/ folders; {expected}")
        images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() == ".png"}
        paired = sorted(set(images) & set(masks))
        if not paired:
            raise DataError(f"{self.root}: no image/mask pairs ({len(images)} images, {len(masks)} masks); {expected}")
        warn_unpaired("images without a mask", sorted(set(images) - set(masks)), images_dir)
        warn_unpaired("masks without an image", sorted(set(masks) - set(images)), masks_dir)
        super().__init__(paired, image_size, augment, max_objects, split, val_fraction, split_seed, seed)
        self._images, self._masks = images, masks

    def __getitem__(self, index: int) -> ImageSample:
        name = self.names[index]
        image_path, mask_path = self._images[name], self._masks[name]
        ids = read_label_map(mask_path)
        with Image.open(image_path) as header:
            image_hw = (header.height, header.width)
        check_same_size(mask_path, ids.shape, image_path, image_hw)
        masks, object_ids = label_map_to_masks(ids)
        if not object_ids:
            raise DataError(f"{mask_path}: empty mask (every pixel is 0); expected each object as a non-zero value")
        return self.image_sample(index, name, read_rgb(image_path), masks, object_ids)
