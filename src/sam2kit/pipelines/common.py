"""What the jobs share: the model argument, image reading, and checks of output paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ArgumentError
from ..model_spec import LoadedModel, ModelSpec, load_model

__all__ = ["OVERLAY_SUFFIXES", "ImageReadError", "check_out_dir", "check_overlay_path", "load_image", "resolve_model"]

#: Containers an overlay video can be written to (the encoder is H.264 or MPEG-4).
OVERLAY_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi")


class ImageReadError(ValueError):
    """The image file cannot be decoded."""


def resolve_model(model: ModelSpec | LoadedModel | None) -> LoadedModel:
    """A loaded model as it is (a caller running many jobs loads it once), or the spec loaded
    (``None``: the default :class:`ModelSpec`, official SAM 2.1 tiny from the hub).

    Raises:
        the errors of :func:`sam2kit.model_spec.load_model`.
    """
    if isinstance(model, LoadedModel):
        return model
    return load_model(ModelSpec() if model is None else model)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB, with its EXIF orientation applied.

    Raises:
        FileNotFoundError: no such file. ImageReadError: not a readable image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            return np.array(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from None


def check_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a path, checked to be a folder or nothing yet (it is created by the job).

    Raises:
        ArgumentError: it exists and is not a folder.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArgumentError(f"out_dir {out} exists and is not a folder", argument="out_dir")
    return out


def check_overlay_path(overlay: str | Path | None) -> Path | None:
    """The overlay video path, checked to be a file name with a video suffix (``None`` stays ``None``).

    Raises:
        ArgumentError: another suffix, or an existing folder.
    """
    if overlay is None:
        return None
    path = Path(overlay)
    if path.suffix.lower() not in OVERLAY_SUFFIXES:
        raise ArgumentError(
            f"overlay must be a video file ending in {', '.join(OVERLAY_SUFFIXES)}; got {path}", argument="overlay"
        )
    if path.is_dir():
        raise ArgumentError(
            f"overlay {path} is a folder; give a file name such as {path / 'overlay.mp4'}", argument="overlay"
        )
    return path
