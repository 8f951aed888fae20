"""VideoFileSource: lazy, random-access, memory-bounded decoding of a video file with PyAV.

How it works (and why):
- Opening runs one demux pass over the video packets (no decoding: about the cost of reading
  the file once) and builds a presentation-timestamp index: frame `i` is the packet with the
  i-th smallest pts. The frame count the container declares (`stream.frames`) is not used: it
  is missing in mkv/webm, and in mp4 it counts samples that edit lists may hide. The index makes
  random access exact for variable frame rates, B-frames and streams whose first pts is not 0.
  Then the first frame is decoded once, which validates the file (a corrupt or undecodable file
  fails at open, not in the middle of tracking) and leaves frame 0 in the cache.
- `get(i)` on a cache miss seeks to the last keyframe at or before frame i and decodes forward,
  converting to RGB and caching only the last `cache_size` frames up to i. A request a little
  ahead of the current decode position simply decodes on (no seek), so forward iteration decodes
  each frame once; reverse iteration decodes about one GOP per `cache_size` frames.
- The container stays open between calls; `close()` releases it and the next read reopens.
Packets without timestamps (rare raw or broken streams) switch to a sequential fallback: frames
are numbered in decode order and random access decodes from the start.
Rotation metadata and non-square pixel aspect ratios are ignored (as in the official SAM 2).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sam2kit.io.source import FrameCache, FrameSource, VideoReadError

logger = logging.getLogger(__name__)


def require_av() -> Any:
    """Import PyAV, or raise an ImportError that says how to install it."""
    try:
        import av
    except ImportError as error:
        raise ImportError(
            "reading and writing video needs PyAV: pip install av  (or pip install 'sam2kit[video]')"
        ) from error
    return av


def _packet_ts(packet: Any) -> int | None:
    return packet.pts if packet.pts is not None else packet.dts


class VideoFileSource(FrameSource):
    """Frames of a video file (mp4, mov, mkv, webm, avi, ...) decoded lazily with PyAV.

    Args:
        path: the video file.
        cache_size: how many decoded RGB frames to keep (LRU); memory is about
            cache_size * H * W * 3 bytes whatever the video length.

    Attributes for diagnostics: `num_decoded` (frames decoded so far), `num_seeks`,
    `cached_indices` (frame indices in the cache).

    Raises:
        FileNotFoundError: `path` does not exist.
        VideoReadError: the file is not a readable video, has no video stream or no frames.
        ImportError: PyAV is not installed.
    """

    def __init__(self, path: str | Path, *, cache_size: int = 16) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"video file not found: {path}")
        super().__init__(str(path))
        self.path = path
        self._cache = FrameCache(cache_size)
        self.num_decoded = 0
        self.num_seeks = 0
        self._container: Any = None
        self._stream: Any = None
        self._decoder: Iterator[tuple[int, Any]] | None = None
        self._next_index = 0  # the frame index the live decoder is expected to produce next
        try:
            self._build_index()
            self._read(0)  # validates decoding; frame 0 stays cached
        except BaseException:
            self.close()
            raise

    # ---- metadata -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._num_frames

    @property
    def height(self) -> int:
        return self._height

    @property
    def width(self) -> int:
        return self._width

    @property
    def fps(self) -> float | None:
        return self._fps

    @property
    def cached_indices(self) -> list[int]:
        """Frame indices currently cached, least recently used first."""
        return self._cache.indices()

    def close(self) -> None:
        """Close the container and drop the cache; the next read reopens the file."""
        with self._lock:
            self._close_decoder()
            if self._container is not None:
                self._container.close()
            self._container = self._stream = None
            self._cache.clear()

    # ---- opening and indexing -------------------------------------------------------------
    def _open(self) -> None:
        av = require_av()
        if self._container is not None:
            self._container.close()
            self._container = self._stream = None
        try:
            container = av.open(str(self.path), mode="r")
        except av.error.FFmpegError as error:
            raise VideoReadError(f"cannot read {self.path} as a video: {error}") from error
        if not container.streams.video:
            container.close()
            raise VideoReadError(f"{self.path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        self._container, self._stream = container, stream

    def _build_index(self) -> None:
        av = require_av()
        self._open()
        stream = self._stream
        timestamps: list[int] = []
        keyframes: set[int] = set()  # timestamps of keyframe packets
        untimed = 0
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue  # flush packets; samples hidden by an edit list
                ts = _packet_ts(packet)
                if ts is None:
                    untimed += 1
                    continue
                timestamps.append(ts)
                if packet.is_keyframe:
                    keyframes.add(ts)
        except av.error.FFmpegError as error:
            raise VideoReadError(f"cannot read {self.path} as a video: {error}") from error

        self._sequential = untimed > 0
        if self._sequential:
            logger.warning("%s: packets without timestamps; random access decodes from the start", self.path)
            self._pts_to_index: dict[int, int] = {}
            self._keyframes: list[int] = [0]
            self._seek_ts: list[int] = [0]  # timestamp to seek to, per keyframe
            self._num_frames = untimed + len(timestamps)
        else:
            ordered = sorted(set(timestamps))
            self._pts_to_index = {ts: index for index, ts in enumerate(ordered)}
            self._seek_ts = sorted(keyframes)
            self._keyframes = [self._pts_to_index[ts] for ts in self._seek_ts]
            self._num_frames = len(ordered)
        if self._num_frames == 0:
            raise VideoReadError(f"{self.path}: the video stream has no frames")

        codec = stream.codec_context
        self._width, self._height = int(codec.width), int(codec.height)
        rate = stream.average_rate or stream.guessed_rate
        self._fps = float(rate) if rate else None
        if self._width <= 0 or self._height <= 0:
            raise VideoReadError(f"{self.path}: the video stream has no frame size")

    # ---- decoding -------------------------------------------------------------------------
    def _close_decoder(self) -> None:
        if self._decoder is not None:
            self._decoder.close()  # type: ignore[attr-defined]
            self._decoder = None

    def _keyframe_position(self, index: int) -> int:
        """Position in `self._keyframes` of the last keyframe at or before frame `index`, or -1."""
        return bisect.bisect_right(self._keyframes, index) - 1

    def _restart(self, position: int) -> None:
        """Put the decoder at keyframe number `position` (<= 0: the start of the file)."""
        self._close_decoder()
        if position <= 0 or self._sequential:
            self._open()  # reading from the very start is safest as a fresh demux
            self._decoder = self._decode(after_seek=False)
            self._next_index = 0
            return
        if self._container is None:
            self._open()
        self._container.seek(self._seek_ts[position], stream=self._stream, backward=True, any_frame=False)
        self.num_seeks += 1
        self._decoder = self._decode(after_seek=True)
        self._next_index = self._keyframes[position]

    def _decode(self, *, after_seek: bool) -> Iterator[tuple[int, Any]]:
        """Yield (frame index, av.VideoFrame) from the current container position."""
        av = require_av()
        landed_ts: int | None = None
        last_index = -1
        for packet in self._container.demux(self._stream):
            if after_seek and landed_ts is None:
                # A seek may land on non-key packets; frames before the keyframe are undecodable.
                if not packet.is_keyframe or _packet_ts(packet) is None:
                    continue
                landed_ts = _packet_ts(packet)
            try:
                frames = packet.decode()
            except av.error.FFmpegError as error:
                logger.warning("%s: skipping a packet that failed to decode: %s", self.path, error)
                continue
            for frame in frames:
                self.num_decoded += 1
                ts = frame.pts if frame.pts is not None else frame.dts
                if after_seek and ts is not None and landed_ts is not None and ts < landed_ts:
                    continue  # leading frames of an open GOP, decoded without their references
                index = self._pts_to_index.get(ts) if ts is not None else None
                if index is None:
                    if after_seek and last_index < 0:
                        continue  # cannot tell where we are
                    index = last_index + 1
                last_index = index
                yield index, frame

    def _to_rgb(self, frame: Any) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        if rgb.shape[:2] != (self._height, self._width):  # mid-stream resolution change
            rgb = frame.to_ndarray(format="rgb24", width=self._width, height=self._height)
        return np.ascontiguousarray(rgb)

    def _advance_to(self, index: int) -> int | None:
        """Decode on until frame `index`, caching the last `cache_size` frames; first index seen."""
        first_seen: int | None = None
        window_start = index - self._cache.capacity + 1
        assert self._decoder is not None
        for frame_index, frame in self._decoder:
            first_seen = frame_index if first_seen is None else first_seen
            self._next_index = frame_index + 1
            if frame_index >= window_start:
                self._cache.put(frame_index, self._to_rgb(frame))
            if frame_index >= index:
                break
        else:
            self._decoder = None  # end of stream
        return first_seen

    def _read(self, index: int) -> np.ndarray:
        cached = self._cache.get(index)
        if cached is not None:
            return cached.copy()
        position = self._keyframe_position(index)
        keyframe = self._keyframes[position] if position >= 0 else 0
        if self._decoder is not None and keyframe <= self._next_index <= index:
            self._advance_to(index)  # close ahead: decoding on beats seeking
        else:
            self._restart(position)
            first_seen = self._advance_to(index)
            while position > 0 and (first_seen is None or first_seen > index):
                # The seek landed after the target (the demuxer's seek index disagrees with the
                # packet timestamps): step back one keyframe at a time.
                position -= 1
                self._restart(position)
                first_seen = self._advance_to(index)
        frame = self._cache.get(index)
        if frame is None:
            # A frame the decoder dropped: use the nearest one decoded in this pass, as players do.
            frame = self._cache.nearest(index, lowest=max(keyframe, index - self._cache.capacity + 1))
            if frame is None:
                raise VideoReadError(f"{self.path}: frame {index} could not be decoded")
            logger.warning("%s: frame %d is missing from the stream; showing the nearest frame", self.path, index)
        return frame.copy()


def fraction_fps(fps: float) -> Fraction:
    """`fps` as an exact Fraction suitable for PyAV (29.97002997 -> 30000/1001)."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return Fraction(fps).limit_denominator(1001)
