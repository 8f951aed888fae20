"""Small test media for the service tests (a PNG with a bright square, a short MP4), and a reader of
server-sent event streams."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

__all__ = ["png_bytes", "sse_events", "write_video"]


def png_bytes(height: int = 48, width: int = 64, seed: int = 0) -> bytes:
    """A small image with a bright square on a dark background, as PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = (rng.random((height, width, 3)) * 60).astype(np.uint8)
    pixels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = (220, 200, 40)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_video(path: Path, frames: int = 4, height: int = 48, width: int = 64) -> Path:
    """A short MP4 of a square moving right."""
    from sam2kit.io.video_writer import VideoWriter

    with VideoWriter(path, fps=5) as writer:
        for t in range(frames):
            pixels = np.full((height, width, 3), 30, dtype=np.uint8)
            x = 8 + 4 * t
            pixels[14:34, x : x + 20] = (230, 60, 60)
            writer.write(pixels)
    return path


def sse_events(client, url: str) -> list[tuple[str | None, dict]]:  # type: ignore[no-untyped-def]
    """The (event name, JSON data) pairs of a server-sent event stream, read to its end."""
    import json

    events = []
    with client.stream("GET", url) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line[5:])))
    return events
