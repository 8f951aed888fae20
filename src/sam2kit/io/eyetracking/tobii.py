"""Tobii Pro Glasses 3: a recording folder.

Read: ``recording.g3`` (JSON; ``scenecamera.file``, ``gaze.file`` and
``scenecamera.camera-calibration`` with ``focal-length`` and ``principal-point`` in pixels),
``scenevideo.mp4`` and ``gazedata.gz`` (gzipped JSON lines ``{"type": "gaze", "timestamp": s,
"data": {"gaze2d": [x, y], ...}}``, ``gaze2d`` normalised to the scene image with the origin top
left). A sample without ``gaze2d`` is kept as invalid (``no_gaze``). Scene frames are timed by the
video's own presentation timestamps, on the same clock as the gaze (seconds from the recording start).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from .recording import Recording, RecordingFormatError, SceneCamera, make_recording, video_frame_times

__all__ = ["NEEDS", "is_tobii_g3", "read_tobii_g3"]

NEEDS = "recording.g3 + scenevideo.mp4 + gazedata.gz"


def is_tobii_g3(folder: Path) -> bool:
    return (folder / "recording.g3").is_file() or (
        (folder / "gazedata.gz").is_file() and (folder / "scenevideo.mp4").is_file()
    )


def _camera(meta: dict[str, Any], width: int, height: int) -> SceneCamera:
    calibration = meta.get("scenecamera", {}).get("camera-calibration")
    if not calibration or "focal-length" not in calibration:
        return SceneCamera(width, height)
    fx, fy = (float(v) for v in calibration["focal-length"])
    cx, cy = (float(v) for v in calibration.get("principal-point", (width / 2, height / 2)))
    matrix = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    distortion = calibration.get("radial-distortion")
    return SceneCamera(width, height, matrix, None if distortion is None else np.asarray(distortion, np.float64))


def _gaze_lines(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    times, xs, ys = [], [], []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise RecordingFormatError(f"{path}: line {number} is not JSON; expected gzipped JSON lines") from None
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
    from ..video_file import VideoFileSource

    folder = Path(folder)
    meta: dict[str, Any] = {}
    if (folder / "recording.g3").is_file():
        meta = json.loads((folder / "recording.g3").read_text(encoding="utf-8"))
    video = folder / str(meta.get("scenecamera", {}).get("file", "scenevideo.mp4"))
    gaze_file = folder / str(meta.get("gaze", {}).get("file", "gazedata.gz"))
    for needed in (video, gaze_file):
        if not needed.is_file():
            raise RecordingFormatError(f"{folder}: no {needed.name}; a Tobii Glasses 3 recording needs {NEEDS}")
    source = VideoFileSource(video, cache_size=1)
    try:
        width, height, num_frames = source.width, source.height, len(source)
    finally:
        source.close()
    times, x_norm, y_norm = _gaze_lines(gaze_file)
    return make_recording(
        "tobii_g3", folder, video, frame_timestamps=video_frame_times(video), sample_timestamps=times, unit_s=1.0,
        x_px=x_norm * width, y_px=y_norm * height, reason=np.full(len(times), "", dtype=object),
        camera=_camera(meta, width, height), num_video_frames=num_frames,
    )
