"""Seeded synthetic scenes: coloured shapes on textured backgrounds, as still images and clips.

Each scene has a background (smooth noise, stripes or a gradient, plus grain) and a few shapes
(circle, ellipse, rectangle, triangle, polygon) with their own colour and texture, painted back to
front. In a clip every shape moves, turns and grows or shrinks; shapes cross and hide one another,
and some leave the frame. Instance masks are occlusion-aware: a pixel belongs to the front-most
shape that covers it, so a hidden part is in no mask, and a shape fully hidden or out of frame has
an empty mask on that frame.

:func:`write_synthetic_dataset` writes both layouts that :mod:`sam2kit.train.data` reads: an image
folder (``images/NAME.jpg`` + ``masks/NAME.png``, value k = object k) and a DAVIS folder
(``JPEGImages/<clip>/00000.jpg`` + ``Annotations/<clip>/00000.png`` palette PNGs). Only numpy and
PIL; every image or clip has its own random stream derived from ``(seed, kind, index)``, so any
item can be regenerated alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SceneOptions", "SyntheticSummary", "render_image", "render_clip", "write_synthetic_dataset"]

SHAPES = ("circle", "ellipse", "rectangle", "triangle", "polygon")
_IMAGE_STREAM, _CLIP_STREAM = 1, 2


@dataclass(frozen=True)
class SceneOptions:
    """What the scenes look like. Lengths are fractions of the image side unless said otherwise.

    Attributes:
        min_objects / max_objects: shapes per scene (uniform).
        min_radius / max_radius: shape size (radius of the bounding circle).
        max_speed: largest drift per frame; max_turn: largest rotation per frame (degrees);
        max_growth: largest relative size change per frame.
        prob_leave: probability that a shape of a clip heads out of the frame fast enough to leave it.
        min_visible: smallest visible area (fraction of the image) of a labelled shape: on a still
            image, and on frame 0 of a clip (shapes below it are left out of the scene).
        jpeg_quality: of the written images.
    """

    min_objects: int = 2
    max_objects: int = 5
    min_radius: float = 0.07
    max_radius: float = 0.2
    max_speed: float = 0.03
    max_turn: float = 6.0
    max_growth: float = 0.03
    prob_leave: float = 0.25
    min_visible: float = 0.004
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects <= 255:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= 255, got {self.min_objects}, {self.max_objects}")
        if not 0 < self.min_radius <= self.max_radius:
            raise ValueError(f"need 0 < min_radius <= max_radius, got {self.min_radius}, {self.max_radius}")


@dataclass
class _Shape:
    kind: str
    outline: np.ndarray  # (V, 2) unit-size vertices around the origin
    center: np.ndarray  # (2,) x, y in pixels at frame 0
    velocity: np.ndarray  # (2,) pixels per frame
    radius: float  # pixels at frame 0
    growth: float  # relative size change per frame
    angle: float  # degrees at frame 0
    turn: float  # degrees per frame
    texture: np.ndarray  # (S, S, 3) uint8 colours of the shape everywhere

    def polygon(self, t: int) -> list[tuple[float, float]]:
        theta = math.radians(self.angle + self.turn * t)
        rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        scale = self.radius * (1 + self.growth) ** t
        points = self.outline @ rotation.T * scale + self.center + self.velocity * t
        return [tuple(p) for p in points.tolist()]


def _outline(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-size outline vertices of a shape kind."""
    if kind in ("circle", "ellipse"):
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        aspect = 1.0 if kind == "circle" else rng.uniform(0.4, 0.75)
        return np.stack([np.cos(angles), aspect * np.sin(angles)], axis=1)
    if kind == "rectangle":
        half_h = rng.uniform(0.35, 0.9) / math.sqrt(2)
        half_w = 1 / math.sqrt(2)
        return np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    if kind == "triangle":
        angles = np.array([90, 210, 330]) + rng.uniform(-20, 20, 3)
        return np.stack([np.cos(np.radians(angles)), np.sin(np.radians(angles))], axis=1)
    count = int(rng.integers(5, 9))  # an irregular (often concave) polygon
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = rng.uniform(0.45, 1.0, count)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _upsample(values: np.ndarray, size: int) -> np.ndarray:
    """``(h, w, C)`` float in [0, 1] -> ``(size, size, C)`` uint8, bilinear (PIL, in C)."""
    channels = values.shape[-1]
    small = (np.clip(values, 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(small[..., 0] if channels == 1 else small)
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR)).reshape(size, size, channels)


