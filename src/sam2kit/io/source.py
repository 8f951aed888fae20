"""The `FrameSource` interface shared by every video / frame source, and its small LRU cache.

A frame source is a read-only, random-access sequence of RGB frames of one fixed size:
`source[i]` is an (H, W, 3) uint8 C-contiguous array that the caller owns (a fresh copy each
call, so mutating it never corrupts a cache). Negative indices are rejected rather than
wrapped: in tracking code a negative frame index is almost always an off-by-one bug.
"""

from __future__ import annotations

import abc
import operator
import threading
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from sam2kit.io.closeable import Closeable


class VideoReadError(ValueError):
    """A video or frame file exists but cannot be read (not a video, corrupt, empty, ...)."""


class FrameCache:
    """A bounded least-recently-used map `frame index -> (H, W, 3) uint8 array`.

    Memory stays at most `capacity` frames whatever the video length.
    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"cache_size must be an int >= 1, got {capacity!r}")
        self.capacity = capacity
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()

    def get(self, index: int) -> np.ndarray | None:
        """The cached frame (marked most recently used) or None."""
        frame = self._frames.get(index)
        if frame is not None:
            self._frames.move_to_end(index)
        return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        """Insert `frame`, evicting the least recently used entries beyond `capacity`."""
        self._frames[index] = frame
        self._frames.move_to_end(index)
        while len(self._frames) > self.capacity:
            self._frames.popitem(last=False)

    def nearest(self, index: int, lowest: int = 0) -> np.ndarray | None:
        """The cached frame with the largest index in [lowest, index], else the one with the
        smallest index above `index`, else None."""
        below = [i for i in self._frames if lowest <= i <= index]
        if below:
            return self._frames[max(below)]
        above = [i for i in self._frames if i > index]
        return self._frames[min(above)] if above else None

    def clear(self) -> None:
        self._frames.clear()

    def indices(self) -> list[int]:
        """Cached frame indices, least recently used first."""
        return list(self._frames)

    def __len__(self) -> int:
        return len(self._frames)


class FrameSource(Closeable):
    """A random-access sequence of RGB frames, all of shape (height, width, 3), dtype uint8.

    Subclasses implement `__len__`, `height`, `width` and `_read(index)`; index validation,
    locking (sources may be shared with a prefetch thread), iteration and the context manager
    live here.
    """

    def __init__(self, name: str) -> None:
        self.name = name  # shown in error messages: a path, "array", "image list"
        self._lock = threading.RLock()

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of frames."""

    @property
    @abc.abstractmethod
    def height(self) -> int:
        """Frame height in pixels (original resolution)."""

    @property
    @abc.abstractmethod
    def width(self) -> int:
        """Frame width in pixels (original resolution)."""

    @property
    def fps(self) -> float | None:
        """Frames per second, or None when the source has no notion of time."""
        return None

    @abc.abstractmethod
    def _read(self, index: int) -> np.ndarray:
        """Frame `index` (already validated) as an (H, W, 3) uint8 array owned by the caller."""

    def get(self, index: int) -> np.ndarray:
        """Frame `index` as a new C-contiguous (height, width, 3) uint8 RGB array.

        Raises:
            TypeError: `index` is not an integer.
            IndexError: `index` is negative or >= len(self).
        """
        index = self._check_index(index)
        with self._lock:
            return self._read(index)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.get(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self.get(index)

    def __reversed__(self) -> Iterator[np.ndarray]:
        for index in range(len(self) - 1, -1, -1):
            yield self.get(index)

    def close(self) -> None:
        """Release file handles and caches; reading again later reopens lazily."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, frames={len(self)}, "
            f"height={self.height}, width={self.width}, fps={self.fps})"
        )

    def _check_index(self, index: int) -> int:
        if isinstance(index, (bool, np.bool_)):
            raise TypeError(f"frame index must be an int, got {index!r}")
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(
                f"frame index must be an int, got {type(index).__name__}; "
                "slices are not supported, iterate over range(...) instead"
            ) from None
        count = len(self)
        if not 0 <= index < count:
            kind = "negative frame indices are not supported; " if index < 0 else ""
            raise IndexError(
                f"{kind}frame index {index} is out of range for a video of {count} frames "
                f"(valid: 0..{count - 1})"
            )
        return index


def check_frame_array(frame: np.ndarray, what: str) -> np.ndarray:
    """Validate one RGB frame (H, W, 3) uint8 and return it C-contiguous.

    Raises:
        TypeError: not a numpy array, or dtype is not uint8.
        ValueError: shape is not (H, W, 3) with H, W > 0.
    """
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"{what}: expected a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise TypeError(
            f"{what}: frames must be uint8 RGB (values 0..255), got dtype {frame.dtype}; "
            "convert with (frame * 255).round().astype(np.uint8) if it is float in [0, 1]"
        )
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{what}: expected shape (H, W, 3), got {tuple(frame.shape)}")
    return np.ascontiguousarray(frame)
