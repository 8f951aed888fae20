"""``sam2kit image``: segment one image from point / box prompts and write masks, overlay and JSON.

The argument parsing lives in :mod:`sam2kit.cli`; this module does the work. :func:`load_model` is
shared by every command that takes the model options (``--checkpoint``, ``--config``, ``--device``,
``--image-size``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["ImageReadError", "ModelSpecError", "Prompt", "load_image", "load_model", "run", "segment_image"]

logger = logging.getLogger("sam2kit")

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")


class ModelSpecError(ValueError):
    """``--checkpoint`` / ``--config`` do not name a usable model."""


class ImageReadError(ValueError):
    """The image file cannot be decoded."""


# ---------------------------------------------------------------------------- model
def load_model(
    checkpoint: str,
    config: str | None = None,
    device: str | None = None,
    image_size: int | None = None,
    precision: str = "fp32",
) -> tuple[Any, dict[str, Any]]:
    """Build the model named by the CLI model options.

    Args:
        checkpoint: a local checkpoint file, or one of the official hub ids (downloaded once, cached).
        config: a preset name, hub id or official YAML path; default: inferred from the hub id or from
            an official checkpoint file name (``sam2.1_hiera_tiny.pt``).
        device: a torch device string; default the best available.
        image_size: override of the config's input resolution (custom models only).
        precision: ``fp32``, ``bf16`` or ``fp16`` (see :func:`sam2kit.build_model`).
    Returns:
        ``(model, info)``: the :class:`~sam2kit.modeling.sam2.SAM2Model` in eval mode, and a JSON-able
        description ``{"checkpoint", "config", "image_size", "device", "precision"}``.
    Raises:
        ModelSpecError: unknown checkpoint / config, or a config that cannot be inferred.
        FileNotFoundError: a YAML config that does not exist.
        sam2kit.checkpoint.CheckpointError: unreadable, mismatched or undownloadable checkpoint.
    """
    from .config import HUB_IDS

    local = Path(checkpoint).expanduser()
    if local.is_file():
        source = "file"
    elif checkpoint in HUB_IDS:
        source = "hub"
    elif local.is_dir():
        raise ModelSpecError(f"--checkpoint {checkpoint} is a folder; pass the checkpoint file inside it")
    else:
        raise ModelSpecError(
            f"checkpoint not found: {checkpoint!r} is neither an existing file nor an official hub id "
            f"({', '.join(sorted(HUB_IDS))})"
        )
    cfg = _resolve_config(config, local.name if source == "file" else checkpoint, source)
    if image_size is not None and image_size != cfg.image_size:
        cfg = cfg.replace(image_size=image_size)
    torch_device = _resolve_device(device)

    from .build import build_model, resolve_precision

    try:
        resolve_precision(precision, torch_device)
    except ValueError as err:
        raise ModelSpecError(f"--precision {precision}: {err}") from None
    from .checkpoint import download_checkpoint

    started = time.perf_counter()
    if source == "hub":
        logger.info("fetching %s from the Hugging Face hub (cached after the first time)", checkpoint)
        path = download_checkpoint(checkpoint)
    else:
        path = local
    logger.info("loading %s (%s, %dpx) on %s", path, cfg.name, cfg.image_size, torch_device)
    model = build_model(cfg, checkpoint=path, device=torch_device, precision=precision)
    logger.debug("model ready in %.2f s", time.perf_counter() - started)
    info = {"checkpoint": checkpoint, "config": cfg.name, "image_size": cfg.image_size, "device": str(torch_device),
            "precision": precision}
    return model, info


def _resolve_config(config: str | None, checkpoint_name: str, source: str) -> Any:
    from .config import config_from_yaml, get_config, list_presets

    if config is not None:
        if config.endswith((".yaml", ".yml")):
            if not Path(config).is_file():
                raise FileNotFoundError(f"config file not found: {config}")
            return config_from_yaml(config)
        try:
            return get_config(config)
        except KeyError:
            raise ModelSpecError(
                f"unknown --config {config!r}; use a preset name ({', '.join(list_presets())}) or an "
                "official YAML file"
            ) from None
    if source == "hub":
        return get_config(checkpoint_name)
    stem = checkpoint_name
    for suffix in _CHECKPOINT_SUFFIXES:
        stem = stem.removesuffix(suffix)
    try:
        return get_config(stem)
    except KeyError:
        raise ModelSpecError(
            f"cannot tell the model config from the checkpoint file name {checkpoint_name!r} (official "
            f"files are named like sam2.1_hiera_tiny.pt); pass --config with one of: "
            f"{', '.join(list_presets())} (or an official YAML file)"
        ) from None


def _resolve_device(device: str | None) -> Any:
    import torch

    from .checkpoint import resolve_device

    try:
        resolved = resolve_device(device)
    except RuntimeError as err:
        raise ModelSpecError(f"invalid --device {device!r}: {str(err).splitlines()[0]}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelSpecError(f"--device {device}: no CUDA GPU is available to this torch ({torch.__version__})")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ModelSpecError(f"--device {device}: Apple MPS is not available on this machine")
    return resolved


# ---------------------------------------------------------------------------- image and prompts
def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB, with its EXIF orientation applied.

    Raises:
        FileNotFoundError: no such file. ImageReadError: not a readable image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            return np.array(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from None


@dataclass(frozen=True)
class Prompt:
    """One object's prompt: clicks (pixels, label 1 foreground / 0 background) and at most one box."""

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None

    @property
    def is_single_click(self) -> bool:
        """An ambiguous prompt (one click, no box): the best of three candidates is the usual answer."""
        return len(self.points) == 1 and self.box is None

    def to_json(self) -> dict[str, Any]:
        return {"points": [list(p) for p in self.points], "labels": list(self.labels),
                "box": None if self.box is None else list(self.box)}


