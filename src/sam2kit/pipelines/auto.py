"""Segment everything in images: the automatic mask generator over image files and folders, written
as one COCO JSON plus one overlay per image.

Written into the output folder (created; every file atomically):

- ``annotations.json`` (written last, so its presence marks a complete run): COCO instance format
  (``images``, ``annotations`` with compressed RLE ``segmentation``, ``bbox`` [x, y, w, h], ``area``,
  ``score`` = predicted IoU, ``predicted_iou``, ``stability_score``; one category "object");
- ``<stem>_overlay.png`` per image: every mask in its own colour.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..model_spec import LoadedModel, ModelSpec
from .common import check_out_dir, load_image, resolve_model

__all__ = ["ANNOTATIONS_FILE", "IMAGE_SUFFIXES", "AutoSummary", "ImageMasks", "collect_images", "segment_everything"]

logger = logging.getLogger(__name__)

#: File suffixes picked up from a folder (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
ANNOTATIONS_FILE = "annotations.json"


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files named by ``inputs``: files as given, folders expanded to the image files directly
    inside them (sorted by name). Duplicates are dropped, the first occurrence kept.

    Raises:
        FileNotFoundError: an input that does not exist.
        ValueError: no image at all (e.g. only empty folders).
    """
    images: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                logger.warning("no image files (%s) in folder %s", ", ".join(IMAGE_SUFFIXES), path)
        elif path.is_file():
            found = [path]
        else:
            raise FileNotFoundError(f"image file or folder not found: {item}")
        for image in found:
            key = image.resolve()
            if key not in seen:
                seen.add(key)
                images.append(image)
    if not images:
        raise ValueError("no images to segment: give image files or folders that contain images")
    return images


def _overlay_names(images: Sequence[Path]) -> list[str]:
    """``<stem>_overlay.png`` per image, with ``_2``, ``_3``... where stems repeat."""
    names, used = [], set()
    for image in images:
        name, count = f"{image.stem}_overlay.png", 1
        while name in used:
            count += 1
            name = f"{image.stem}_{count}_overlay.png"
        used.add(name)
        names.append(name)
    return names


def _draw(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The image with every mask in its own colour; larger masks first, so small ones stay visible."""
    from ..io.overlay import overlay_masks

    if masks.shape[0] == 0:
        return image
    order = np.argsort(-masks.reshape(masks.shape[0], -1).sum(axis=1), kind="stable")
    return overlay_masks(image, masks[order], object_ids=order.tolist())


@dataclass(frozen=True)
class ImageMasks:
    """One segmented image: its file, size in pixels, mask count, overlay file and seconds taken."""

    file: str
    width: int
    height: int
    masks: int
    overlay: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "width": self.width, "height": self.height, "masks": self.masks,
                "overlay": self.overlay, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class AutoSummary:
    """What :func:`segment_everything` wrote."""

    annotations: str
    model: dict[str, Any]  # LoadedModel.to_json()
    options: dict[str, Any]  # the mask generator options given
    per_image: list[ImageMasks]

    @property
    def masks(self) -> int:
        return sum(item.masks for item in self.per_image)

    def to_json(self) -> dict[str, Any]:
        return {
            "annotations": self.annotations,
            "images": len(self.per_image),
            "masks": self.masks,
            "model": self.model,
            "options": self.options,
            "per_image": [item.to_json() for item in self.per_image],
        }


def segment_everything(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    model: ModelSpec | LoadedModel | None = None,
    show_progress: bool = True,
    **generator_options: Any,
) -> AutoSummary:
    """Run the automatic mask generator on every image of ``inputs`` (files and folders).

    Args:
        inputs: image files and folders (the image files directly inside a folder are used).
        out_dir: output folder (created); see the module docstring for its content.
        model: the model to load, or one already loaded; default ``ModelSpec()`` (SAM 2.1 tiny from the hub).
        show_progress: a tqdm progress bar over the images on stderr.
        generator_options: keyword arguments of :class:`~sam2kit.predict.automatic.MaskGenerator`
            (``points_per_side``, ``pred_iou_thresh``, ...).
    Returns:
        an :class:`AutoSummary`.
    Raises:
        FileNotFoundError / ValueError: missing inputs, unreadable images, invalid options.
        ArgumentError: an output path that is a file.
        the errors of :func:`sam2kit.model_spec.load_model`.
    """
    from PIL import Image

    from ..io.atomic import atomic_path
    from ..io.masks import CocoWriter
    from ..predict.automatic import MaskGenerator

    images = collect_images(inputs)
    out = check_out_dir(out_dir)
    loaded = resolve_model(model)
    generator = MaskGenerator(loaded.model, output_mode="binary_mask", **generator_options)
    out.mkdir(parents=True, exist_ok=True)

    writer = CocoWriter(categories=("object",))
    per_image = []
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(images), desc="auto", unit="image", file=sys.stderr)
    try:
        for path, overlay_name in zip(images, _overlay_names(images), strict=True):
            image = load_image(path)
            started = time.perf_counter()
            records = generator.generate(image)
            seconds = time.perf_counter() - started
            height, width = image.shape[:2]
            masks = np.stack([r["segmentation"] for r in records]) if records else np.zeros((0, height, width), bool)
            image_id = writer.add_image(str(path), height, width)
            writer.add_masks(
                image_id,
                masks,
                scores=[r["predicted_iou"] for r in records],
                predicted_iou=[r["predicted_iou"] for r in records],
                stability_score=[r["stability_score"] for r in records],
            )
            with atomic_path(out / overlay_name) as temporary:
                Image.fromarray(_draw(image, masks)).save(temporary, format="PNG")
            logger.debug("%s: %d masks in %.2f s", path, len(records), seconds)
            per_image.append(ImageMasks(str(path), width, height, len(records), overlay_name, seconds))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    writer.save(out / ANNOTATIONS_FILE)  # written last: its presence marks a complete run
    summary = AutoSummary(str(out / ANNOTATIONS_FILE), loaded.to_json(), dict(generator_options), per_image)
    logger.info("wrote %d masks of %d image(s) to %s", summary.masks, len(per_image), out / ANNOTATIONS_FILE)
    return summary
