"""Segment one image from point / box / mask prompts; write one PNG per mask, an overlay and ``result.json``.

Written into the output folder (created; files of these names are replaced, each atomically):

- ``mask_0.png``, ``mask_1.png``, ...: one 8-bit PNG per mask (0 / 255), the size of the image;
- ``overlay.png``: the image with the best mask of each prompt in colour and the prompts drawn;
- ``result.json`` (written last, so its presence marks a complete output): :meth:`ImageResult.to_json`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError
from ..model_spec import LoadedModel, ModelSpec
from .common import check_out_dir, load_image, resolve_model

__all__ = ["ImageResult", "MaskRecord", "Prompt", "make_prompts", "segment_image"]

logger = logging.getLogger(__name__)

#: File names written besides the masks.
OVERLAY_FILE, RESULT_FILE = "overlay.png", "result.json"


@dataclass(frozen=True)
class Prompt:
    """One object's prompt: clicks (pixels, label 1 foreground / 0 background), at most one box, and
    optionally a mask PNG of the image's size (non-zero = the object) given to SAM as its mask prompt."""

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    mask: str | Path | None = None

    @property
    def is_single_click(self) -> bool:
        """An ambiguous prompt (one click, no box or mask): the best of three candidates is the usual answer."""
        return len(self.points) == 1 and self.box is None and self.mask is None

    def to_json(self) -> dict[str, Any]:
        described: dict[str, Any] = {"points": [list(p) for p in self.points], "labels": list(self.labels),
                                     "box": None if self.box is None else list(self.box)}
        if self.mask is not None:
            described["mask"] = str(self.mask)
        return described


def make_prompts(
    points: Sequence[tuple[float, float, int]], boxes: Sequence[tuple[float, float, float, float]]
) -> list[Prompt]:
    """``(x, y, label)`` points plus at most one ``(x0, y0, x1, y1)`` box (pixels) -> one prompt;
    several boxes without points -> one prompt each (a batch of objects).

    Raises:
        ArgumentError: no prompt, or points together with several boxes.
    """
    if not points and not boxes:
        raise ArgumentError("no prompt given: give points (x, y[, label]) and/or boxes (x0, y0, x1, y1)",
                            argument="points")
    if points and len(boxes) > 1:
        raise ArgumentError("points can be combined with at most one box", argument="boxes")
    if points or len(boxes) <= 1:
        return [Prompt([(x, y) for x, y, _ in points], [label for _, _, label in points], boxes[0] if boxes else None)]
    return [Prompt(box=box) for box in boxes]


@dataclass(frozen=True)
class MaskRecord:
    """One written mask: its file, which prompt and candidate it answers, and what it covers."""

    file: str
    prompt: int
    candidate: int
    best: bool  # the highest-scoring candidate of its prompt
    score: float  # the predicted IoU
    bbox_xywh: list[int]  # tight box in pixels, zeros when empty
    area: int  # pixels

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "prompt": self.prompt, "candidate": self.candidate, "best": self.best,
                "score": round(self.score, 6), "bbox_xywh": self.bbox_xywh, "area": self.area}


@dataclass(frozen=True)
class ImageResult:
    """What :func:`segment_image` wrote (``result.json`` holds :meth:`to_json`)."""

    image: str
    width: int
    height: int
    model: dict[str, Any]  # LoadedModel.to_json()
    multimask: bool
    max_hole_area: float
    max_sprinkle_area: float
    prompts: list[Prompt]
    masks: list[MaskRecord]
    overlay: str

    def to_json(self) -> dict[str, Any]:
        return {
            "image": {"path": self.image, "width": self.width, "height": self.height},
            "model": self.model,
            "multimask": self.multimask,
            "max_hole_area": self.max_hole_area,
            "max_sprinkle_area": self.max_sprinkle_area,
            "prompts": [p.to_json() for p in self.prompts],
            "masks": [m.to_json() for m in self.masks],
            "overlay": self.overlay,
        }


