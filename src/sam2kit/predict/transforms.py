"""Input validation and preprocessing shared by the predictors: images to model tensors, and
coordinates between image pixels and model-input pixels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: ImageNet statistics the image encoder was trained with.
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)


def image_to_tensor(image: Any, *, name: str = "image") -> torch.Tensor:
    """Validate a user image and return it as a ``(3, H, W)`` float32 tensor in [0, 1].

    Accepted: an RGB ``(H, W, 3)`` uint8 numpy array; a PIL image (converted to RGB); a torch tensor
    ``(3, H, W)`` (uint8 in 0..255, or float in 0..1) on any device.

    Raises:
        TypeError: unsupported type or dtype.
        ValueError: wrong shape, channel count, or an empty image.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(
                f"{name} must be a uint8 array with values 0..255, got dtype {image.dtype}; "
                "convert with (img * 255).round().astype(np.uint8) if it is float in [0, 1]"
            )
        if image.ndim != 3 or image.shape[2] != 3:
            hint = " (drop the alpha channel: img[..., :3])" if image.ndim == 3 and image.shape[2] == 4 else ""
            hint = hint or (" (grayscale: np.stack([img] * 3, -1))" if image.ndim == 2 else "")
            raise ValueError(f"{name} must be an RGB array of shape (H, W, 3), got shape {image.shape}{hint}")
        _check_not_empty(image.shape[0], image.shape[1], name)
        # Read-only arrays (e.g. from PIL) are copied: torch cannot wrap them safely.
        array = np.ascontiguousarray(image) if image.flags.writeable else np.array(image)
        return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"{name} tensor must have shape (3, H, W), got {tuple(image.shape)}")
        _check_not_empty(image.shape[1], image.shape[2], name)
        if image.dtype == torch.uint8:
            return image.float().div_(255.0)
        if not image.is_floating_point():
            raise TypeError(f"{name} tensor must be uint8 (0..255) or float (0..1), got {image.dtype}")
        return image.float()
    raise TypeError(
        f"{name} must be a numpy array (H, W, 3) uint8, a PIL image or a torch tensor (3, H, W); "
        f"got {type(image).__name__}"
    )


