"""Pupil Labs Neon / Invisible: the Pupil Cloud "Timeseries Data + Scene Video" export folder.

Read: ``gaze.csv`` (``timestamp [ns]``, ``gaze x [px]``, ``gaze y [px]``, ``worn``, ``fixation id``,
``blink id``), ``world_timestamps.csv`` (``timestamp [ns]``; row i = scene frame i), the scene ``.mp4``
(its name varies), and if present ``fixations.csv``, ``events.csv``, ``scene_camera.json``
(``camera_matrix``, ``distortion_coefficients``). Timestamps are UTC nanoseconds; gaze is in scene
pixels, origin top left. A sample is invalid when ``worn`` is 0 (``not_worn``) or it has a
``blink id`` (``blink``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .recording import Recording, RecordingFormatError, SceneCamera, make_recording, numeric, require_pandas

__all__ = ["NEEDS", "is_pupil_cloud", "read_pupil_cloud"]

NEEDS = "gaze.csv + world_timestamps.csv + the scene .mp4 (optional: fixations.csv, events.csv, scene_camera.json)"
GAZE_COLUMNS = ("timestamp [ns]", "gaze x [px]", "gaze y [px]")


def is_pupil_cloud(folder: Path) -> bool:
    return (folder / "gaze.csv").is_file() and (folder / "world_timestamps.csv").is_file()


def _read_csv(path: Path, columns: tuple[str, ...]) -> Any:
    pandas = require_pandas()
    table = pandas.read_csv(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise RecordingFormatError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; a Pupil Cloud export's "
            f"{path.name} has {', '.join(repr(c) for c in columns)}"
        )
    return table


def find_scene_video(folder: Path) -> Path:
    """The one .mp4 of ``folder`` (Pupil Cloud names it after the section, so the name varies)."""
    videos = sorted(p for p in folder.glob("*.mp4") if not p.name.startswith("."))
    if len(videos) != 1:
        found = ", ".join(p.name for p in videos) or "none"
        raise RecordingFormatError(f"{folder}: expected exactly one scene video (.mp4), found {found}")
    return videos[0]


def _camera(folder: Path, width: int, height: int) -> SceneCamera:
    path = folder / "scene_camera.json"
    if not path.is_file():
        return SceneCamera(width, height)
    data = json.loads(path.read_text(encoding="utf-8"))
    matrix = data.get("camera_matrix")
    distortion = data.get("distortion_coefficients") or data.get("dist_coefs")
    return SceneCamera(width, height, None if matrix is None else np.asarray(matrix, np.float64).reshape(3, 3),
                       None if distortion is None else np.asarray(distortion, np.float64).ravel())


def _ids(column: Any) -> np.ndarray:
    """A column of optional integer ids -> int64 with -1 for empty."""
    return column.fillna(-1).astype(np.int64).to_numpy()


def _column(table: Any, name: str) -> np.ndarray:
    return table[name].to_numpy(np.float64) if name in table else np.full(len(table), np.nan)


def read_pupil_cloud(folder: str | Path) -> Recording:
    """Read a Pupil Cloud export folder (see the module docstring).

    Raises:
        RecordingFormatError: a missing file or column, timestamps out of order or not overlapping.
        sam2kit.io.VideoReadError: an unreadable scene video.
    """
    from ..video_file import VideoFileSource

    folder = Path(folder)
    gaze = _read_csv(folder / "gaze.csv", GAZE_COLUMNS)
    world = _read_csv(folder / "world_timestamps.csv", ("timestamp [ns]",))
    video = find_scene_video(folder)
    source = VideoFileSource(video, cache_size=1)
    try:
        width, height, num_frames = source.width, source.height, len(source)
    finally:
        source.close()
    count = len(gaze)
    reason = np.full(count, "", dtype=object)
    if "blink id" in gaze.columns:
        reason[gaze["blink id"].notna().to_numpy()] = "blink"
    if "worn" in gaze.columns:
        reason[(gaze["worn"].fillna(1).to_numpy() == 0)] = "not_worn"
    fixations = None
    fixations_path = folder / "fixations.csv"
    if fixations_path.is_file():
        table = _read_csv(fixations_path, ("fixation id", "start timestamp [ns]", "end timestamp [ns]"))
        fixations = (
            table["fixation id"].to_numpy(np.int64), table["start timestamp [ns]"].to_numpy(np.int64),
            table["end timestamp [ns]"].to_numpy(np.int64),
            _column(table, "fixation x [px]"), _column(table, "fixation y [px]"),
        )
    events: list[tuple[Any, str]] = []
    if (folder / "events.csv").is_file():
        table = _read_csv(folder / "events.csv", ("timestamp [ns]", "name"))
        events = list(zip(table["timestamp [ns]"].to_numpy(np.int64).tolist(), table["name"].astype(str), strict=True))
    return make_recording(
        "pupil_cloud", folder, video,
        frame_timestamps=numeric(world, "timestamp [ns]", folder / "world_timestamps.csv", np.int64),
        sample_timestamps=numeric(gaze, "timestamp [ns]", folder / "gaze.csv", np.int64), unit_s=1e-9,
        x_px=numeric(gaze, "gaze x [px]", folder / "gaze.csv"),
        y_px=numeric(gaze, "gaze y [px]", folder / "gaze.csv"),
        reason=reason, camera=_camera(folder, width, height), num_video_frames=num_frames,
        fixation_id=_ids(gaze["fixation id"]) if "fixation id" in gaze.columns and fixations is not None else None,
        fixations=fixations, events=events,
    )