def _pattern(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random texture: two colours mixed by smooth noise, stripes or a gradient: ``(S, S, 3)``
    uint8. Drawn at a quarter of the resolution and upsampled: textures are smooth anyway."""
    low = max(16, size // 4)
    colour_a, colour_b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    style = rng.integers(3)
    if style == 0:
        cells = int(rng.integers(3, 12))
        weight = np.asarray(_upsample(rng.random((cells, cells, 1)), low), dtype=np.float64) / 255
    else:
        yy, xx = np.mgrid[:low, :low] / low
        theta = rng.uniform(0, np.pi)
        coordinate = math.cos(theta) * xx + math.sin(theta) * yy
        if style == 1:
            weight = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 10) * coordinate + rng.uniform(0, 2 * np.pi))
        else:
            weight = coordinate - coordinate.min()
            weight = weight / max(float(weight.max()), 1e-6)
        weight = weight[..., None]
    return _upsample(colour_a + (colour_b - colour_a) * weight, size)


def _shape_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A shape's colours, ``(S, S, 3)`` uint8: mostly one colour with soft shading, sometimes a
    two-colour pattern."""
    if rng.random() < 0.6:
        cells = int(rng.integers(2, 5))
        shade = rng.uniform(0.8, 1.0) + 0.15 * rng.random((cells, cells, 1))
        return _upsample(rng.uniform(0, 1, 3) * shade, size)
    return _pattern(rng, size)


def _new_shapes(rng: np.random.Generator, size: int, options: SceneOptions, num_frames: int) -> list[_Shape]:
    shapes = []
    for _ in range(int(rng.integers(options.min_objects, options.max_objects + 1))):
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        radius = rng.uniform(options.min_radius, options.max_radius) * size
        center = rng.uniform(0.15, 0.85, 2) * size
        direction = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0, options.max_speed) * size
        if num_frames > 1 and rng.random() < options.prob_leave:
            # Fast enough to cross the frame's edge (plus its own size) within the clip.
            speed = max(speed, 1.6 * (size + radius) / num_frames)
        shapes.append(
            _Shape(
                kind=kind,
                outline=_outline(kind, rng),
                center=center,
                velocity=speed * np.array([math.cos(direction), math.sin(direction)]),
                radius=radius,
                growth=rng.uniform(-options.max_growth, options.max_growth),
                angle=rng.uniform(0, 360),
                turn=rng.uniform(-options.max_turn, options.max_turn),
                texture=_shape_texture(rng, size),
            )
        )
    return shapes


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    return _pattern(rng, size)


def _visible_masks(shapes: list[_Shape], t: int, size: int) -> np.ndarray:
    """``(N, S, S)`` bool: the pixels where each shape is the front-most (list order = depth,
    first = back) on frame ``t``."""
    raw = np.zeros((len(shapes), size, size), dtype=bool)
    for index, shape in enumerate(shapes):
        layer = Image.new("L", (size, size), 0)
        ImageDraw.Draw(layer).polygon(shape.polygon(t), fill=1)
        raw[index] = np.asarray(layer, dtype=bool)
    visible = raw.copy()
    covered = np.zeros((size, size), dtype=bool)
    for index in range(len(shapes) - 1, -1, -1):  # front to back
        visible[index] &= ~covered
        covered |= raw[index]
    return visible


