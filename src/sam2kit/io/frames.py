"""Video and frame sources: one `open_frames(...)` for every way a user can hand over a video.

Every source is a `FrameSource` (see `sam2kit.io.source`): `len(source)`, `source.height`,
`source.width`, `source.fps`, `source[i]` -> (H, W, 3) uint8 RGB array, iteration forward and
`reversed(source)`. Sources decode lazily and keep at most `cache_size` decoded frames, so a
long video never has to fit in memory. Negative indices raise IndexError (no wrap-around).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from sam2kit.io.atomic import atomic_path
from sam2kit.io.source import FrameCache, FrameSource, VideoReadError, check_frame_array
from sam2kit.io.stream import LiveStream, StreamError, open_stream
from sam2kit.io.video_file import VideoFileSource

__all__ = [
    "ArraySource",
    "FrameSource",
    "ImageFolderSource",
    "ImageListSource",
    "LiveStream",
    "StreamError",
    "VideoFileSource",
    "VideoInput",
    "VideoReadError",
    "open_frames",
    "open_stream",
    "sort_frame_files",
    "write_frames_to_folder",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

ImageItem = str | os.PathLike | Image.Image | np.ndarray
VideoInput = str | os.PathLike | np.ndarray | Sequence[ImageItem] | FrameSource

_ACCEPTED = (
    "a video file path (mp4, mov, mkv, webm, avi, ...), a folder of .jpg/.jpeg/.png frames, "
    "a (T, H, W, 3) uint8 numpy array, a list of images (paths, PIL images or (H, W, 3) uint8 "
    "arrays) or a FrameSource"
)


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def sort_frame_files(paths: Iterable[Path]) -> list[Path]:
    """Frame order of a folder: numeric by stem when every stem is an integer (as the official
    SAM 2 does with int(stem): "2.jpg" < "10.jpg"), else natural order ("a2" < "a10")."""
    paths = list(paths)
    if all(re.fullmatch(r"\d+", path.stem) for path in paths):
        return sorted(paths, key=lambda path: (int(path.stem), path.name))
    return sorted(paths, key=lambda path: (_natural_key(path.name), path.name))


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as error:
        raise VideoReadError(f"cannot read frame image {path}: {error}") from error


def _load_rgb(path: Path, size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.size != size:
                raise ValueError(
                    f"frame {path} is {image.size[0]}x{image.size[1]} (WxH) but the video is "
                    f"{size[0]}x{size[1]}: all frames must have the same size"
                )
            return np.array(image.convert("RGB"), dtype=np.uint8, order="C")
    except (UnidentifiedImageError, OSError) as error:
        raise VideoReadError(f"cannot read frame image {path}: {error}") from error


class ArraySource(FrameSource):
    """Frames of an in-memory (T, H, W, 3) uint8 array (not copied; frames are copied on read).

    Raises:
        TypeError: dtype is not uint8 (float frames are not accepted: convert them explicitly).
        ValueError: shape is not (T, H, W, 3) with T, H, W > 0.
    """

    def __init__(self, frames: np.ndarray) -> None:
        super().__init__("array")
        if not isinstance(frames, np.ndarray):
            raise TypeError(f"expected a numpy array, got {type(frames).__name__}")
        if frames.dtype != np.uint8:
            raise TypeError(
                f"video array must be uint8 RGB (values 0..255), got dtype {frames.dtype}; "
                "convert with (frames * 255).round().astype(np.uint8) if it is float in [0, 1]"
            )
        if frames.ndim != 4 or frames.shape[3] != 3 or 0 in frames.shape:
            raise ValueError(f"video array must have shape (T, H, W, 3) with T, H, W > 0, got {frames.shape}")
        self._frames = frames

    def __len__(self) -> int:
        return self._frames.shape[0]

    @property
    def height(self) -> int:
        return self._frames.shape[1]

    @property
    def width(self) -> int:
        return self._frames.shape[2]

    def _read(self, index: int) -> np.ndarray:
        return np.array(self._frames[index], order="C")


class ImageListSource(FrameSource):
    """Frames given as a list of image paths, PIL images or (H, W, 3) uint8 arrays (mixed is OK).

    Arrays and PIL images are checked when the source is built; paths are decoded lazily and a
    size mismatch is reported when that frame is read.

    Raises:
        ValueError: empty list, bad array shape, or frames of different sizes.
        TypeError: an item of an unsupported type, or an array that is not uint8.
    """

    def __init__(self, images: Sequence[ImageItem], *, cache_size: int = 16) -> None:
        super().__init__("image list")
        if len(images) == 0:
            raise ValueError("the list of frames is empty")
        self._items: list[Path | Image.Image | np.ndarray] = []
        for position, item in enumerate(images):
            if isinstance(item, (str, os.PathLike)):
                path = Path(item)
                if not path.is_file():
                    raise FileNotFoundError(f"frame {position}: image file not found: {path}")
                self._items.append(path)
            elif isinstance(item, Image.Image):
                self._items.append(item)
            elif isinstance(item, np.ndarray):
                self._items.append(check_frame_array(item, f"frame {position}"))
            else:
                raise TypeError(
                    f"frame {position}: expected an image path, a PIL image or an (H, W, 3) uint8 "
                    f"array, got {type(item).__name__}"
                )
        self._size = self._item_size(self._items[0])  # (width, height)
        for position, item in enumerate(self._items):
            if not isinstance(item, Path) and self._item_size(item) != self._size:
                width, height = self._item_size(item)
                raise ValueError(
                    f"frame {position} is {width}x{height} (WxH) but frame 0 is "
                    f"{self._size[0]}x{self._size[1]}: all frames must have the same size"
                )
        self._cache = FrameCache(cache_size)

    @staticmethod
    def _item_size(item: Path | Image.Image | np.ndarray) -> tuple[int, int]:
        if isinstance(item, Path):
            return _image_size(item)
        if isinstance(item, Image.Image):
            return item.size
        return item.shape[1], item.shape[0]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def height(self) -> int:
        return self._size[1]

    @property
    def width(self) -> int:
        return self._size[0]

    def _read(self, index: int) -> np.ndarray:
        item = self._items[index]
        if isinstance(item, np.ndarray):
            return item.copy()
        frame = self._cache.get(index)
        if frame is None:
            if isinstance(item, Path):
                frame = _load_rgb(item, self._size)
            else:
                frame = np.array(item.convert("RGB"), dtype=np.uint8, order="C")
            self._cache.put(index, frame)
        return frame.copy()

    def close(self) -> None:
        self._cache.clear()


class ImageFolderSource(ImageListSource):
    """Frames stored as .jpg/.jpeg/.png files (any case) in one folder, in `sort_frame_files`
    order; decoded lazily with PIL. The frame size comes from the first file's header.

    Raises:
        FileNotFoundError: the folder does not exist.
        VideoReadError: the folder holds no frame files, or the first one is unreadable.
        ValueError (when reading a frame): that file has a different size; the message names it.
    """

    def __init__(self, folder: str | Path, *, cache_size: int = 16) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"frame folder not found: {folder}")
        files = [
            path
            for path in folder.iterdir()
            if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()
        ]
        if not files:
            raise VideoReadError(f"no {'/'.join(IMAGE_EXTENSIONS)} frames found in folder {folder}")
        super().__init__(sort_frame_files(files), cache_size=cache_size)
        self.name = str(folder)
        self.folder = folder

    @property
    def frame_paths(self) -> list[Path]:
        """The frame files, in frame order."""
        return list(self._items)  # type: ignore[arg-type]


def open_frames(video: VideoInput, *, cache_size: int = 16) -> FrameSource:
    """Open any supported video input as a lazy `FrameSource`.

    Args:
        video: a video file path, a folder of .jpg/.jpeg/.png frames, a single image file
            (a one-frame video), a (T, H, W, 3) uint8 array, a list/tuple of images (paths, PIL
            images or (H, W, 3) uint8 arrays) or a FrameSource (returned as is).
        cache_size: decoded frames kept in memory (LRU) by file-backed sources.

    Raises:
        TypeError: an unsupported input type (the message lists what is accepted).
        FileNotFoundError: the path does not exist.
        VideoReadError (a ValueError): empty folder, file that is not a readable video, no frames.
        ValueError: an array of the wrong shape.
    """
    if isinstance(video, FrameSource):
        return video
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if not path.exists():
            hint = " (for live network streams use open_stream)" if "://" in str(video) else ""
            raise FileNotFoundError(f"no such video file or frame folder: {path}{hint}")
        if path.is_dir():
            return ImageFolderSource(path, cache_size=cache_size)
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageListSource([path], cache_size=cache_size)
        return VideoFileSource(path, cache_size=cache_size)
    if isinstance(video, np.ndarray):
        if video.ndim == 3:
            raise ValueError(
                f"got a single image of shape {video.shape}; a video array must be (T, H, W, 3): "
                "pass image[None] or [image]"
            )
        return ArraySource(video)
    if isinstance(video, (list, tuple)):
        return ImageListSource(video, cache_size=cache_size)
    raise TypeError(f"cannot open {type(video).__name__} as a video; expected {_ACCEPTED}")


def write_frames_to_folder(
    frames: Iterable[np.ndarray],
    folder: str | Path,
    *,
    quality: int = 95,
    extension: str = ".jpg",
) -> Path:
    """Write frames as 00000.jpg, 00001.jpg, ... (the layout the official SAM 2 predictor reads).

    Args:
        frames: (H, W, 3) uint8 RGB arrays, e.g. a FrameSource.
        folder: created if missing; existing files with the same names are replaced.
        quality: JPEG quality 1..100 (ignored for PNG).
        extension: ".jpg", ".jpeg" or ".png".

    Returns:
        `folder` as a Path. Each file is written atomically.

    Raises:
        ValueError: bad quality/extension, no frames, or frames of different sizes.
        TypeError: a frame that is not a uint8 array.
    """
    extension = extension.lower()
    if extension not in IMAGE_EXTENSIONS:
        raise ValueError(f"extension must be one of {IMAGE_EXTENSIONS}, got {extension!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shape = None
    count = 0
    for index, frame in enumerate(frames):
        frame = check_frame_array(frame, f"frame {index}")
        if shape is not None and frame.shape != shape:
            raise ValueError(f"frame {index} has shape {frame.shape} but frame 0 has {shape}")
        shape = frame.shape
        with atomic_path(folder / f"{index:05d}{extension}") as temporary:
            options = {"quality": quality} if extension != ".png" else {}
            Image.fromarray(frame).save(temporary, format="JPEG" if extension != ".png" else "PNG", **options)
        count += 1
    if count == 0:
        raise ValueError("no frames to write")
    return folder
