"""What the training data sets share: samples, the data error, splits, per-item seeds, mask files,
the last step of every sample (augment, pick objects, resize to the model, normalise), and
:class:`SampleDataset`, the base class holding the options every data set takes."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from .augment import AugmentOptions, augment_sample, resize_sample

__all__ = [
    "DataError",
    "ImageSample",
    "ClipSample",
    "Split",
    "IMAGE_SUFFIXES",
    "split_names",
    "item_generator",
    "read_rgb",
    "read_label_map",
    "label_map_to_masks",
    "finish_sample",
    "SampleDataset",
]

Split = Literal["all", "train", "val"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DataError(ValueError):
    """A training file or folder is unusable; the one-line message names it and says what is expected."""


@dataclass
class ImageSample:
    """One training image at the model's resolution S.

    Attributes:
        image: ``(3, S, S)`` float32, normalised like the predictors' inputs (ImageNet mean / std).
        masks: ``(N, S, S)`` bool, one per object (N = 0 when every object vanished in the resize).
        object_ids: the N objects' values in the source (mask value, COCO annotation id, ...).
        name: the source item (file stem, COCO file name).
    """

    image: torch.Tensor
    masks: torch.Tensor
    object_ids: list[int]
    name: str


@dataclass
class ClipSample:
    """N objects on T consecutive frames at the model's resolution S.

    Attributes:
        frames: ``(T, 3, S, S)`` float32, normalised.
        masks: ``(T, N, S, S)`` bool; an object hidden on a frame has an empty mask there. Every
            object is visible on frame 0.
        object_ids: the objects' ids in the annotation PNGs.
        name: the video; frame_names: the T frames' file stems.
    """

    frames: torch.Tensor
    masks: torch.Tensor
    object_ids: list[int]
    name: str
    frame_names: list[str]


def split_names(names: Sequence[str], split: Split, val_fraction: float, seed: int = 0) -> list[str]:
    """The items of a train / validation split: a seeded shuffle of the sorted names puts the first
    ``round(val_fraction * n)`` (at least 1 when ``val_fraction`` > 0 and n > 1) in ``"val"``, the
    rest in ``"train"``; ``"all"`` keeps everything. Returns the names in sorted order.

    Raises:
        ValueError: an unknown split or a fraction outside [0, 1).
    """
    if split not in ("all", "train", "val"):
        raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ordered = sorted(names)
    if split == "all":
        return ordered
    count = round(val_fraction * len(ordered))
    if val_fraction > 0 and len(ordered) > 1:
        count = min(max(count, 1), len(ordered) - 1)
    order = np.random.default_rng(seed).permutation(len(ordered))
    val = {ordered[i] for i in order[:count]}
    return [n for n in ordered if (n in val) == (split == "val")]


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The random stream of one item in one epoch: independent of the worker that loads it."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def read_rgb(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of an image file (EXIF orientation is not applied: masks are drawn on
    the stored pixels). Raises DataError when unreadable."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))  # writable: torch wraps it
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the image ({error}); expected a JPEG or PNG file") from None


def read_label_map(path: Path) -> np.ndarray:
    """``(H, W)`` int64 object ids of a mask PNG: the value of an indexed / gray / 16-bit PNG, or for
    an RGB one, each distinct non-black colour. 0 is background. Raises DataError when unreadable."""
    try:
        with Image.open(path) as image:
            if image.mode in ("P", "L", "1", "I", "I;16", "I;16B", "I;16L"):
                return np.asarray(image).astype(np.int64)
            rgb = np.asarray(image.convert("RGB")).astype(np.int64)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the mask ({error}); expected a PNG file") from None
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def label_map_to_masks(ids: np.ndarray, object_ids: Sequence[int] | None = None) -> tuple[np.ndarray, list[int]]:
    """``(H, W)`` ids -> ``(N, H, W)`` bool masks of the given ids (default: every non-zero id)."""
    wanted = [int(v) for v in np.unique(ids) if v != 0] if object_ids is None else list(object_ids)
    if not wanted:
        return np.zeros((0, *ids.shape), dtype=bool), []
    return ids[None] == np.asarray(wanted)[:, None, None], wanted


def check_same_size(mask_path: Path, mask_hw: tuple[int, int], image_path: Path, image_hw: tuple[int, int]) -> None:
    """DataError when a mask and its image differ in size."""
    if tuple(mask_hw) != tuple(image_hw):
        raise DataError(
            f"{mask_path}: mask is {mask_hw[1]}x{mask_hw[0]} pixels but its image {image_path.name} is "
            f"{image_hw[1]}x{image_hw[0]}; expected the same size (width x height)"
        )


def warn_unpaired(what: str, names: Sequence[str], folder: Path) -> None:
    if names:
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        warnings.warn(f"{folder}: {len(names)} {what} ignored ({shown})", RuntimeWarning, stacklevel=3)


def finish_sample(
    frames: np.ndarray,
    masks: np.ndarray,
    object_ids: list[int],
    *,
    image_size: int,
    augment: AugmentOptions | None,
    max_objects: int | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Augment, keep the objects visible on frame 0 (at most ``max_objects``, a random choice),
    resize to ``image_size`` and normalise.

    Args:
        frames: ``(T, H, W, 3)`` uint8; masks: ``(T, N, H, W)`` bool.
    Returns:
        ``(T, 3, S, S)`` float32 frames, ``(T, N', S, S)`` bool masks, the N' ids kept. N' is 0
        when every object is too small to survive the resize: callers skip such samples.
    """
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    mask_tensor = torch.from_numpy(np.ascontiguousarray(masks))
    if augment is not None:
        images, mask_tensor = augment_sample(images, mask_tensor, image_size, augment, generator)
    else:
        images, mask_tensor = resize_sample(images, mask_tensor, image_size)
    visible = mask_tensor[0].flatten(1).any(dim=1).nonzero().flatten().tolist()
    if max_objects is not None and len(visible) > max_objects:
        order = torch.randperm(len(visible), generator=generator).tolist()
        visible = sorted(visible[i] for i in order[:max_objects])
    return images, mask_tensor[:, visible], [object_ids[i] for i in visible]


