"""LiveStream: single-pass frames from a camera, a network stream or a file, for streaming use.

Unlike a `FrameSource` there is no random access and no length: frames are decoded as they
arrive and handed out once, so memory is constant and latency is one frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sam2kit.io.closeable import Closeable
from sam2kit.io.video_file import require_av

_URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


class StreamError(RuntimeError):
    """A live stream could not be opened, or failed while decoding."""


class LiveStream(Closeable):
    """Iterate over `(frame_index, timestamp_seconds, rgb)` of a live source.

    `rgb` is a new (H, W, 3) uint8 C-contiguous array; `frame_index` counts decoded frames from
    0; `timestamp_seconds` is the frame's presentation time (relative to the stream's own clock,
    so it need not start at 0), or `frame_index / fps` when the stream has no timestamps.
    Iteration ends cleanly at end of stream and is single-pass. Use as a context manager.

    Build with `open_stream(...)`.
    """

    def __init__(self, container: Any, source: str) -> None:
        self._container = container
        self._stream = container.streams.video[0]
        self.source = source
        self._next_index = 0

    @property
    def width(self) -> int:
        """Frame width in pixels as declared by the stream (0 if unknown before decoding)."""
        return int(self._stream.codec_context.width)

    @property
    def height(self) -> int:
        """Frame height in pixels as declared by the stream (0 if unknown before decoding)."""
        return int(self._stream.codec_context.height)

    @property
    def fps(self) -> float | None:
        """Declared frames per second, or None."""
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else None

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        av = require_av()
        if self._container is None:
            raise StreamError(f"stream {self.source} is closed")
        fps = self.fps or 30.0
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
                frames = packet.decode()
            except StopIteration:
                return
            except av.error.EOFError:
                return
            except av.error.FFmpegError as error:
                raise StreamError(f"stream {self.source} failed after {self._next_index} frames: {error}") from error
            for frame in frames:
                index = self._next_index
                self._next_index += 1
                timestamp = float(frame.time) if frame.time is not None else index / fps
                rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
                yield index, timestamp, rgb

    def close(self) -> None:
        """Close the underlying container; safe to call twice."""
        if self._container is not None:
            self._container.close()
            self._container = None


def open_stream(source: str | Path, *, options: dict[str, str] | None = None) -> LiveStream:
    """Open a camera, a network stream or a file for single-pass streaming.

    Args:
        source: a file path, a URL (rtsp://, http(s)://, rtmp://, udp://, ...) or a V4L2
            device path such as "/dev/video0" (opened with PyAV's "v4l2" format).
        options: FFmpeg options passed to the demuxer, e.g. {"rtsp_transport": "tcp"} or
            {"video_size": "1280x720", "framerate": "30"} for a camera.

    Raises:
        FileNotFoundError: a local path (not a URL or device) that does not exist.
        StreamError: the source cannot be opened or has no video stream.
        ImportError: PyAV is not installed.
    """
    av = require_av()
    source = str(source)
    is_url = source.lower().startswith(_URL_SCHEMES)
    is_device = source.startswith("/dev/video")
    if not is_url and not is_device and not Path(source).exists():
        raise FileNotFoundError(f"stream source not found: {source} (expected a file, a URL or /dev/videoN)")
    try:
        container = av.open(source, mode="r", format="v4l2" if is_device else None, options=options or {})
    except av.error.FFmpegError as error:
        raise StreamError(f"cannot open stream {source}: {error}") from error
    if not container.streams.video:
        container.close()
        raise StreamError(f"{source} has no video stream")
    if not is_url and not is_device:
        # Frame threading buys throughput at the cost of a few frames of latency: files only.
        container.streams.video[0].thread_type = "AUTO"
    return LiveStream(container, source)
