"""Pupil Labs Core: a recording folder with a Pupil Player raw data export.

Read: ``world.mp4`` + ``world_timestamps.npy`` (i-th timestamp = i-th frame) of the recording, and
``exports/<n>/gaze_positions.csv`` (``gaze_timestamp`` in seconds of Pupil time, ``confidence``,
``norm_pos_x``, ``norm_pos_y`` normalised with the origin at the bottom left: ``x_px = x * W``,
``y_px = (1 - y) * H``) plus ``exports/<n>/fixations.csv`` when present (``id``,
``start_timestamp`` in s, ``duration`` in ms, ``norm_pos_x/y``). The latest export (highest ``<n>``)
is used unless the export folder itself is given. A sample with ``confidence`` below
:data:`MIN_CONFIDENCE` (Pupil Player's own default threshold) is invalid (``low_confidence``).
Pupil Player recordings carry no scene intrinsics here, so tolerances must be given in pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .recording import Recording, RecordingFormatError, SceneCamera, make_recording, numeric, require_pandas

__all__ = ["MIN_CONFIDENCE", "NEEDS", "find_export", "read_pupil_player"]

MIN_CONFIDENCE = 0.6
NEEDS = "world.mp4 + world_timestamps.npy + exports/<n>/gaze_positions.csv (optional: exports/<n>/fixations.csv)"
GAZE_COLUMNS = ("gaze_timestamp", "confidence", "norm_pos_x", "norm_pos_y")


def find_export(folder: Path) -> tuple[Path, Path] | None:
    """``(recording folder, export folder)`` when ``folder`` is a Pupil Player recording (or one of
    its export folders), else None."""
    if (folder / "gaze_positions.csv").is_file() and (folder.parent.parent / "world_timestamps.npy").is_file():
        return folder.parent.parent, folder
    if not (folder / "world_timestamps.npy").is_file():
        return None
    exports = [p for p in (folder / "exports").glob("*") if (p / "gaze_positions.csv").is_file()]
    if not exports:
        return None
    return folder, max(exports, key=lambda p: (len(p.name), p.name))


def read_pupil_player(folder: str | Path, *, min_confidence: float = MIN_CONFIDENCE) -> Recording:
    """Read a Pupil Player recording (see the module docstring).

    Raises:
        RecordingFormatError: a missing file or column, timestamps out of order or not overlapping.
        sam2kit.io.VideoReadError: an unreadable world video.
    """
    from ..video_file import VideoFileSource

    pandas = require_pandas()
    found = find_export(Path(folder))
    if found is None:
        raise RecordingFormatError(f"{folder}: not a Pupil Player recording; it needs {NEEDS}")
    recording, export = found
    video = recording / "world.mp4"
    if not video.is_file():
        raise RecordingFormatError(f"{recording}: no world.mp4; a Pupil Player recording needs {NEEDS}")
    gaze = pandas.read_csv(export / "gaze_positions.csv")
    missing = [c for c in GAZE_COLUMNS if c not in gaze.columns]
    if missing:
        raise RecordingFormatError(
            f"{export / 'gaze_positions.csv'}: missing column(s) {missing}; needs {list(GAZE_COLUMNS)}"
        )
    source = VideoFileSource(video, cache_size=1)
    try:
        width, height, num_frames = source.width, source.height, len(source)
    finally:
        source.close()
    reason = np.full(len(gaze), "", dtype=object)
    reason[numeric(gaze, "confidence", export) < min_confidence] = "low_confidence"
    fixations = None
    if (export / "fixations.csv").is_file():
        table = pandas.read_csv(export / "fixations.csv")
        start = table["start_timestamp"].to_numpy(np.float64)
        fixations = (table["id"].to_numpy(np.int64), start, start + table["duration"].to_numpy(np.float64) / 1000,
                     table["norm_pos_x"].to_numpy(np.float64) * width,
                     (1 - table["norm_pos_y"].to_numpy(np.float64)) * height)
    return make_recording(
        "pupil_player", recording, video,
        frame_timestamps=np.load(recording / "world_timestamps.npy").astype(np.float64),
        sample_timestamps=numeric(gaze, "gaze_timestamp", export), unit_s=1.0,
        x_px=gaze["norm_pos_x"].to_numpy(np.float64) * width,
        y_px=(1 - gaze["norm_pos_y"].to_numpy(np.float64)) * height,
        reason=reason, camera=SceneCamera(width, height), num_video_frames=num_frames, fixations=fixations,
    )