def _render(
    background: np.ndarray, shapes: list[_Shape], t: int, grain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t``: ``(S, S, 3)`` uint8 and ``(N, S, S)`` bool visible masks."""
    visible = _visible_masks(shapes, t, background.shape[0])
    canvas = background.copy()
    for shape, mask in zip(shapes, visible, strict=True):
        # The texture travels with the shape (its turning is not followed: textures are smooth).
        dx, dy = (int(round(v)) for v in shape.velocity * t)
        texture = np.roll(shape.texture, (dy, dx), axis=(0, 1)) if (dx or dy) else shape.texture
        np.copyto(canvas, texture, where=mask[..., None])
    image = np.clip(canvas.astype(np.int16) + grain, 0, 255).astype(np.uint8)
    return image, visible


def render_clip(
    rng: np.random.Generator, num_frames: int, size: int = 256, options: SceneOptions = SceneOptions()
) -> tuple[np.ndarray, np.ndarray]:
    """A clip of moving shapes: ``(T, S, S, 3)`` uint8 frames and ``(T, N, S, S)`` bool masks.

    Every one of the N shapes is visible on frame 0 (at least ``options.min_visible`` of the image);
    later it may be hidden or gone (empty mask).
    """
    if num_frames < 1 or size < 16:
        raise ValueError(f"need num_frames >= 1 and size >= 16, got {num_frames}, {size}")
    background = _background(rng, size)
    shapes = _new_shapes(rng, size, options, num_frames)
    visible = _visible_masks(shapes, 0, size)
    min_area = options.min_visible * size * size
    shapes = [s for s, m in zip(shapes, visible, strict=True) if m.sum() >= min_area]
    if not shapes:  # every shape hidden: keep the front-most, which nothing covers
        shapes = _new_shapes(rng, size, options, num_frames)[-1:]
        shapes[0].center = np.array([size / 2, size / 2])
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    masks = np.empty((num_frames, len(shapes), size, size), dtype=bool)
    for t in range(num_frames):
        grain = rng.integers(-8, 9, (size, size, 1), dtype=np.int16)  # sensor-like noise
        frames[t], masks[t] = _render(background, shapes, t, grain)
    return frames, masks


def render_image(
    rng: np.random.Generator, size: int = 256, options: SceneOptions = SceneOptions()
) -> tuple[np.ndarray, np.ndarray]:
    """A still scene: ``(S, S, 3)`` uint8 and ``(N, S, S)`` bool masks of its visible shapes."""
    frames, masks = render_clip(rng, 1, size, options)
    return frames[0], masks[0]


def _label_map(masks: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` disjoint bool masks -> ``(H, W)`` uint8 ids (object k has id k + 1)."""
    ids = np.zeros(masks.shape[1:], dtype=np.uint8)
    for index, mask in enumerate(masks):
        ids[mask] = index + 1
    return ids


def _save_palette(path: Path, ids: np.ndarray) -> None:
    from .io.masks import save_palette_png

    save_palette_png(path, ids)


@dataclass
class SyntheticSummary:
    """What :func:`write_synthetic_dataset` wrote: the root, the names and object counts."""

    root: Path
    images: list[str]
    clips: list[str]
    num_image_objects: int
    num_clip_objects: int


def write_synthetic_dataset(
    out_dir: str | Path,
    num_images: int = 1000,
    num_clips: int = 100,
    frames: int = 24,
    size: int = 256,
    seed: int = 0,
    options: SceneOptions = SceneOptions(),
) -> SyntheticSummary:
    """Write ``num_images`` still scenes and ``num_clips`` clips of ``frames`` frames under ``out_dir``:

    - ``images/img_00000.jpg`` + ``masks/img_00000.png`` (palette PNG, value k = object k);
    - ``JPEGImages/clip_0000/00000.jpg`` + ``Annotations/clip_0000/00000.png`` (DAVIS layout).

    The same ``seed`` writes the same files (image i and clip i depend only on ``(seed, i)``).
    """
    root = Path(out_dir)
    image_names, clip_names = [], []
    image_objects = clip_objects = 0
    if num_images:
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
    for index in range(num_images):
        image, masks = render_image(np.random.default_rng([seed, _IMAGE_STREAM, index]), size, options)
        name = f"img_{index:05d}"
        Image.fromarray(image).save(root / "images" / f"{name}.jpg", quality=options.jpeg_quality)
        _save_palette(root / "masks" / f"{name}.png", _label_map(masks))
        image_names.append(name)
        image_objects += len(masks)
    for index in range(num_clips):
        clip, masks = render_clip(np.random.default_rng([seed, _CLIP_STREAM, index]), frames, size, options)
        name = f"clip_{index:04d}"
        frame_dir, mask_dir = root / "JPEGImages" / name, root / "Annotations" / name
        frame_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for t in range(frames):
            Image.fromarray(clip[t]).save(frame_dir / f"{t:05d}.jpg", quality=options.jpeg_quality)
            _save_palette(mask_dir / f"{t:05d}.png", _label_map(masks[t]))
        clip_names.append(name)
        clip_objects += masks.shape[1]
    return SyntheticSummary(root, image_names, clip_names, image_objects, clip_objects)
