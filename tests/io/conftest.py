"""Synthetic clips for the io tests: frame i shows its index as 6 binary blocks (robust to lossy
codecs, so the right frame can be checked on JPEG / H.264) and a red square moving right."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

NUM_FRAMES, HEIGHT, WIDTH = 40, 64, 96
BLOCK = 16


def make_frame(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """(H, W, 3) uint8: index bits as white blocks in the top row, a moving red square below."""
    frame = np.full((height, width, 3), 40, dtype=np.uint8)
    frame[:, :, 2] = np.linspace(0, 200, width, dtype=np.uint8)[None, :]  # a gradient: not trivially compressible
    for bit in range(6):
        if (index >> bit) & 1:
            frame[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 255
    if height > BLOCK + 16:
        x = (3 * index) % (width - 16)
        frame[BLOCK + 8 : BLOCK + 24, x : x + 16] = (255, 0, 0)
    return frame


def frame_index(frame: np.ndarray) -> int:
    """Read back the index written by `make_frame` (works after lossy compression)."""
    return sum(1 << bit for bit in range(6) if frame[4:12, bit * BLOCK + 4 : bit * BLOCK + 12].mean() > 160)


def write_video(
    path: Path, frames: np.ndarray, codec: str, pix_fmt: str, options: dict | None = None, fps: int = 10
) -> Path:
    """Encode `frames` (T, H, W, 3) with PyAV."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.options = options or {}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def has_encoder(name: str) -> bool:
    av = pytest.importorskip("av")
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def clip() -> np.ndarray:
    """(40, 64, 96, 3) uint8 synthetic clip."""
    return np.stack([make_frame(i) for i in range(NUM_FRAMES)])


@pytest.fixture(scope="session")
def read_index() -> Callable[[np.ndarray], int]:
    return frame_index


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def lossless_videos(clip: np.ndarray, video_dir: Path) -> dict[str, Path]:
    """Lossless encodings of `clip`: intra-only (ffv1, png) and, when available, H.264 RGB with
    crf 0, GOPs of 8 and B-frames (exercises keyframe seeking and frame reordering)."""
    videos = {}
    if has_encoder("ffv1"):
        videos["ffv1.mkv"] = write_video(video_dir / "ffv1.mkv", clip, "ffv1", "bgr0")
    if has_encoder("png"):
        videos["png.mov"] = write_video(video_dir / "png.mov", clip, "png", "rgb24")
    if has_encoder("libx264rgb"):
        options = {"crf": "0", "g": "8", "keyint_min": "8", "bf": "2"}
        videos["x264rgb.mkv"] = write_video(video_dir / "x264rgb.mkv", clip, "libx264rgb", "rgb24", options)
    if not videos:
        pytest.skip("PyAV has no lossless encoder (ffv1, png, libx264rgb)")
    return videos


@pytest.fixture(scope="session")
def lossy_mp4(clip: np.ndarray, video_dir: Path) -> Path:
    """H.264 (or MPEG-4 Part 2) mp4 of `clip`, GOPs of 8 with B-frames."""
    codec = "libx264" if has_encoder("libx264") else "mpeg4"
    options = {"g": "8", "bf": "2"} | ({"crf": "18", "keyint_min": "8"} if codec == "libx264" else {"b": "2000000"})
    return write_video(video_dir / "lossy.mp4", clip, codec, "yuv420p", options)


@pytest.fixture(scope="session")
def long_mp4(video_dir: Path) -> Path:
    """120 small frames (32x96) showing index i % 64, keyframe every 30: decode counts, memory."""
    frames = np.stack([make_frame(i % 64, 32, 96) for i in range(120)])
    codec = "libx264" if has_encoder("libx264") else "mpeg4"
    options = {"g": "30", "bf": "2"} | ({"keyint_min": "30", "sc_threshold": "0"} if codec == "libx264" else {})
    return write_video(video_dir / "long.mp4", frames, codec, "yuv420p", options)
