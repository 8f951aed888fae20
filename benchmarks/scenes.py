"""The inputs every side of the benchmarks gets: the image's prompts and the videos.

The image is scikit-image's astronaut resized to 1024x768 (:func:`benchmarks.common.bench_image`);
the videos are a window panning across that photograph, written once as JPEG folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from benchmarks.common import bench_image

#: One click on the astronaut's face in the 1024x768 image.
CLICK = (460.0, 180.0)
NUM_BOXES = 16
#: Video clicks as fractions of the frame's width and height (the first: the face on frame 0).
VIDEO_CLICKS = ((0.54, 0.375), (0.25, 0.70), (0.80, 0.80))
VIDEO_HW = (480, 854)


def benchmark_boxes(width: int, height: int, count: int = NUM_BOXES, seed: int = 0) -> np.ndarray:
    """``count`` seeded XYXY boxes inside a ``width`` x ``height`` image, 64 to 400 pixels a side."""
    rng = np.random.default_rng(seed)
    sizes = rng.uniform(64, 400, size=(count, 2))
    corners = rng.uniform(0, 1, size=(count, 2)) * (np.array([width, height]) - sizes)
    return np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)


def clicks(num_objects: int, height: int, width: int) -> list[tuple[float, float]]:
    """One click per object, in pixels of a ``height`` x ``width`` frame."""
    if not 1 <= num_objects <= len(VIDEO_CLICKS):
        raise ValueError(f"1 to {len(VIDEO_CLICKS)} objects, got {num_objects}")
    return [(fx * width, fy * height) for fx, fy in VIDEO_CLICKS[:num_objects]]


def panned_clip(count: int, height: int, width: int) -> Iterator[np.ndarray]:
    """``count`` frames ``(height, width, 3)`` uint8 of a window panning back and forth across the
    benchmark photograph (scaled so that a 480x854 window sees the 1024x768 original). Lazy."""
    photo = bench_image((max(round(width * 1024 / 854), width + 16), max(round(height * 768 / 480), height + 16)))
    span_y, span_x = photo.shape[0] - height, photo.shape[1] - width

    def bounce(position: int, span: int) -> int:
        position %= 2 * span
        return position if position <= span else 2 * span - position

    step_x, step_y = max(1, round(3 * width / 854)), max(1, round(2 * height / 480))
    for index in range(count):
        y, x = bounce(step_y * index, span_y), bounce(step_x * index, span_x)
        yield np.ascontiguousarray(photo[y : y + height, x : x + width])


def write_clip(folder: Path, count: int, hw: tuple[int, int]) -> Path:
    """The panned clip as a folder of JPEG frames ``00000.jpg`` ... (written once, then reused)."""
    from sam2kit.io.frames import write_frames_to_folder

    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    return write_frames_to_folder(panned_clip(count, *hw), folder, quality=90)


def frame_hw(folder: str | Path) -> tuple[int, int]:
    """``(height, width)`` of the first JPEG frame in a folder."""
    from PIL import Image

    with Image.open(next(iter(sorted(Path(folder).glob("*.jpg"))))) as image:
        return image.height, image.width
