"""VideoWriter: RGB frames to an mp4 (H.264 when available), written atomically."""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from sam2kit.io.atomic import atomic_path
from sam2kit.io.closeable import Closeable
from sam2kit.io.source import check_frame_array
from sam2kit.io.video_file import fraction_fps, require_av

_DEFAULT_CODECS = ("libx264", "mpeg4")


def _encoder_available(av: Any, name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # PyAV raises UnknownCodecError / ValueError depending on the version
        return False
    return True


class VideoWriter(Closeable):
    """Write (H, W, 3) uint8 RGB frames to a video file, usually an .mp4.

    The encoder is libx264 (H.264) when the PyAV build has it, else mpeg4; pixels are yuv420p,
    which needs even sizes, so an odd height or width is padded by one pixel (edge replicated)
    and `width` / `height` report the encoded size. The file appears at `path` only when the
    writer closes without error (written to a temporary file next to it, then renamed); on an
    exception inside the `with` block nothing is left behind.

    Args:
        path: output file; the container format follows the extension (.mp4, .mkv, .mov, .avi).
        fps: frames per second (29.97 and 30000/1001 are both fine).
        codec: force an encoder name (e.g. "mpeg4", "libx264"); default as above.
        crf: libx264 constant rate factor (0 lossless .. 51; 18 is visually lossless).

    Example:
        with VideoWriter("out.mp4", fps=24) as writer:
            for frame in frames:
                writer.write(frame)

    Raises:
        ValueError: fps <= 0, unknown codec, frames of different sizes, or no frame written.
        ImportError: PyAV is not installed.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, *, codec: str | None = None, crf: int = 18) -> None:
        self._av = require_av()
        self.path = Path(path)
        self.fps: Fraction = fraction_fps(fps)
        if codec is None:
            codec = next((name for name in _DEFAULT_CODECS if _encoder_available(self._av, name)), None)
            if codec is None:
                raise ValueError(f"this PyAV build has none of the encoders {_DEFAULT_CODECS}")
        elif not _encoder_available(self._av, codec):
            raise ValueError(f"encoder {codec!r} is not available in this PyAV build")
        self.codec = codec
        self.crf = crf
        self.frames_written = 0
        self.width: int | None = None
        self.height: int | None = None
        self._input_size: tuple[int, int] | None = None
        self._files: contextlib.ExitStack | None = None
        self._container: Any = None
        self._stream: Any = None

    def _open(self, height: int, width: int) -> None:
        self._files = contextlib.ExitStack()
        temporary = self._files.enter_context(atomic_path(self.path))
        self._input_size = (height, width)
        self.height, self.width = height + height % 2, width + width % 2
        self._container = self._av.open(str(temporary), mode="w")
        stream = self._container.add_stream(self.codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        if self.codec.startswith("libx264"):
            stream.options = {"crf": str(self.crf)}
        else:
            stream.bit_rate = int(max(2_000_000, self.width * self.height * float(self.fps) * 0.3))
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; all frames must have the size of the first."""
        frame = check_frame_array(frame, f"frame {self.frames_written}")
        if self._container is None:
            if self._files is not None:
                raise ValueError(f"VideoWriter for {self.path} is already closed")
            self._open(frame.shape[0], frame.shape[1])
        if frame.shape[:2] != self._input_size:
            raise ValueError(
                f"frame {self.frames_written} is {frame.shape[:2]} (H, W) but the video is {self._input_size}"
            )
        pad_bottom, pad_right = self.height - frame.shape[0], self.width - frame.shape[1]
        if pad_bottom or pad_right:
            frame = np.pad(frame, ((0, pad_bottom), (0, pad_right), (0, 0)), mode="edge")
        video_frame = self._av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = self.frames_written
        video_frame.time_base = 1 / self.fps
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file into place.

        Raises:
            ValueError: no frame was written (no file is created).
        """
        if self._container is None:
            if self._files is None:
                self._files = contextlib.ExitStack()  # mark closed
                raise ValueError(f"no frames were written; {self.path} was not created")
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except BaseException as error:
            self._container = None
            self._files.__exit__(type(error), error, error.__traceback__)  # type: ignore[union-attr]
            raise
        self._container = None
        self._files.close()  # type: ignore[union-attr]  # renames onto self.path

    def abort(self) -> None:
        """Stop writing and delete the partial file."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        if self._files is not None:
            error = RuntimeError("VideoWriter aborted")
            with contextlib.suppress(RuntimeError):
                self._files.__exit__(RuntimeError, error, None)
        self._files = contextlib.ExitStack()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Unlike other io objects, an error inside the `with` block discards the output.
        if exc_type is None:
            self.close()
        else:
            self.abort()
