"""From ``--data`` to the training and validation sets: the layout (told from the files, or given),
the split, augmentation.

Layouts: an image folder (``DIR/images`` + ``DIR/masks``), COCO (a JSON file, or a folder holding
exactly one JSON file, with its images), DAVIS / SA-V videos (``DIR/JPEGImages*`` +
``DIR/Annotations*``). A folder with both images and videos (as the synthetic set writes) is read
as videos for ``--train memory`` and as images otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data import CocoDataset, DataError, ImageFolderDataset, VideoFolderDataset
from .data.augment import DEFAULT_AUGMENT
from .data.common import Split
from .options import TrainOptions

__all__ = ["TrainingData", "detect_format", "open_image_data", "open_training_data"]

_EXPECTED = (
    "expected DIR/images + DIR/masks (image + mask pairs), a COCO JSON file (or a folder with one), "
    "or DIR/JPEGImages + DIR/Annotations (DAVIS / SA-V videos)"
)


@dataclass
class TrainingData:
    """The data of a run.

    Attributes:
        kind: ``"images"`` (samples are :class:`~sam2kit.train.data.ImageSample`) or ``"video"``
            (:class:`~sam2kit.train.data.ClipSample`).
        train / val: the data sets (``val`` None without a validation split).
        summary: what run.json records about them.
    """

    kind: str
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset | None
    summary: dict[str, Any] = field(default_factory=dict)


def _has_videos(root: Path) -> bool:
    return any(p.is_dir() for p in root.glob("JPEGImages*")) and any(p.is_dir() for p in root.glob("Annotations*"))


def _json_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.json") if p.is_file())


def detect_format(data: Path, train: str) -> str:
    """``"images"``, ``"coco"`` or ``"video"`` for the path ``data``.

    Raises:
        DataError: the path does not exist or holds none of the layouts.
    """
    if data.is_file():
        if data.suffix.lower() == ".json":
            return "coco"
        raise DataError(f"{data}: not a folder or a COCO .json file; {_EXPECTED}")
    if not data.is_dir():
        raise DataError(f"{data}: no such file or folder; {_EXPECTED}")
    images = (data / "images").is_dir() and (data / "masks").is_dir()
    videos = _has_videos(data)
    if videos and (train == "memory" or not images):
        return "video"
    if images:
        return "images"
    if len(_json_files(data)) == 1:
        return "coco"
    raise DataError(f"{data}: no training data found; {_EXPECTED}")


def _coco_paths(data: Path, images_dir: str | None) -> tuple[Path, Path]:
    if data.is_dir():
        found = _json_files(data)
        if len(found) != 1:
            raise DataError(f"{data}: expected exactly one COCO .json file in the folder, found {len(found)}")
        annotations = found[0]
    else:
        annotations = data
    if images_dir is not None:
        return annotations, Path(images_dir)
    beside = annotations.parent / "images"
    return annotations, beside if beside.is_dir() else annotations.parent


def open_training_data(options: TrainOptions, image_size: int) -> TrainingData:
    """The training and validation sets that ``options`` describe, at the model's input size.

    Raises:
        DataError: missing or malformed data (one line naming the file and what is expected).
    """
    data = Path(options.data).expanduser()
    kind = options.data_format if options.data_format != "auto" else detect_format(data, options.train)
    if options.train == "memory" and kind != "video":
        raise DataError(
            f"{data}: --train memory learns from videos (memory is built across frames); expected "
            "DIR/JPEGImages + DIR/Annotations (DAVIS / SA-V layout)"
        )
    augment = DEFAULT_AUGMENT if options.augments else None
    common: dict[str, Any] = dict(
        val_fraction=options.val_fraction, split_seed=options.seed, seed=options.seed
    )
    split: Split = "train" if options.val_fraction > 0 else "all"
    train: Any
    val: Any
    summary: dict[str, Any] = {"path": str(data), "format": kind, "augment": augment is not None}
    if kind == "video":
        train = VideoFolderDataset(
            data, image_size, num_frames=options.num_frames, augment=augment,
            max_objects=options.max_objects, split=split, **common,
        )
        val = (
            VideoFolderDataset(data, image_size, num_frames=options.num_frames, augment=None, max_objects=None,
                               split="val", **common)
            if options.val_fraction > 0 else None
        )
        summary["clip_frames"] = options.num_frames
    elif kind == "images":
        train = ImageFolderDataset(data, image_size, augment=augment, max_objects=options.max_objects,
                                   split=split, **common)
        val = (
            ImageFolderDataset(data, image_size, augment=None, max_objects=None, split="val", **common)
            if options.val_fraction > 0 else None
        )
    elif kind == "coco":
        annotations, images_dir = _coco_paths(data, options.coco_images)
        train = CocoDataset(annotations, images_dir, image_size, augment=augment,
                            max_objects=options.max_objects, split=split, **common)
        val = (
            CocoDataset(annotations, images_dir, image_size, augment=None, max_objects=None, split="val", **common)
            if options.val_fraction > 0 else None
        )
        summary["images_dir"] = str(images_dir)
    else:
        raise ValueError(f"unknown data format {kind!r}")
    kind_of_samples = "video" if kind == "video" else "images"
    summary.update({
        "train_items": len(train.names),
        "val_items": 0 if val is None else len(val.names),
        "train_names": list(train.names),
        "val_names": [] if val is None else list(val.names),
    })
    return TrainingData(kind_of_samples, train, val, summary)


def open_image_data(options: TrainOptions, image_size: int) -> TrainingData | None:
    """The still images that ``options.image_data`` mixes into a video run (None without them).

    Raises:
        DataError: ``image_data`` holds no image layout (one line naming it and what is expected).
    """
    if options.image_data is None:
        return None
    # The same run, on the images: a frozen encoder stays frozen (decoder), a trained one trains.
    alone = options.replace(
        data=options.image_data, image_data=None, data_format="auto",
        train="all" if options.train == "all" else "decoder",
    )
    data = open_training_data(alone, image_size)
    if data.kind != "images":
        raise DataError(f"{options.image_data}: --image-data must be still images; {_EXPECTED}")
    return data
