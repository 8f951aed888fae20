"""Request input checks: API errors, uploads read within the size limit and recognised by their
content (never their name), and paths confined to the media root."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "IMAGE_TYPES",
    "VIDEO_TYPES",
    "ApiError",
    "decode_image",
    "media_path",
    "read_upload",
    "sniff_image",
    "sniff_video",
]

#: Image types accepted, by content: name -> file extension.
IMAGE_TYPES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
#: Video containers accepted, by content: name -> file extension.
VIDEO_TYPES = {"mp4": ".mp4", "webm": ".webm", "avi": ".avi"}

_CHUNK = 1 << 20


class ApiError(Exception):
    """A request the service refuses: answered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def read_upload(upload: Any, max_bytes: int, dest: Path | None = None) -> bytes:
    """Read an uploaded file (a starlette ``UploadFile``) up to ``max_bytes``.

    With ``dest`` the content is written there (and ``b""`` returned) so a large video never sits in
    memory; else it is returned.

    Raises:
        ApiError: 413 when larger than ``max_bytes``, 400 when empty.
    """
    total = 0
    chunks: list[bytes] = []
    sink = open(dest, "wb") if dest is not None else None  # noqa: SIM115 - closed below
    try:
        while True:
            chunk = upload.file.read(_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise ApiError(
                    413, "too_large", f"upload is larger than the limit of {max_bytes / 2**20:.3g} MiB (max_upload_mb)"
                )
            if sink is not None:
                sink.write(chunk)
            else:
                chunks.append(chunk)
    finally:
        if sink is not None:
            sink.close()
    if total == 0:
        raise ApiError(400, "empty_upload", "the uploaded file is empty")
    return b"".join(chunks)


def sniff_image(head: bytes) -> str | None:
    """``"png"``, ``"jpeg"`` or ``"webp"`` from a file's first bytes, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def sniff_video(head: bytes) -> str | None:
    """``"mp4"`` (also QuickTime), ``"webm"`` (also Matroska) or ``"avi"`` from the first bytes, else None."""
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """An uploaded image as ``(H, W, 3)`` uint8 RGB (EXIF rotation applied).

    Raises:
        ApiError: 415 not a PNG / JPEG / WebP by content, 413 too many pixels, 400 a truncated or
            corrupt file.
    """
    from PIL import Image, ImageOps

    kind = sniff_image(data[:16])
    if kind is None:
        raise ApiError(415, "unsupported_type", "not an image: accepted types are PNG, JPEG and WebP (by content)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                raise ApiError(
                    413, "too_large", f"image of {image.width}x{image.height} pixels is over the limit of "
                    f"{max_pixels} pixels (max_image_pixels)"
                )
            image.load()
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except ApiError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ApiError(
            400, "bad_image", f"the {kind.upper()} file cannot be decoded (truncated or corrupt): {error}"
        ) from None
    return np.asarray(rgb, dtype=np.uint8).copy()


def media_path(media_root: Path | None, relative: str) -> Path:
    """``relative`` resolved inside ``media_root`` (symbolic links followed).

    Raises:
        ApiError: 403 when opening by path is disabled or the path leaves the root, 404 when missing.
    """
    if media_root is None:
        raise ApiError(
            403, "no_media_root", "opening videos by path is disabled: start the server with --media-root DIR"
        )
    if "\x00" in relative:
        raise ApiError(400, "bad_path", "path contains a NUL byte")
    root = Path(os.path.realpath(media_root))
    target = Path(os.path.realpath(root / relative))
    if target != root and root not in target.parents:
        raise ApiError(403, "outside_media_root", f"path {relative!r} is outside the media root; give a path inside it")
    if not target.exists():
        raise ApiError(404, "not_found", f"no such file or folder under the media root: {relative!r}")
    return target