def _validate_prompts(prompts: Sequence[Prompt], image_hw: tuple[int, int]) -> list[np.ndarray | None]:
    """The predictor's own checks, run before the (slow) model load and image embedding; returns
    each prompt's mask ``(H, W)`` bool read from its file (``None`` without one).

    Raises:
        ValueError: a point or box outside the image, a mask of another size.
        FileNotFoundError, ImageReadError: a missing or unreadable mask file.
    """
    import torch

    from ..predict.transforms import check_boxes, check_points
    from .mask_prompts import load_prompt_mask

    masks: list[np.ndarray | None] = []
    for prompt in prompts:
        if prompt.points:
            check_points(torch.tensor(prompt.points, dtype=torch.float32),
                         torch.tensor(prompt.labels, dtype=torch.int32), image_hw, False)
        if prompt.box is not None:
            check_boxes(torch.tensor(prompt.box, dtype=torch.float32), image_hw, False)
        masks.append(None if prompt.mask is None else load_prompt_mask(prompt.mask, image_hw))
    return masks


@dataclass
class _Mask:
    prompt: int
    candidate: int
    mask: np.ndarray  # (H, W) bool
    score: float
    best: bool


def _predict(predictor: Any, prompts: Sequence[Prompt], multimask: bool,
             prompt_mask: np.ndarray | None = None) -> list[_Mask]:
    """Masks of every prompt: all candidates with ``multimask``, else one per prompt.
    ``prompt_mask``: the ``(H, W)`` bool mask of a single prompt, given as SAM's mask prompt."""
    if len(prompts) > 1:  # a batch of boxes
        masks, scores, _ = predictor.predict(box=np.array([p.box for p in prompts], dtype=np.float32),
                                             multimask_output=multimask)  # (B, C, H, W), (B, C)
        per_prompt = list(zip(masks, scores, strict=True))
    else:
        from .mask_prompts import mask_to_low_res_logits

        prompt = prompts[0]
        masks, scores, _ = predictor.predict(
            point_coords=np.array(prompt.points, dtype=np.float32) if prompt.points else None,
            point_labels=np.array(prompt.labels, dtype=np.int32) if prompt.points else None,
            box=None if prompt.box is None else np.array(prompt.box, dtype=np.float32),
            mask_input=None if prompt_mask is None else mask_to_low_res_logits(
                prompt_mask, predictor.model.sam_prompt_encoder.mask_input_size),
            multimask_output=multimask or prompt.is_single_click,
        )  # (C, H, W), (C,)
        per_prompt = [(masks, scores)]
    results = []
    for index, (candidates, candidate_scores) in enumerate(per_prompt):
        best = int(np.argmax(candidate_scores))
        keep = range(len(candidates)) if multimask else [best]
        for candidate in keep:
            results.append(_Mask(index, candidate, candidates[candidate], float(candidate_scores[candidate]),
                                 candidate == best))
    return results