class SampleDataset(torch.utils.data.Dataset):
    """Base of the training data sets: the item names of one split, the options of the last step
    of every sample, and the per-item random streams.

    Subclasses index their source, call ``super().__init__`` with every item's name and their own
    arguments of the same names (in this order), and build samples with :meth:`image_sample` or
    :meth:`finish`, drawing randomness only from :meth:`generator` (so that an item's sample
    depends on ``seed``, the epoch and its index, not on the worker loading it).

    Args:
        names: every item of the source (split here, served in sorted order as :attr:`names`).
        image_size: the model's input size S (``config.image_size``).
        augment: augmentations (None: only resize and normalise, e.g. for validation).
        max_objects: at most this many objects per sample, a random choice each time (None: all).
        split / val_fraction / split_seed: which part of a seeded train / validation split to serve
            (see :func:`split_names`).
        seed: with :meth:`set_epoch` and the index, seeds each item's augmentation and choices.
    """

    def __init__(
        self,
        names: Sequence[str],
        image_size: int,
        augment: AugmentOptions | None,
        max_objects: int | None,
        split: Split,
        val_fraction: float,
        split_seed: int,
        seed: int,
    ) -> None:
        self.names = split_names(names, split, val_fraction, split_seed)
        self.image_size = image_size
        self.augment = augment
        self.max_objects = max_objects
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw other augmentations and random choices in the next epoch (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.names)

    def generator(self, index: int) -> torch.Generator:
        """The random stream of item ``index`` in the current epoch."""
        return item_generator(self.seed, self.epoch, index)

    def finish(
        self, frames: np.ndarray, masks: np.ndarray, object_ids: list[int], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """:func:`finish_sample` with this data set's options: ``(T, H, W, 3)`` uint8 frames and
        ``(T, N, H, W)`` bool masks -> ``(T, 3, S, S)`` float32, ``(T, N', S, S)`` bool, the N' ids."""
        return finish_sample(
            frames,
            masks,
            object_ids,
            image_size=self.image_size,
            augment=self.augment,
            max_objects=self.max_objects,
            generator=generator,
        )

    def image_sample(
        self, index: int, name: str, image: np.ndarray, masks: np.ndarray, object_ids: list[int]
    ) -> ImageSample:
        """Item ``index`` from its ``(H, W, 3)`` uint8 image and ``(N, H, W)`` bool masks."""
        frames, frame_masks, kept = self.finish(image[None], masks[None], object_ids, self.generator(index))
        return ImageSample(image=frames[0], masks=frame_masks[0], object_ids=kept, name=name)