def _check_not_empty(height: int, width: int, name: str) -> None:
    if height == 0 or width == 0:
        raise ValueError(f"{name} is empty ({height}x{width} pixels)")


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` in [0, 1] -> ImageNet-normalised."""
    mean = torch.tensor(PIXEL_MEAN, device=image.device, dtype=image.dtype)[:, None, None]
    std = torch.tensor(PIXEL_STD, device=image.device, dtype=image.dtype)[:, None, None]
    return (image - mean) / std


def preprocess_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(3, H, W)`` float in [0, 1] -> ``(3, size, size)`` model input: antialiased bilinear resize
    (aspect ratio not kept, as the official model expects) and normalisation."""
    resized = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return normalize_image(resized)


def preprocess_frame_pil(image: np.ndarray, size: int) -> torch.Tensor:
    """Video-frame preprocessing of the official video predictor: PIL bicubic resize of the uint8
    frame, then [0, 1] and normalisation. ``(H, W, 3)`` uint8 -> ``(3, size, size)`` float32."""
    from PIL import Image

    resized = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))
    # Divide in float64 like the reference so the float32 input is bit-identical.
    tensor = torch.from_numpy(resized / 255.0).permute(2, 0, 1).float()
    return normalize_image(tensor)


def as_float_tensor(value: Any, name: str, device: torch.device) -> torch.Tensor:
    """numpy / list / tensor -> float32 tensor on ``device`` (clear error for non-numeric input)."""
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float32) if not isinstance(value, torch.Tensor) else value,
                               dtype=torch.float32, device=device)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric (numpy array, list or tensor), got {type(value).__name__}") from err


def check_points(
    coords: torch.Tensor, labels: torch.Tensor, orig_hw: tuple[int, int], normalized: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate point prompts and bring them to ``(B, N, 2)`` / ``(B, N)``.

    ``coords`` are pixel (x, y) in the original image (or in [0, 1] when ``normalized``).

    Raises:
        ValueError: wrong shapes, lengths, labels, non-finite values or points outside the image.
    """
    given_coords, given_labels = tuple(coords.shape), tuple(labels.shape)  # for messages
    if coords.ndim == 2:
        coords = coords[None]
    if labels.ndim == 1:
        labels = labels[None]
    if coords.ndim != 3 or coords.shape[-1] != 2:
        raise ValueError(f"point_coords must have shape (N, 2) or (B, N, 2), got {given_coords}")
    if coords.shape[1] == 0:
        raise ValueError("point_coords is empty; pass None for no points")
    if labels.shape != coords.shape[:2]:
        raise ValueError(
            f"point_labels must have one label per point: shape {given_coords[:-1]} expected for "
            f"point_coords of shape {given_coords}, got {given_labels}"
        )
    if not torch.isfinite(coords).all():
        raise ValueError("point_coords contain NaN or infinite values")
    bad_labels = ~torch.isin(labels, torch.tensor([0, 1, 2, 3], device=labels.device))
    if bad_labels.any():
        raise ValueError(
            f"point_labels must be 1 (foreground), 0 (background), or 2/3 (box corners); got "
            f"{sorted(set(labels[bad_labels].tolist()))}"
        )
    _check_inside(coords, orig_hw, normalized, "point")
    return coords, labels


def check_boxes(boxes: torch.Tensor, orig_hw: tuple[int, int], normalized: bool) -> torch.Tensor:
    """Validate XYXY boxes and bring them to ``(B, 4)``."""
    given_shape = tuple(boxes.shape)  # for messages
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"box must have shape (4,) or (B, 4) as x0, y0, x1, y1; got {given_shape}")
    if boxes.shape[0] == 0:
        raise ValueError("box is empty; pass None for no box")
    if not torch.isfinite(boxes).all():
        raise ValueError("box contains NaN or infinite values")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise ValueError(f"box must be x0, y0, x1, y1 with x0 <= x1 and y0 <= y1; got {boxes.tolist()}")
    _check_inside(boxes.reshape(-1, 2, 2), orig_hw, normalized, "box corner")
    return boxes


def _check_inside(coords: torch.Tensor, orig_hw: tuple[int, int], normalized: bool, what: str) -> None:
    h, w = orig_hw
    limit_x, limit_y = (1.0, 1.0) if normalized else (float(w), float(h))
    outside = (coords[..., 0] < 0) | (coords[..., 1] < 0) | (coords[..., 0] > limit_x) | (coords[..., 1] > limit_y)
    if outside.any():
        first = coords[outside][0].tolist()
        space = "normalised [0, 1] coordinates" if normalized else f"pixels of a {w}x{h} (width x height) image"
        raise ValueError(
            f"{what} (x={first[0]:g}, y={first[1]:g}) lies outside the image: coordinates must be within "
            f"x in [0, {limit_x:g}], y in [0, {limit_y:g}] ({space}); nothing is clipped"
        )


def to_model_coords(
    coords: torch.Tensor, orig_hw: tuple[int, int], model_size: int, normalized: bool
) -> torch.Tensor:
    """Map ``(..., 2)`` (x, y) from original-image pixels (or [0, 1]) to model-input pixels."""
    if not normalized:
        h, w = orig_hw
        coords = coords / torch.tensor([w, h], dtype=coords.dtype, device=coords.device)
    return coords * model_size


def batch_of(items: Sequence[Any] | None, count: int, name: str) -> list[Any]:
    """A per-image list of prompts (``None`` -> ``count`` Nones) with a length check."""
    if items is None:
        return [None] * count
    if len(items) != count:
        raise ValueError(f"{name} has {len(items)} entries but {count} images are set")
    return list(items)