def make_prompts(
    points: Sequence[tuple[float, float, int]], boxes: Sequence[tuple[float, float, float, float]]
) -> list[Prompt]:
    """Points plus at most one box -> one prompt; several boxes without points -> one prompt each.

    Raises:
        ValueError: no prompt, or points together with several boxes.
    """
    if not points and not boxes:
        raise ValueError("no prompt given: pass --point X,Y[,LABEL] and/or --box X0,Y0,X1,Y1")
    if points and len(boxes) > 1:
        raise ValueError("points can be combined with at most one box")
    if points or len(boxes) <= 1:
        return [Prompt([(x, y) for x, y, _ in points], [label for _, _, label in points], boxes[0] if boxes else None)]
    return [Prompt(box=box) for box in boxes]


def _validate_prompts(prompts: Sequence[Prompt], image_hw: tuple[int, int]) -> None:
    """The predictor's own checks, run before the (slow) model load and image embedding."""
    import torch

    from .predict.transforms import check_boxes, check_points

    for prompt in prompts:
        if prompt.points:
            check_points(torch.tensor(prompt.points, dtype=torch.float32),
                         torch.tensor(prompt.labels, dtype=torch.int32), image_hw, False)
        if prompt.box is not None:
            check_boxes(torch.tensor(prompt.box, dtype=torch.float32), image_hw, False)


# ---------------------------------------------------------------------------- the command
@dataclass
class _Mask:
    prompt: int
    candidate: int
    mask: np.ndarray  # (H, W) bool
    score: float
    best: bool


