"""The frames of a live stream: validated one by one, only the latest held.

:class:`StreamFrames` is the frame source the stream predictor tracks on; :func:`frame_to_array`
validates one incoming frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..io.source import FrameSource

__all__ = ["StreamFrames", "frame_to_array"]

_ACCEPTED = "an RGB (H, W, 3) uint8 numpy array, a PIL image, or a (3, H, W) torch tensor (uint8, or float in [0, 1])"


def frame_to_array(frame: Any, name: str = "frame") -> np.ndarray:
    """Validate one stream frame and return it as a C-contiguous ``(H, W, 3)`` uint8 RGB array.

    Accepted: an ``(H, W, 3)`` uint8 numpy array; a PIL image (converted to RGB); a ``(3, H, W)``
    torch tensor, uint8 (0..255) or float (0..1, rounded to 8 bits like a decoded video frame).

    Raises:
        TypeError: unsupported type or dtype. ValueError: wrong shape / channel count, empty image,
            or float values outside [0, 1].
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None  # type: ignore[assignment]
    if Image is not None and isinstance(frame, Image.Image):
        return np.ascontiguousarray(np.asarray(frame.convert("RGB"), dtype=np.uint8))
    if isinstance(frame, np.ndarray):
        if frame.dtype != np.uint8:
            raise TypeError(
                f"{name} must be a uint8 array with values 0..255, got dtype {frame.dtype}; "
                "convert with (frame * 255).round().astype(np.uint8) if it is float in [0, 1]"
            )
        if frame.ndim != 3 or frame.shape[2] != 3:
            hint = " (drop the alpha channel: frame[..., :3])" if frame.ndim == 3 and frame.shape[2] == 4 else ""
            hint = hint or (" (grayscale: np.stack([frame] * 3, -1))" if frame.ndim == 2 else "")
            if not hint and frame.ndim == 3 and frame.shape[0] == 3:
                hint = " (channels first? use frame.transpose(1, 2, 0))"
            raise ValueError(f"{name} must be an RGB array of shape (H, W, 3), got shape {frame.shape}{hint}")
        _check_not_empty(frame.shape[0], frame.shape[1], name)
        return np.ascontiguousarray(frame)
    if isinstance(frame, torch.Tensor):
        if frame.ndim != 3 or frame.shape[0] != 3:
            raise ValueError(f"{name} tensor must have shape (3, H, W), got {tuple(frame.shape)}")
        _check_not_empty(frame.shape[1], frame.shape[2], name)
        pixels = frame.detach()
        if pixels.dtype != torch.uint8:
            if not pixels.is_floating_point():
                raise TypeError(f"{name} tensor must be uint8 (0..255) or float (0..1), got {pixels.dtype}")
            low, high = float(pixels.min()), float(pixels.max())
            if not (0.0 <= low and high <= 1.0):
                raise ValueError(f"{name} float tensor must hold values in [0, 1], got [{low:g}, {high:g}]")
            pixels = (pixels.float() * 255.0).round().to(torch.uint8)
        return np.ascontiguousarray(pixels.permute(1, 2, 0).cpu().numpy())
    raise TypeError(f"{name} must be {_ACCEPTED}; got {type(frame).__name__}")


def _check_not_empty(height: int, width: int, name: str) -> None:
    if height == 0 or width == 0:
        raise ValueError(f"{name} is empty ({height}x{width} pixels)")


class StreamFrames(FrameSource):
    """A frame source that grows by one frame per :meth:`append` and holds only the latest frame.

    ``len(source)`` is the number of frames seen so far; ``source[len(source) - 1]`` is the only
    readable frame (earlier ones raise IndexError). All frames must have the size of the first.
    """

    def __init__(self, name: str = "stream") -> None:
        super().__init__(name)
        self._count = 0
        self._latest: np.ndarray | None = None
        self._size: tuple[int, int] | None = None  # (height, width)

    def __len__(self) -> int:
        return self._count

    @property
    def height(self) -> int:
        return self._size[0] if self._size is not None else 0

    @property
    def width(self) -> int:
        return self._size[1] if self._size is not None else 0

    def check(self, frame: Any) -> np.ndarray:
        """The frame as an ``(H, W, 3)`` uint8 array if it can be appended (nothing is changed).

        Raises:
            TypeError / ValueError: see :func:`frame_to_array`; ValueError also for a frame whose size
            differs from the stream's.
        """
        array = frame_to_array(frame, f"frame {self._count}")
        if self._size is not None and array.shape[:2] != self._size:
            raise ValueError(
                f"frame {self._count} is {array.shape[1]}x{array.shape[0]} (WxH) but the stream is "
                f"{self._size[1]}x{self._size[0]}: every frame of a stream must have the same size "
                "(call load_first_frame to start a new stream)"
            )
        return array

    def append(self, frame: Any) -> int:
        """Validate and add a frame (see :meth:`check`); returns its index."""
        array = self.check(frame)
        with self._lock:
            self._latest = array
            self._size = (array.shape[0], array.shape[1])
            self._count += 1
            return self._count - 1

    def _read(self, index: int) -> np.ndarray:
        if index != self._count - 1 or self._latest is None:
            raise IndexError(
                f"frame {index} is no longer held: a stream keeps only its latest frame ({self._count - 1})"
            )
        return self._latest.copy()

    def close(self) -> None:
        self._latest = None
