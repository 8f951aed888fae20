"""Coloured mask overlays for visualisation (videos, notebooks, the CLI)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

# Matplotlib's tab10, for the first ten objects: bright and easy to tell apart.
_TAB10 = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip


def object_color(object_id: int) -> tuple[int, int, int]:
    """Deterministic RGB colour of an object id / mask index (tab10, then golden-ratio hues)."""
    if 0 <= object_id < len(_TAB10):
        return _TAB10[object_id]
    hue = (object_id * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return round(red * 255), round(green * 255), round(blue * 255)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of `mask` with a 4-neighbour outside it (image borders count as outside)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def overlay_masks(
    image: np.ndarray,
    masks: np.ndarray,
    *,
    colors: Sequence[Sequence[int]] | np.ndarray | None = None,
    object_ids: Sequence[int] | None = None,
    alpha: float = 0.5,
    draw_contours: bool = True,
) -> np.ndarray:
    """Blend coloured masks onto an image.

    Args:
        image: (H, W, 3) uint8 RGB.
        masks: (N, H, W) bool (or one (H, W) mask); later masks are drawn on top.
        colors: (N, 3) RGB 0..255 per mask; default `object_color(object_ids[i])`.
        object_ids: ids used to pick default colours, so an object keeps its colour across
            frames whatever its position in `masks`; default 0..N-1.
        alpha: mask opacity in [0, 1].
        draw_contours: draw a 1-pixel opaque outline of each mask.

    Returns:
        A new (H, W, 3) uint8 array.

    Raises:
        TypeError / ValueError: wrong dtypes, shapes or lengths.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        kind = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise TypeError(f"image must be a uint8 array (H, W, 3), got {kind}")
    if not isinstance(masks, np.ndarray) or masks.dtype != np.bool_:
        raise TypeError(f"masks must be a bool numpy array (N, H, W), got {getattr(masks, 'dtype', type(masks))}")
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks {masks.shape} do not match image {image.shape[:2]} (need (N, H, W))")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    count = masks.shape[0]
    if object_ids is not None and len(object_ids) != count:
        raise ValueError(f"got {len(object_ids)} object_ids for {count} masks")
    if colors is None:
        ids = range(count) if object_ids is None else object_ids
        palette = np.array([object_color(int(i)) for i in ids], dtype=np.float32).reshape(count, 3)
    else:
        palette = np.asarray(colors, dtype=np.float32).reshape(-1, 3)
        if palette.shape[0] != count:
            raise ValueError(f"got {palette.shape[0]} colors for {count} masks")
    output = image.astype(np.float32)
    for mask, color in zip(masks, palette, strict=True):
        output[mask] = output[mask] * (1.0 - alpha) + color * alpha
        if draw_contours:
            output[_boundary(mask)] = color
    return np.clip(np.rint(output), 0, 255).astype(np.uint8)