def _predict(predictor: Any, prompts: Sequence[Prompt], multimask: bool) -> list[_Mask]:
    """Masks of every prompt: all candidates with ``multimask``, else one per prompt."""
    if len(prompts) > 1:  # a batch of boxes
        masks, scores, _ = predictor.predict(box=np.array([p.box for p in prompts], dtype=np.float32),
                                             multimask_output=multimask)  # (B, C, H, W), (B, C)
        per_prompt = list(zip(masks, scores))
    else:
        prompt = prompts[0]
        masks, scores, _ = predictor.predict(
            point_coords=np.array(prompt.points, dtype=np.float32) if prompt.points else None,
            point_labels=np.array(prompt.labels, dtype=np.int32) if prompt.points else None,
            box=None if prompt.box is None else np.array(prompt.box, dtype=np.float32),
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

    from .io.overlay import object_color, overlay_masks

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
        for (x, y), label in zip(prompt.points, prompt.labels):
            fill = (40, 220, 40) if label == 1 else (230, 30, 30)
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill, outline=(255, 255, 255),
                         width=max(1, line // 2))
    return np.asarray(canvas)


def segment_image(
    image_path: str | Path,
    points: Sequence[tuple[float, float, int]],
    boxes: Sequence[tuple[float, float, float, float]],
    out_dir: str | Path,
    *,
    checkpoint: str,
    config: str | None = None,
    device: str | None = None,
    image_size: int | None = None,
    precision: str = "fp32",
    multimask: bool = False,
    max_hole_area: float = 0.0,
    max_sprinkle_area: float = 0.0,
) -> dict[str, Any]:
    """Segment ``image_path`` and write ``mask_<i>.png``, ``overlay.png`` and ``result.json``.

    Points are ``(x, y, label)`` and boxes ``(x0, y0, x1, y1)`` in pixels of the image (see
    :func:`make_prompts` for how they group into prompts). Returns the ``result.json`` content.

    Raises:
        ValueError: invalid prompts (e.g. outside the image), unknown model or config.
        FileNotFoundError: missing image / checkpoint / config file.
        sam2kit.checkpoint.CheckpointError: the checkpoint cannot be loaded or downloaded.
    """
    from .io.atomic import atomic_path, save_json
    from .io.masks import mask_to_box_xywh, save_mask_png

    prompts = make_prompts(points, boxes)
    image = load_image(image_path)
    height, width = image.shape[:2]
    _validate_prompts(prompts, (height, width))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")

    model, model_info = load_model(checkpoint, config, device, image_size, precision)
    from .predict.image import ImagePredictor

    predictor = ImagePredictor(model, max_hole_area=max_hole_area, max_sprinkle_area=max_sprinkle_area)
    started = time.perf_counter()
    predictor.set_image(image)
    logger.info("embedded %s (%dx%d) in %.2f s", image_path, width, height, time.perf_counter() - started)
    started = time.perf_counter()
    masks = _predict(predictor, prompts, multimask)
    logger.info("predicted %d mask(s) for %d prompt(s) in %.3f s", len(masks), len(prompts),
                time.perf_counter() - started)

    out.mkdir(parents=True, exist_ok=True)
    records = []
    for index, item in enumerate(masks):
        name = f"mask_{index}.png"
        save_mask_png(out / name, item.mask)
        records.append({
            "file": name,
            "prompt": item.prompt,
            "candidate": item.candidate,
            "best": item.best,
            "score": round(item.score, 6),
            "bbox_xywh": mask_to_box_xywh(item.mask),
            "area": int(item.mask.sum()),
        })
    from PIL import Image

    with atomic_path(out / "overlay.png") as temporary:
        Image.fromarray(_draw_overlay(image, masks, prompts)).save(temporary, format="PNG")
    result = {
        "image": {"path": str(image_path), "width": width, "height": height},
        "model": model_info,
        "multimask": multimask,
        "max_hole_area": max_hole_area,
        "max_sprinkle_area": max_sprinkle_area,
        "prompts": [p.to_json() for p in prompts],
        "masks": records,
        "overlay": "overlay.png",
    }
    save_json(out / "result.json", result)  # written last: its presence marks a complete output
    logger.info("wrote %d mask(s), overlay.png and result.json to %s", len(records), out)
    return result


def run(args: argparse.Namespace) -> int:
    """Handler of ``sam2kit image`` (see :func:`sam2kit.cli.add_image_parser`)."""
    result = segment_image(
        args.image,
        args.points,
        args.boxes,
        args.out,
        checkpoint=args.checkpoint,
        config=args.config,
        device=args.device,
        image_size=args.image_size,
        precision=args.precision,
        multimask=args.multimask,
        max_hole_area=args.max_hole_area,
        max_sprinkle_area=args.max_sprinkle_area,
    )
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()
    return 0
