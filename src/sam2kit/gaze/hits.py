"""Hit tests of gaze points against AOI masks, with an optional tolerance in pixels or degrees.

A sample hits an AOI when the mask holds the point: the pixel containing it (pixel ``(i, j)``
covers ``[j, j + 1) x [i, i + 1)``) is in the mask. With a tolerance of ``r`` pixels it also hits
when some mask pixel has its centre within ``r`` of the point. A tolerance in degrees is turned
into pixels with the scene camera's focal length: ``r = f * tan(angle)``. Overlapping AOIs are all hit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError
from ..io.eyetracking import SceneCamera

__all__ = ["Tolerance", "hit_test", "parse_tolerance"]


@dataclass(frozen=True)
class Tolerance:
    """``value`` in ``unit`` (``"px"`` or ``"deg"``)."""

    value: float = 0.0
    unit: str = "px"

    def pixels(self, camera: SceneCamera) -> float:
        """The tolerance in pixels.

        Raises:
            ArgumentError: degrees for a recording without scene camera intrinsics.
        """
        if self.unit == "px" or self.value == 0:
            return self.value
        if camera.focal_px is None:
            raise ArgumentError(
                "tolerance in degrees needs the scene camera intrinsics, which this recording does not have; "
                "give it in pixels (e.g. 20px)", argument="tolerance",
            )
        return camera.degrees_to_pixels(self.value)

    def __str__(self) -> str:
        return f"{self.value:g}{self.unit}"


def parse_tolerance(text: str | float | Tolerance) -> Tolerance:
    """``"20px"``, ``"1.5deg"`` or a bare number (pixels) -> :class:`Tolerance`.

    Raises:
        ArgumentError: anything else, or a negative value.
    """
    if isinstance(text, Tolerance):
        return text
    if isinstance(text, (int, float)):
        text = f"{text}px"
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*(px|deg)?\s*", str(text).lower())
    if not match or not math.isfinite(float(match.group(1))):
        raise ArgumentError(f"tolerance must be a number >= 0 with unit px or deg (e.g. 20px, 1.5deg), got {text!r}",
                            argument="tolerance")
    return Tolerance(float(match.group(1)), match.group(2) or "px")


def hit_test(mask: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float = 0.0) -> np.ndarray:
    """Which of the points ``(x, y)`` (``(N,)`` pixels, origin top left) hit the ``(H, W)`` bool mask
    within ``radius`` pixels (see the module docstring); points outside the frame hit only within
    the radius of a mask pixel. Returns ``(N,)`` bool."""
    height, width = mask.shape
    col, row = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    hits = np.zeros(len(x), dtype=bool)
    hits[inside] = mask[row[inside], col[inside]]
    if radius <= 0:
        return hits
    for index in np.flatnonzero(~hits):
        px, py = float(x[index]), float(y[index])
        r0, r1 = max(math.ceil(py - radius - 0.5), 0), min(math.floor(py + radius - 0.5), height - 1)
        c0, c1 = max(math.ceil(px - radius - 0.5), 0), min(math.floor(px + radius - 0.5), width - 1)
        if r0 > r1 or c0 > c1:
            continue
        window = mask[r0:r1 + 1, c0:c1 + 1]
        if not window.any():
            continue
        rows, cols = np.nonzero(window)
        distance2 = (rows + r0 + 0.5 - py) ** 2 + (cols + c0 + 0.5 - px) ** 2
        hits[index] = bool((distance2 <= radius * radius).any())
    return hits
