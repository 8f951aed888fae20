"""The typed eye-tracking recording every reader returns, and what the readers share.

A :class:`Recording` holds the scene video (a file or frame folder), the time of each scene frame,
the gaze samples, the recording's own fixations (if it has any), its events and the scene camera.
All times are in seconds from the first scene frame (``time_s``); each sample also keeps the
recording's own timestamp value unchanged (``timestamp``: nanoseconds for Pupil Cloud, seconds of
Pupil time for Pupil Player, seconds from the recording start for Tobii Glasses 3, device
microseconds for Tobii Glasses 2, ...).

Samples are never dropped. A sample that cannot be used is kept with ``valid = False`` and the
reason (:data:`REASONS`); each sample is matched to the scene frame nearest in time (``frame``),
or -1 when it lies outside the video (more than half a frame period before the first frame or
after the last).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "REASONS",
    "Fixations",
    "GazeSamples",
    "Recording",
    "RecordingFormatError",
    "SceneCamera",
    "make_recording",
    "nearest_frames",
    "numeric",
    "require_pandas",
]

logger = logging.getLogger(__name__)

#: Why a sample is invalid ("" = valid). Readers set the first four; :func:`make_recording` the last two.
REASONS = ("not_worn", "blink", "no_gaze", "low_confidence", "outside_frame", "outside_video")


class RecordingFormatError(ValueError):
    """A folder or file is not a readable eye-tracking recording (unknown format, a needed file or
    column missing, timestamps that do not increase or do not overlap the video)."""


def require_pandas() -> Any:
    """Import pandas, or raise an ImportError that says how to install it."""
    try:
        import pandas
    except ImportError as error:
        raise ImportError(
            "reading eye-tracking recordings needs pandas: pip install pandas  (or pip install 'sam2kit[eyetracking]')"
        ) from error
    return pandas


@dataclass(frozen=True)
class SceneCamera:
    """The scene camera: frame size in pixels and, when the recording has them, its intrinsics.

    Attributes:
        camera_matrix: ``(3, 3)`` OpenCV camera matrix (pixels), or None.
        distortion: OpenCV distortion coefficients, or None (not applied: gaze is already in the
            distorted scene image).
    """

    width: int
    height: int
    camera_matrix: np.ndarray | None = None
    distortion: np.ndarray | None = None

    @property
    def focal_px(self) -> float | None:
        """Mean of the focal lengths fx, fy in pixels, or None without intrinsics."""
        if self.camera_matrix is None:
            return None
        return float((self.camera_matrix[0, 0] + self.camera_matrix[1, 1]) / 2)

    def degrees_to_pixels(self, degrees: float) -> float:
        """An angle about the optical axis in pixels: ``f * tan(degrees)``.

        Raises:
            ValueError: the recording has no camera intrinsics.
        """
        focal = self.focal_px
        if focal is None:
            raise ValueError("this recording has no scene camera intrinsics; give the tolerance in pixels (e.g. 20px)")
        return focal * math.tan(math.radians(degrees))


@dataclass
class GazeSamples:
    """``N`` gaze samples in input order; every array has shape ``(N,)``.

    Attributes:
        timestamp: the recording's own timestamps, unchanged (int64 or float64).
        time_s: seconds from the first scene frame.
        x_px / y_px: gaze in scene pixels, origin top left (NaN without gaze).
        valid: bool. reason: "" when valid, else one of :data:`REASONS`.
        frame: nearest scene frame by time, -1 outside the video.
        fixation_id: the fixation the sample belongs to, -1 for none.
    """

    timestamp: np.ndarray
    time_s: np.ndarray
    x_px: np.ndarray
    y_px: np.ndarray
    valid: np.ndarray
    reason: np.ndarray
    frame: np.ndarray
    fixation_id: np.ndarray

    def __len__(self) -> int:
        return len(self.time_s)


@dataclass
class Fixations:
    """``F`` fixations; arrays of shape ``(F,)``, times in seconds from the first scene frame,
    position in scene pixels (origin top left; NaN when the source gives none)."""

    fixation_id: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    x_px: np.ndarray
    y_px: np.ndarray

    def __len__(self) -> int:
        return len(self.fixation_id)


@dataclass
class Recording:
    """One eye-tracking recording as its device exported it.

    Attributes:
        format: ``"pupil_cloud"``, ``"pupil_player"``, ``"tobii_g3"``, ``"tobii_g2"``, ``"neon"`` or
            ``"generic_csv"``.
        path: the folder (or file) it was read from. video: the scene video file.
        frame_times_s: ``(T,)`` time of each scene frame, seconds from the first (``frame_times_s[0] == 0``).
        samples / fixations (None: the recording has none) / events (``(time_s, name)``) / camera.
    """

    format: str
    path: Path
    video: Path
    frame_times_s: np.ndarray
    samples: GazeSamples
    camera: SceneCamera
    fixations: Fixations | None = None
    events: list[tuple[float, str]] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.frame_times_s)


def nearest_frames(times_s: np.ndarray, frame_times_s: np.ndarray) -> np.ndarray:
    """Index of the frame nearest in time to each of ``times_s`` (``(N,)`` -> ``(N,)`` int64); a tie
    goes to the earlier frame; -1 for a time more than half a frame period outside the frames
    (NaN times too)."""
    count = len(frame_times_s)
    right = np.clip(np.searchsorted(frame_times_s, times_s, side="left"), 0, count - 1)
    left = np.clip(right - 1, 0, count - 1)
    nearer_left = np.abs(times_s - frame_times_s[left]) <= np.abs(frame_times_s[right] - times_s)
    index = np.where(nearer_left, left, right).astype(np.int64)
    half = float(np.median(np.diff(frame_times_s))) / 2 if count > 1 else 0.5
    outside = ~((times_s >= frame_times_s[0] - half) & (times_s <= frame_times_s[-1] + half))
    index[outside] = -1
    return index


def numeric(table: Any, column: str, path: Path, dtype: Any = np.float64) -> np.ndarray:
    """A table column as numbers of ``dtype``.

    Raises:
        RecordingFormatError: a value that is not a number (the message names file, column and row).
    """
    pandas = require_pandas()
    values = pandas.to_numeric(table[column], errors="coerce")
    bad = values.isna() & table[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RecordingFormatError(
            f"{path}: column {column!r} row {row + 1} is not a number: {table[column].iloc[row]!r}"
        )
    if np.issubdtype(dtype, np.integer) and values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise RecordingFormatError(f"{path}: column {column!r} row {row + 1} is empty")
    return values.to_numpy(dtype)


def _check_increasing(values: np.ndarray, what: str, strict: bool) -> None:
    steps = np.diff(values)
    bad = np.flatnonzero(steps <= 0 if strict else steps < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise RecordingFormatError(
            f"{what} are not {'increasing' if strict else 'in time order'}: entry {i} ({values[i]}) comes after "
            f"{values[i - 1]}; timestamps must {'increase' if strict else 'never decrease'}"
        )


def _seconds(raw: np.ndarray, origin: Any, unit_s: float) -> np.ndarray:
    """``(raw - origin) * unit_s`` as float64; integer timestamps are subtracted exactly first."""
    if np.issubdtype(raw.dtype, np.integer):
        return (raw.astype(np.int64) - np.int64(origin)).astype(np.float64) * unit_s
    return (raw.astype(np.float64) - float(origin)) * unit_s


def make_recording(
    format: str,
    path: Path,
    video: Path,
    *,
    frame_timestamps: np.ndarray,
    sample_timestamps: np.ndarray,
    unit_s: float,
    x_px: np.ndarray,
    y_px: np.ndarray,
    reason: np.ndarray,
    camera: SceneCamera,
    num_video_frames: int,
    fixation_id: np.ndarray | None = None,
    fixations: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    events: list[tuple[Any, str]] | None = None,
) -> Recording:
    """Check and assemble a :class:`Recording` from raw arrays (what every reader ends with).

    Args:
        frame_timestamps / sample_timestamps: the recording's own values, in units of ``unit_s`` seconds.
        reason: ``(N,)`` "" or one of :data:`REASONS` per sample (samples without gaze must say so).
        fixations: ``(ids, start, end, x_px, y_px)`` with start / end in the recording's units.
        events: ``(timestamp, name)`` in the recording's units.
        num_video_frames: frames the scene video has; extra timestamps or frames are ignored (logged).

    Raises:
        RecordingFormatError: frame timestamps that do not increase, sample timestamps out of order,
            or gaze that does not overlap the video (the message says by how much).
    """
    frame_timestamps = np.asarray(frame_timestamps)
    if len(frame_timestamps) != num_video_frames:
        logger.warning("%s: %d scene frame timestamps for %d video frames; using the first %d", path,
                       len(frame_timestamps), num_video_frames, min(len(frame_timestamps), num_video_frames))
        frame_timestamps = frame_timestamps[:num_video_frames]
    if len(frame_timestamps) == 0:
        raise RecordingFormatError(f"{path}: the recording has no scene frames")
    if len(sample_timestamps) == 0:
        raise RecordingFormatError(f"{path}: the recording has no gaze samples")
    _check_increasing(frame_timestamps, "scene frame timestamps", strict=True)
    _check_increasing(sample_timestamps, "gaze sample timestamps", strict=False)
    origin = frame_timestamps[0]
    frame_times = _seconds(frame_timestamps, origin, unit_s)
    times = _seconds(np.asarray(sample_timestamps), origin, unit_s)
    if times[-1] < frame_times[0] or times[0] > frame_times[-1]:
        gap = frame_times[0] - times[-1] if times[-1] < frame_times[0] else times[0] - frame_times[-1]
        where = "ends before the scene video starts" if times[-1] < frame_times[0] else "starts after the video ends"
        raise RecordingFormatError(
            f"{path}: the gaze timestamps do not overlap the scene video: the gaze ({times[0]:.3f} .. "
            f"{times[-1]:.3f} s) {where} (0 .. {frame_times[-1]:.3f} s) by {gap:.3f} s; check that gaze and "
            "video come from the same recording"
        )
    x_px, y_px = np.asarray(x_px, dtype=np.float64), np.asarray(y_px, dtype=np.float64)
    reason = np.asarray(reason, dtype=object).copy()
    frame = nearest_frames(times, frame_times)
    no_gaze = ~(np.isfinite(x_px) & np.isfinite(y_px))
    reason[(reason == "") & no_gaze] = "no_gaze"
    outside = ~no_gaze & ((x_px < 0) | (y_px < 0) | (x_px >= camera.width) | (y_px >= camera.height))
    reason[(reason == "") & outside] = "outside_frame"
    reason[(reason == "") & (frame < 0)] = "outside_video"
    samples = GazeSamples(
        timestamp=np.asarray(sample_timestamps), time_s=times, x_px=x_px, y_px=y_px, valid=reason == "",
        reason=reason, frame=frame,
        fixation_id=np.full(len(times), -1, np.int64) if fixation_id is None else np.asarray(fixation_id, np.int64),
    )
    fixation_table = None
    if fixations is not None:
        ids, start, end, fx, fy = fixations
        fixation_table = Fixations(np.asarray(ids, np.int64), _seconds(np.asarray(start), origin, unit_s),
                                   _seconds(np.asarray(end), origin, unit_s), np.asarray(fx, np.float64),
                                   np.asarray(fy, np.float64))
    event_list = [(float(_seconds(np.asarray([t]), origin, unit_s)[0]), str(name)) for t, name in events or []]
    if (counts := {r: int((reason == r).sum()) for r in REASONS if (reason == r).any()}):
        logger.info("%d of %d gaze samples are invalid (kept, marked): %s", int((~samples.valid).sum()),
                    len(samples), ", ".join(f"{k} {v}" for k, v in counts.items()))
    return Recording(format=format, path=path, video=video, frame_times_s=frame_times, samples=samples,
                     camera=camera, fixations=fixation_table, events=event_list)


def video_frame_times(video: Path) -> np.ndarray:
    """``(T,)`` presentation time of each frame of a video file in seconds of the stream's clock,
    in frame order (the order :class:`sam2kit.io.VideoFileSource` numbers frames in).

    Raises:
        RecordingFormatError: a stream without timestamps or frames.
    """
    from ..video_file import require_av

    av = require_av()
    with av.open(str(video)) as container:
        if not container.streams.video:
            raise RecordingFormatError(f"{video} has no video stream")
        stream = container.streams.video[0]
        stamps = sorted({packet.pts for packet in container.demux(stream) if packet.size and packet.pts is not None})
        base = stream.time_base
    if not stamps:
        raise RecordingFormatError(f"{video}: the video has no frame timestamps")
    return np.asarray(stamps, dtype=np.float64) * float(base)
