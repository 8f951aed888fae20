"""Any tracker: gaze in a CSV file, with the columns and units named by the caller, plus a scene video.

The time column is in ``s``, ``ms``, ``us`` or ``ns``, on the clock of the scene frames: either
the times of ``frame_times`` (a CSV whose first column, or the column named like the gaze time
column, holds one time per scene frame, same unit) or, without it, the video's own presentation
timestamps (0 = the video's first frame, shifted by ``time_offset_s``: a sample at gaze time t is
at video time ``t + time_offset_s``). Positions are pixels (origin top left) or normalised with
a stated origin (``norm`` top left, ``norm-bottom-left``). An optional ``valid_column`` marks
invalid samples with 0 / false; rows with empty x or y are invalid (``no_gaze``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .recording import (
    Recording,
    RecordingFormatError,
    SceneCamera,
    make_recording,
    numeric,
    require_pandas,
    video_frame_times,
)

__all__ = ["COORDINATES", "TIME_UNITS", "read_generic_csv"]

TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
COORDINATES = ("px", "norm", "norm-bottom-left")


def read_generic_csv(
    csv: str | Path,
    video: str | Path,
    *,
    time_column: str = "timestamp",
    x_column: str = "x",
    y_column: str = "y",
    time_unit: str = "s",
    coordinates: str = "px",
    valid_column: str | None = None,
    frame_times: str | Path | None = None,
    time_offset_s: float = 0.0,
) -> Recording:
    """Read gaze from ``csv`` against the scene ``video`` (see the module docstring).

    Raises:
        RecordingFormatError: a missing column (the message lists the file's columns), an unknown
            unit or coordinate system, timestamps out of order or not overlapping the video.
        FileNotFoundError: a missing file. sam2kit.io.VideoReadError: an unreadable video.
    """
    from ..video_file import VideoFileSource

    pandas = require_pandas()
    csv, video = Path(csv), Path(video)
    if time_unit not in TIME_UNITS:
        raise RecordingFormatError(f"unknown time unit {time_unit!r}; accepted: {', '.join(TIME_UNITS)}")
    if coordinates not in COORDINATES:
        raise RecordingFormatError(f"unknown coordinates {coordinates!r}; accepted: {', '.join(COORDINATES)}")
    if not csv.is_file():
        raise FileNotFoundError(f"gaze CSV not found: {csv}")
    table = pandas.read_csv(csv)
    wanted = [time_column, x_column, y_column] + ([valid_column] if valid_column else [])
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise RecordingFormatError(
            f"{csv}: no column(s) {', '.join(repr(c) for c in missing)}; its columns are "
            f"{', '.join(repr(str(c)) for c in table.columns)} (choose them with the time/x/y column options)"
        )
    source = VideoFileSource(video, cache_size=1)
    try:
        width, height, num_frames = source.width, source.height, len(source)
    finally:
        source.close()
    unit = TIME_UNITS[time_unit]
    raw = numeric(table, time_column, csv, np.int64 if table[time_column].dtype.kind in 'iu' else np.float64)
    if frame_times is not None:
        frames = pandas.read_csv(frame_times)
        column = time_column if time_column in frames.columns else frames.columns[0]
        kind = np.int64 if frames[column].dtype.kind in "iu" else np.float64
        frame_raw = numeric(frames, column, Path(frame_times), kind)
    else:
        # the video clock in the CSV's unit; integer units stay integer so large timestamps are exact
        video_s = video_frame_times(video) - float(time_offset_s)
        frame_raw = np.round(video_s / unit).astype(np.int64) if time_unit != "s" else video_s
    x, y = numeric(table, x_column, csv), numeric(table, y_column, csv)
    if coordinates != "px":
        x = x * width
        y = (1 - y) * height if coordinates == "norm-bottom-left" else y * height
    reason = np.full(len(table), "", dtype=object)
    if valid_column:
        flags = table[valid_column].astype(str).str.strip().str.lower()
        reason[flags.isin(["0", "0.0", "false", "no"]).to_numpy()] = "no_gaze"
    return make_recording("generic_csv", csv, video, frame_timestamps=frame_raw, sample_timestamps=raw,
                          unit_s=unit, x_px=x, y_px=y, reason=reason, camera=SceneCamera(width, height),
                          num_video_frames=num_frames)
