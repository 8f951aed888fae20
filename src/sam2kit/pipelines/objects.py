"""Named objects as COCO RLE: segment several objects of one image (each with its own points, box
and/or mask prompt, one image embedding), and gather a tracked video's mask files into the same format.

``masks.json`` is a COCO instance file (loads with ``pycocotools.coco.COCO``): one ``images`` entry
per image or tracked frame (``id`` = frame index + 1, ``file_name`` = the source, ``frame``), one
annotation per object and frame with compressed RLE ``segmentation``, ``bbox`` [x, y, w, h],
``area`` in pixels, ``score`` (images: predicted IoU; videos: mean foreground probability) and the
object's ``obj_id``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError
from ..model_spec import LoadedModel, ModelSpec
from .common import check_out_dir, load_image, resolve_model
from .image import Prompt, _draw_overlay, _predict, _validate_prompts

__all__ = ["MASKS_FILE", "ObjectMasks", "segment_objects", "video_masks_to_coco"]

logger = logging.getLogger(__name__)

MASKS_FILE, OVERLAY_FILE = "masks.json", "overlay.png"


@dataclass(frozen=True)
class ObjectMasks:
    """What :func:`segment_objects` wrote: files relative to the output folder, and per object the
    mask area (pixels) and predicted IoU."""

    files: list[str]
    areas: dict[int, int]
    scores: dict[int, float]


def _coco_writer(source: str, frames: list[tuple[int, np.ndarray, list[int], list[float]]]) -> Any:
    """A CocoWriter with one image per ``(frame, masks (N, H, W), obj_ids, scores)``."""
    from ..io.masks import CocoWriter

    writer = CocoWriter(categories=("object",))
    for frame, masks, obj_ids, scores in frames:
        image_id = writer.add_image(source, masks.shape[1], masks.shape[2], image_id=frame + 1)
        writer.images[-1]["frame"] = frame
        for annotation_id, obj_id in zip(writer.add_masks(image_id, masks, scores=scores), obj_ids, strict=True):
            writer.annotations[annotation_id - 1]["obj_id"] = obj_id  # ids are 1, 2, ... in order
    return writer


def segment_objects(
    image_path: str | Path,
    prompts: Mapping[int, Prompt],
    out_dir: str | Path,
    *,
    model: ModelSpec | LoadedModel | None = None,
    palette: bool = False,
    overlay: bool = False,
) -> ObjectMasks:
    """Segment each object of ``prompts`` (object id 1..255 -> its prompt) in one image and write
    ``masks.json``; with ``palette`` also ``palette/00000.png`` (DAVIS palette, value = object id,
    higher ids win overlaps); with ``overlay`` also ``overlay.png``.

    The image is embedded once; each object gets the best mask of its prompt (of three candidates
    for a single click). A prompt's ``mask`` file (the image's size, non-zero = the object) is
    SAM's mask prompt, alone or beside the object's clicks and box.

    Raises:
        ArgumentError: no prompt, an object id outside 1..255, an output path that is a file.
        ValueError: a prompt outside the image, a mask of another size.
        FileNotFoundError, ImageReadError: the image or a mask file.
        the errors of :func:`sam2kit.model_spec.load_model`.
    """
    from ..io.masks import save_palette_png
    from ..predict.image import ImagePredictor

    if not prompts:
        raise ArgumentError("no prompt given", argument="prompts")
    obj_ids = sorted(prompts)
    if not all(1 <= obj_id <= 255 for obj_id in obj_ids):
        raise ArgumentError(f"object ids must be 1..255 (0 is the background), got {obj_ids}", argument="prompts")
    image = load_image(image_path)
    height, width = image.shape[:2]
    ordered = [prompts[obj_id] for obj_id in obj_ids]
    prompt_masks: list[np.ndarray | None] = []
    for obj_id, prompt in zip(obj_ids, ordered, strict=True):
        try:
            prompt_masks.extend(_validate_prompts([prompt], (height, width)))
        except (ValueError, FileNotFoundError) as error:  # the same error, naming the object
            raise type(error)(f"prompt of object {obj_id}: {error}") from None
    out = check_out_dir(out_dir)
    predictor = ImagePredictor(resolve_model(model).model)
    predictor.set_image(image)
    best = []
    for index, (prompt, prompt_mask) in enumerate(zip(ordered, prompt_masks, strict=True)):
        (mask,) = _predict(predictor, [prompt], multimask=False, prompt_mask=prompt_mask)
        mask.prompt = index  # the overlay colours objects by their index
        best.append(mask)
    masks = np.stack([m.mask for m in best])  # (N, H, W) bool
    scores = [m.score for m in best]

    out.mkdir(parents=True, exist_ok=True)
    files = [MASKS_FILE]
    if palette:
        label = np.zeros((height, width), dtype=np.uint8)
        for mask, obj_id in zip(masks, obj_ids, strict=True):
            label[mask] = obj_id
        save_palette_png(out / "palette" / "00000.png", label)
        files.append("palette/00000.png")
    if overlay:
        from PIL import Image

        from ..io.atomic import atomic_path

        with atomic_path(out / OVERLAY_FILE) as temporary:
            Image.fromarray(_draw_overlay(image, best, ordered)).save(temporary, format="PNG")
        files.append(OVERLAY_FILE)
    _coco_writer(str(image_path), [(0, masks, obj_ids, scores)]).save(out / MASKS_FILE)
    logger.debug("segmented %d object(s) of %s", len(obj_ids), image_path)
    return ObjectMasks(files=files, areas={i: int(m.sum()) for i, m in zip(obj_ids, masks, strict=True)},
                       scores=dict(zip(obj_ids, scores, strict=True)))


def video_masks_to_coco(out_dir: str | Path) -> Path:
    """Gather the mask files that :func:`sam2kit.pipelines.video.track_video` wrote into ``out_dir``
    (per object or palette, as its ``tracks.json`` says) into ``out_dir/masks.json``.

    Raises:
        FileNotFoundError: no ``tracks.json`` or a mask file it names is missing.
    """
    from .video_output import MaskWriter

    out = Path(out_dir)
    tracks = json.loads((out / "tracks.json").read_text(encoding="utf-8"))
    reader = MaskWriter(out, tracks["objects"], bool(tracks["options"]["palette"]))
    frames = []
    for record in tracks["frames"]:
        frame = int(record["frame"])
        objects = sorted(record["objects"], key=lambda o: o["id"])
        frames.append((frame, reader.read(frame), [o["id"] for o in objects], [o["score"] for o in objects]))
    return _coco_writer(str(tracks["video"]["path"]), frames).save(out / MASKS_FILE)
