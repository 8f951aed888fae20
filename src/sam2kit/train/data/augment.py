"""Augmentations applied identically to the frames and the masks of a sample, seeded by a
``torch.Generator``, and the resize + normalisation every sample ends with.

Order: random crop (zoom) and resize to the model's S x S input, horizontal flip, random affine
(rotation, shear, scale, translation), colour jitter and grayscale, normalisation. The same draw
applies to every frame of a clip (the recipe's ``consistent_transform``). A draw that leaves no
object visible on frame 0 is redrawn (``max_tries`` times, then the sample is only resized).
Defaults are the official MOSE fine-tuning recipe's (flip, affine 25° / shear 20°, light colour
jitter, 5 % grayscale); cropping, scaling and translation are off there and here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...predict.transforms import normalize_image

__all__ = ["AugmentOptions", "DEFAULT_AUGMENT", "augment_sample", "resize_sample"]


@dataclass(frozen=True)
class AugmentOptions:
    """Augmentation strengths; 0 (or (1, 1) for ranges of factors) disables one.

    Attributes:
        hflip: probability of a horizontal flip.
        crop: probability of a random crop (then resized to the input: a zoom).
        crop_area: the crop's area as a fraction of the image, drawn uniformly in this range; its
            aspect ratio is the image's times a factor in [3/4, 4/3].
        degrees: rotation drawn in [-degrees, degrees]; shear: horizontal shear angle, likewise.
        scale: affine zoom factor drawn in this range; translate: shift, as a fraction of the side,
            drawn in [-translate, translate] on each axis.
        brightness / contrast / saturation: colour factors drawn in [1 - v, 1 + v].
        grayscale: probability of turning the frames gray.
        max_tries: redraws when no object stays visible on frame 0.
    """

    hflip: float = 0.5
    crop: float = 0.0
    crop_area: tuple[float, float] = (0.3, 1.0)
    degrees: float = 25.0
    shear: float = 20.0
    scale: tuple[float, float] = (1.0, 1.0)
    translate: float = 0.0
    brightness: float = 0.1
    contrast: float = 0.03
    saturation: float = 0.03
    grayscale: float = 0.05
    max_tries: int = 5

    def __post_init__(self) -> None:
        for name in ("hflip", "crop", "grayscale"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.crop_area[0] <= self.crop_area[1] <= 1.0:
            raise ValueError(f"crop_area must satisfy 0 < low <= high <= 1, got {self.crop_area}")
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must satisfy 0 < low <= high, got {self.scale}")
        for name in ("degrees", "shear", "translate", "brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.brightness < 1 or not 0.0 <= self.contrast < 1 or not 0.0 <= self.saturation < 1:
            raise ValueError("brightness, contrast and saturation must be in [0, 1)")


#: The recipe's augmentations, the data sets' default.
DEFAULT_AUGMENT = AugmentOptions()


def _rand(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(T, N, h, w)`` bool -> ``(T, N, *size)`` bool: antialiased bilinear on {0, 1}, then > 0.5."""
    if masks.shape[1] == 0:
        return masks.new_zeros(masks.shape[0], 0, *size)
    resized = F.interpolate(masks.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized > 0.5


def _crop_resize(
    images: torch.Tensor, masks: torch.Tensor, box: tuple[int, int, int, int], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``(top, left, height, width)`` of ``(T, 3, H, W)`` uint8 / ``(T, N, H, W)`` bool and
    resize to ``size`` x ``size``: ``(T, 3, S, S)`` float in [0, 1] and bool masks."""
    top, left, height, width = box
    crop = images[:, :, top : top + height, left : left + width].float().div_(255.0)
    resized = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp_(0, 1), _resize_masks(masks[:, :, top : top + height, left : left + width], (size, size))


def resize_sample(images: torch.Tensor, masks: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """No augmentation: ``(T, 3, H, W)`` uint8 + ``(T, N, H, W)`` bool -> ``(T, 3, S, S)`` normalised
    float32 (resized like the image predictor: antialiased bilinear) + ``(T, N, S, S)`` bool."""
    height, width = images.shape[-2:]
    resized, resized_masks = _crop_resize(images, masks, (0, 0, height, width), size)
    return normalize_image(resized), resized_masks


def _crop_box(
    height: int, width: int, options: AugmentOptions, generator: torch.Generator
) -> tuple[int, int, int, int]:
    area = _rand(generator, *options.crop_area)
    ratio = math.exp(_rand(generator, math.log(3 / 4), math.log(4 / 3)))
    crop_h = min(height, max(1, round(height * math.sqrt(area / ratio))))
    crop_w = min(width, max(1, round(width * math.sqrt(area * ratio))))
    top = int(torch.randint(0, height - crop_h + 1, (), generator=generator))
    left = int(torch.randint(0, width - crop_w + 1, (), generator=generator))
    return top, left, crop_h, crop_w


def _affine(
    images: torch.Tensor, masks: torch.Tensor, options: AugmentOptions, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rotation / shear / scale / translation about the centre (square S x S inputs)."""
    angle = math.radians(_rand(generator, -options.degrees, options.degrees))
    shear = math.radians(_rand(generator, -options.shear, options.shear))
    scale = _rand(generator, *options.scale)
    shift_x = _rand(generator, -options.translate, options.translate) * 2  # normalised coordinates
    shift_y = _rand(generator, -options.translate, options.translate) * 2
    if angle == 0 and shear == 0 and scale == 1 and shift_x == 0 and shift_y == 0:
        return images, masks
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shearing = torch.tensor([[1.0, math.tan(shear)], [0.0, 1.0]])
    forward = rotation @ shearing * scale  # input -> output, about the centre
    inverse = torch.linalg.inv(forward)
    # grid_sample looks up, for each output pixel, where it came from: p_in = A^-1 (p_out - t).
    shift = torch.tensor([shift_x, shift_y])
    theta = torch.cat([inverse, (-inverse @ shift)[:, None]], dim=1)[None]  # (1, 2, 3)
    frames = images.shape[0]
    grid = F.affine_grid(theta.expand(frames, 2, 3), list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if masks.shape[1]:
        warped_masks = F.grid_sample(masks.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        masks = warped_masks > 0.5
    return warped, masks


def _colour(images: torch.Tensor, options: AugmentOptions, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation (factors in [1 - v, 1 + v]), then maybe grayscale."""
    weights = torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]
    brightness = _rand(generator, 1 - options.brightness, 1 + options.brightness)
    contrast = _rand(generator, 1 - options.contrast, 1 + options.contrast)
    saturation = _rand(generator, 1 - options.saturation, 1 + options.saturation)
    gray_out = _rand(generator) < options.grayscale
    images = (images * brightness).clamp_(0, 1)
    mean_gray = (images * weights).sum(dim=1, keepdim=True).mean(dim=(-2, -1), keepdim=True)
    images = ((images - mean_gray) * contrast + mean_gray).clamp_(0, 1)
    gray = (images * weights).sum(dim=1, keepdim=True)
    images = ((images - gray) * saturation + gray).clamp_(0, 1)
    if gray_out:
        images = (images * weights).sum(dim=1, keepdim=True).expand_as(images).contiguous()
    return images


def augment_sample(
    images: torch.Tensor,
    masks: torch.Tensor,
    size: int,
    options: AugmentOptions,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a sample and bring it to the model: ``(T, 3, H, W)`` uint8 + ``(T, N, H, W)`` bool ->
    ``(T, 3, S, S)`` normalised float32 + ``(T, N, S, S)`` bool, the same draw on every frame."""
    height, width = images.shape[-2:]
    for _ in range(max(1, options.max_tries)):
        box = (0, 0, height, width)
        if options.crop > 0 and _rand(generator) < options.crop:
            box = _crop_box(height, width, options, generator)
        frames, frame_masks = _crop_resize(images, masks, box, size)
        if options.hflip > 0 and _rand(generator) < options.hflip:
            frames, frame_masks = frames.flip(-1), frame_masks.flip(-1)
        frames, frame_masks = _affine(frames, frame_masks, options, generator)
        if masks.shape[1] == 0 or frame_masks[0].any():
            return normalize_image(_colour(frames, options, generator)), frame_masks
    return resize_sample(images, masks, size)
