"""The side protocol: what the benchmark suite asks of every implementation it compares.

The suite (:mod:`benchmarks.worker`, through :func:`benchmarks.sides.make_side`) drives a side
only through these methods, numpy in and out, coordinates in pixels of the original image / frame.
Our sides (:mod:`benchmarks.sides`) and the third-party peers (:mod:`benchmarks.peers`) implement
it; this module imports neither, so the dependencies run one way: suite -> sides -> peers -> here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch


class Side(Protocol):
    """One implementation of SAM 2 as the benchmarks drive it."""

    def set_image(self, image: np.ndarray) -> None:
        """Compute and keep the embedding of an ``(H, W, 3)`` uint8 RGB image."""
        ...

    def predict_click(self, xy: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """One positive click, 3 candidates: masks ``(3, H, W)`` bool, scores ``(3,)``."""
        ...

    def predict_boxes(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 4)`` XYXY boxes, one mask each: masks ``(N, 1, H, W)`` bool, scores ``(N, 1)``."""
        ...

    def video_open(self, folder: str) -> None:
        """Open a folder of JPEG frames (``00000.jpg`` ...) as a new tracking session."""
        ...

    def video_click(self, frame_idx: int, obj_id: int, xy: tuple[float, float]) -> np.ndarray:
        """One positive click for ``obj_id``: the frame's masks ``(num_objects, H, W)`` bool."""
        ...

    def video_propagate(self) -> Iterator[tuple[int, np.ndarray]]:
        """Track forward from the first prompted frame: ``(frame_idx, (num_objects, H, W) bool)``."""
        ...

    def video_close(self) -> None:
        """End the tracking session."""
        ...

    def forward_image(self, batch: torch.Tensor) -> Any:
        """The model's image encoder on a ``(1, 3, S, S)`` normalised tensor."""
        ...

    def stage_modules(self) -> dict[str, list[torch.nn.Module]]:
        """Stage name (:data:`benchmarks.hardware.STAGES`) -> the video model's modules doing it, for
        :class:`benchmarks.hardware.StageProfiler`."""
        ...


class MaskGeneratingSide(Side, Protocol):
    """A side that also runs the automatic mask generator (the transformers peer has none)."""

    def generate_masks(self, image: np.ndarray, points_per_side: int) -> list[dict[str, Any]]:
        """Automatic masks of an ``(H, W, 3)`` uint8 image, as the official record dicts."""
        ...
