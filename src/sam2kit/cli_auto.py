"""``sam2kit auto``: segment everything in images; write a COCO JSON and one overlay per image.

The argument parsing lives in :mod:`sam2kit.cli`; this module does the work. The model options are
resolved by :func:`sam2kit.cli_image.load_model`, shared with the other commands.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "collect_images", "run", "segment_everything"]

logger = logging.getLogger("sam2kit")

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
    from .io.overlay import overlay_masks

    if masks.shape[0] == 0:
        return image
    order = np.argsort(-masks.reshape(masks.shape[0], -1).sum(axis=1), kind="stable")
    return overlay_masks(image, masks[order], object_ids=order.tolist())


def segment_everything(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    checkpoint: str,
    config: str | None = None,
    device: str | None = None,
    image_size: int | None = None,
    precision: str = "fp32",
    progress: bool = True,
    **generator_options: Any,
) -> dict[str, Any]:
    """Run the automatic mask generator on every image of ``inputs`` (files and folders).

    Writes into ``out_dir``: ``annotations.json`` (COCO instance format: ``images``,
    ``annotations`` with compressed RLE ``segmentation``, ``bbox`` [x, y, w, h], ``area``,
    ``score`` = predicted IoU, ``predicted_iou``, ``stability_score``; one category "object") and
    ``<stem>_overlay.png`` per image. ``generator_options`` go to
    :class:`~sam2kit.predict.automatic.MaskGenerator` (e.g. ``points_per_side``).

    Returns:
        The summary: model, files written, and per image the mask count and seconds.

    Raises:
        FileNotFoundError / ValueError: missing inputs, unreadable images, invalid options or model.
    """
    from PIL import Image

    from .cli_image import load_image, load_model
    from .io.atomic import atomic_path
    from .io.masks import CocoWriter
    from .predict.automatic import MaskGenerator

    images = collect_images(inputs)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")
    model, model_info = load_model(checkpoint, config, device, image_size, precision)
    generator = MaskGenerator(model, output_mode="binary_mask", **generator_options)
    out.mkdir(parents=True, exist_ok=True)

    writer = CocoWriter(categories=("object",))
    per_image = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(images), desc="auto", unit="image", file=sys.stderr)
    try:
        for path, overlay_name in zip(images, _overlay_names(images)):
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
            per_image.append({"file": str(path), "width": width, "height": height, "masks": len(records),
                              "overlay": overlay_name, "seconds": round(seconds, 3)})
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    writer.save(out / ANNOTATIONS_FILE)  # written last: its presence marks a complete run
    total = sum(item["masks"] for item in per_image)
    logger.info("wrote %d masks of %d image(s) to %s", total, len(per_image), out / ANNOTATIONS_FILE)
    return {
        "annotations": str(out / ANNOTATIONS_FILE),
        "images": len(per_image),
        "masks": total,
        "model": model_info,
        "options": generator_options,
        "per_image": per_image,
    }


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit auto`` (see :func:`sam2kit.cli.add_auto_parser`)."""
    summary = segment_everything(
        args.images,
        args.out,
        checkpoint=args.checkpoint,
        config=args.config,
        device=args.device,
        image_size=args.image_size,
        precision=args.precision,
        progress=not getattr(args, "quiet", False),
        points_per_side=args.points_per_side,
        points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
        crop_n_layers=args.crop_n_layers,
        min_mask_region_area=args.min_mask_region_area,
    )
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    sys.stdout.flush()
    return 0