def _draw_overlay(image: np.ndarray, masks: Sequence[_Mask], prompts: Sequence[Prompt]) -> np.ndarray:
    """The best mask of each prompt in its colour, box outlines, and clicks (green +, red -)."""
    from PIL import Image, ImageDraw

    from ..io.overlay import object_color, overlay_masks

    shown = [m for m in masks if m.best]
    blended = overlay_masks(image, np.stack([m.mask for m in shown]), object_ids=[m.prompt for m in shown])
    canvas = Image.fromarray(blended)
    draw = ImageDraw.Draw(canvas)
    height, width = image.shape[:2]
    line = max(2, round(min(height, width) / 300))
    radius = max(4, round(min(height, width) / 100))
    for index, prompt in enumerate(prompts):
        if prompt.box is not None:  # a white rim keeps the box visible over its own mask colour
            draw.rectangle(prompt.box, outline=(255, 255, 255), width=line + 2)
            draw.rectangle(prompt.box, outline=object_color(index), width=line)
        for (x, y), label in zip(prompt.points, prompt.labels, strict=True):
            fill = (40, 220, 40) if label == 1 else (230, 30, 30)
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill, outline=(255, 255, 255),
                         width=max(1, line // 2))
    return np.asarray(canvas)


def segment_image(
    image_path: str | Path,
    prompts: Sequence[Prompt],
    out_dir: str | Path,
    *,
    model: ModelSpec | LoadedModel | None = None,
    multimask: bool = False,
    max_hole_area: float = 0.0,
    max_sprinkle_area: float = 0.0,
) -> ImageResult:
    """Segment ``image_path`` and write ``mask_<i>.png``, ``overlay.png`` and ``result.json``.

    Args:
        image_path: an image file (EXIF rotation is applied).
        prompts: in pixels of the image; one object each (see :func:`make_prompts`); several prompts
            must each be a single box (they are predicted as one batch); a mask file only in a
            single prompt.
        out_dir: output folder (created if missing).
        model: the model to load, or one already loaded; default ``ModelSpec()`` (SAM 2.1 tiny from the hub).
        multimask: write the three candidates of each prompt; else the best one (a single click
            still picks the best of three).
        max_hole_area / max_sprinkle_area: fill holes / remove specks up to this many pixels of the
            256x256 low-resolution mask (0: off).
    Returns:
        an :class:`ImageResult`.
    Raises:
        ArgumentError: no prompt, several prompts that are not single boxes, an output path that is
            a file. ValueError: a prompt outside the image, a mask of another size.
        FileNotFoundError, ImageReadError: missing or unreadable image or mask.
        the errors of :func:`sam2kit.model_spec.load_model`.
    """
    from PIL import Image

    from ..io.atomic import atomic_path, save_json
    from ..io.masks import mask_to_box_xywh, save_mask_png
    from ..predict.image import ImagePredictor

    if not prompts:
        raise ArgumentError("no prompt given", argument="prompts")
    if len(prompts) > 1 and any(p.points or p.box is None or p.mask is not None for p in prompts):
        raise ArgumentError("several prompts must each be a single box (one object each)", argument="prompts")
    image = load_image(image_path)
    height, width = image.shape[:2]
    prompt_masks = _validate_prompts(prompts, (height, width))
    out = check_out_dir(out_dir)

    loaded = resolve_model(model)
    predictor = ImagePredictor(loaded.model, max_hole_area=max_hole_area, max_sprinkle_area=max_sprinkle_area)
    started = time.perf_counter()
    predictor.set_image(image)
    logger.info("embedded %s (%dx%d) in %.2f s", image_path, width, height, time.perf_counter() - started)
    started = time.perf_counter()
    masks = _predict(predictor, prompts, multimask, prompt_masks[0] if len(prompts) == 1 else None)
    logger.info("predicted %d mask(s) for %d prompt(s) in %.3f s", len(masks), len(prompts),
                time.perf_counter() - started)

    out.mkdir(parents=True, exist_ok=True)
    records = []
    for index, item in enumerate(masks):
        name = f"mask_{index}.png"
        save_mask_png(out / name, item.mask)
        records.append(MaskRecord(file=name, prompt=item.prompt, candidate=item.candidate, best=item.best,
                                  score=item.score, bbox_xywh=mask_to_box_xywh(item.mask), area=int(item.mask.sum())))
    with atomic_path(out / OVERLAY_FILE) as temporary:
        Image.fromarray(_draw_overlay(image, masks, prompts)).save(temporary, format="PNG")
    result = ImageResult(
        image=str(image_path), width=width, height=height, model=loaded.to_json(), multimask=multimask,
        max_hole_area=max_hole_area, max_sprinkle_area=max_sprinkle_area, prompts=list(prompts), masks=records,
        overlay=OVERLAY_FILE,
    )
    save_json(out / RESULT_FILE, result.to_json())  # written last: its presence marks a complete output
    logger.info("wrote %d mask(s), %s and %s to %s", len(records), OVERLAY_FILE, RESULT_FILE, out)
    return result
