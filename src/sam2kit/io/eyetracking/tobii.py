"""Tobii Pro Glasses 3: a recording folder.

Read: ``recording.g3`` (JSON; ``scenecamera.file``, ``gaze.file`` and
``scenecamera.camera-calibration`` with ``focal-length`` and ``principal-point`` in pixels),
``scenevideo.mp4`` and ``gazedata.gz`` (gzipped JSON lines ``{"type": "gaze", "timestamp": s,
"data": {"gaze2d": [x, y], ...}}``, ``gaze2d`` normalised to the scene image with the origin top
left). A sample without ``gaze2d`` is kept as invalid (``no_gaze``). Scene frames are timed by the
video's own presentation timestamps, on the same clock as the gaze (seconds from the recording start).

The Glasses 2 reader (:mod:`.tobii_g2`) shares :func:`json_lines`, :func:`scene_video` and
:func:`intrinsics`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .recording import Recording, RecordingFormatError, SceneCamera, make_recording, video_frame_times

__all__ = ["NEEDS", "intrinsics", "is_tobii_g3", "json_lines", "read_tobii_g3", "scene_video"]

NEEDS = "recording.g3 + scenevideo.mp4 + gazedata.gz"


def is_tobii_g3(folder: Path) -> bool:
    return (folder / "recording.g3").is_file() or (
        (folder / "gazedata.gz").is_file() and (folder / "scenevideo.mp4").is_file()
    )


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of each non-empty line of a gzipped JSON-lines file.

    Raises:
        RecordingFormatError: a line that is not a JSON object (the message names file and line).
    """
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                raise RecordingFormatError(f"{path}: line {number} is not a JSON object; expected gzipped JSON lines")
            yield number, record


def scene_video(video: Path) -> tuple[int, int, int, np.ndarray]:
    """``(width, height, frames, times)`` of a scene video; ``times`` ``(T,)`` is each frame's
    presentation time in seconds of the video's own clock (:func:`video_frame_times`).

    Raises:
        sam2kit.io.VideoReadError: an unreadable video. RecordingFormatError: no frame timestamps.
    """
    from ..video_file import VideoFileSource

    source = VideoFileSource(video, cache_size=1)
    try:
        width, height, num_frames = source.width, source.height, len(source)
    finally:
        source.close()
    return width, height, num_frames, video_frame_times(video)


def intrinsics(width: int, height: int, focal: Any, principal: Any, distortion: Any = None,
               skew: float = 0.0) -> SceneCamera:
    """A :class:`SceneCamera` from focal lengths ``(fx, fy)`` and principal point ``(cx, cy)`` in pixels."""
    fx, fy = (float(v) for v in focal)
    cx, cy = (float(v) for v in principal)
    matrix = np.array([[fx, skew, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    return SceneCamera(width, height, matrix, None if distortion is None else np.asarray(distortion, np.float64))


def _camera(meta: dict[str, Any], width: int, height: int) -> SceneCamera:
    calibration = meta.get("scenecamera", {}).get("camera-calibration")
    if not calibration or "focal-length" not in calibration:
        return SceneCamera(width, height)
    return intrinsics(width, height, calibration["focal-length"],
                      calibration.get("principal-point", (width / 2, height / 2)),
                      calibration.get("radial-distortion"))


def _gaze_lines(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    times, xs, ys = [], [], []
    for number, record in json_lines(path):
        if record.get("type", "gaze") != "gaze":
            continue
        if "timestamp" not in record:
            raise RecordingFormatError(f"{path}: line {number} has no 'timestamp'")
        gaze2d = (record.get("data") or {}).get("gaze2d")
        times.append(float(record["timestamp"]))
        xs.append(float(gaze2d[0]) if gaze2d else np.nan)
        ys.append(float(gaze2d[1]) if gaze2d else np.nan)
    return np.asarray(times, np.float64), np.asarray(xs, np.float64), np.asarray(ys, np.float64)


def read_tobii_g3(folder: str | Path) -> Recording:
    """Read a Tobii Pro Glasses 3 recording folder (see the module docstring).

    Raises:
        RecordingFormatError: a missing file, bad JSON, timestamps out of order or not overlapping.
        sam2kit.io.VideoReadError: an unreadable scene video.
    """
    folder = Path(folder)
    meta: dict[str, Any] = {}
    if (folder / "recording.g3").is_file():
        meta = json.loads((folder / "recording.g3").read_text(encoding="utf-8"))
    video = folder / str(meta.get("scenecamera", {}).get("file", "scenevideo.mp4"))
    gaze_file = folder / str(meta.get("gaze", {}).get("file", "gazedata.gz"))
    for needed in (video, gaze_file):
        if not needed.is_file():
            raise RecordingFormatError(f"{folder}: no {needed.name}; a Tobii Glasses 3 recording needs {NEEDS}")
    width, height, num_frames, frame_times = scene_video(video)
    times, x_norm, y_norm = _gaze_lines(gaze_file)
    return make_recording(
        "tobii_g3", folder, video, frame_timestamps=frame_times, sample_timestamps=times, unit_s=1.0,
        x_px=x_norm * width, y_px=y_norm * height, reason=np.full(len(times), "", dtype=object),
        camera=_camera(meta, width, height), num_video_frames=num_frames,
    )
