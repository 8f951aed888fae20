"""Pupil Labs Neon: a native recording folder, read through Pupil Labs' own
``pupil-labs-neon-recording`` package (optional: ``pip install 'sam2kit[eyetracking]'``).

Streams used: ``scene`` (frame times, ns), ``gaze`` (200 Hz when present, scene pixels, origin top
left), ``worn`` (a sample is ``not_worn`` when the nearest worn value is 0), ``blinks`` (samples
inside a blink are ``blink``), ``fixations`` and ``events``; the scene intrinsics come from the
recording's calibration. Only single-part scene videos are supported (one ``... ps1.mp4``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .recording import Recording, RecordingFormatError, SceneCamera, make_recording

__all__ = ["NEEDS", "is_neon", "read_neon"]

NEEDS = ("info.json + 'gaze ps1.raw' + 'Neon Scene Camera v1 ps1.mp4' "
         "(needs pip install pupil-labs-neon-recording)")


def is_neon(folder: Path) -> bool:
    return (folder / "info.json").is_file() and any(folder.glob("Neon Scene Camera*.mp4"))


def _require_neon() -> Any:
    from ..video_file import require_av

    av_logging = require_av().logging
    level = av_logging.get_level()
    try:
        import pupil_labs.neon_recording as neon_recording
    except ImportError as error:
        raise ImportError(
            "reading native Neon recordings needs pupil-labs-neon-recording: pip install pupil-labs-neon-recording  "
            "(or pip install 'sam2kit[eyetracking]'); or export the recording from Pupil Cloud and read that folder"
        ) from error
    finally:
        # Importing it turns on PyAV's Python log callback; with threaded decoding that callback can
        # deadlock a decoder's teardown (a decoder thread waits for the GIL that close() holds).
        av_logging.set_level(level)
    return neon_recording


def _inside(times: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: each time lies in one of the sorted ``[start, stop]`` intervals."""
    index = np.searchsorted(starts, times, side="right") - 1
    ok = index >= 0
    result = np.zeros(len(times), dtype=bool)
    result[ok] = times[ok] <= stops[index[ok]]
    return result


def read_neon(folder: str | Path) -> Recording:
    """Read a native Neon recording folder (see the module docstring).

    Raises:
        ImportError: pupil-labs-neon-recording is not installed.
        RecordingFormatError: a multi-part scene video, no gaze, timestamps out of order or not overlapping.
    """
    from ..video_file import VideoFileSource

    folder = Path(folder)
    neon_recording = _require_neon()
    videos = sorted(folder.glob("Neon Scene Camera*.mp4"))
    if len(videos) != 1:
        raise RecordingFormatError(f"{folder}: {len(videos)} scene video parts; only single-part Neon recordings "
                                   "are supported (export it from Pupil Cloud instead)")
    recording = neon_recording.open(folder)
    try:
        frame_ns = np.asarray(recording.scene.time, np.int64)
        gaze = recording.gaze
        gaze_ns = np.asarray(gaze.time, np.int64)
        point = np.asarray(gaze.point, np.float64).reshape(-1, 2)
        reason = np.full(len(gaze_ns), "", dtype=object)
        try:
            blinks = recording.blinks
            reason[_inside(gaze_ns, np.asarray(blinks.start_time), np.asarray(blinks.stop_time))] = "blink"
        except (AttributeError, recording.SensorError):
            pass
        try:
            worn = recording.worn.sample(gaze_ns, method="nearest")
            reason[np.asarray(worn.worn, np.float64) == 0] = "not_worn"
        except (AttributeError, recording.SensorError):
            pass
        fixations = None
        try:
            table = recording.fixations
            starts, stops = np.asarray(table.start_time, np.int64), np.asarray(table.stop_time, np.int64)
            mean = np.asarray(table.mean_gaze_point, np.float64).reshape(-1, 2)
            fixations = (np.arange(1, len(starts) + 1), starts, stops, mean[:, 0], mean[:, 1])
        except (AttributeError, recording.SensorError):
            pass
        events: list[tuple[Any, str]] = []
        try:
            events = list(zip(np.asarray(recording.events.time).tolist(),
                              np.asarray(recording.events.event).astype(str).tolist(), strict=True))
        except (AttributeError, recording.SensorError):
            pass
        calibration = recording.calibration
        matrix = None if calibration is None else np.asarray(calibration.scene_camera_matrix, np.float64)
    finally:
        recording.close()
    source = VideoFileSource(videos[0], cache_size=1)
    try:
        width, height, num_frames = source.width, source.height, len(source)
    finally:
        source.close()
    fixation_id = None
    if fixations is not None:
        ids, starts, stops = fixations[0], fixations[1], fixations[2]
        index = np.searchsorted(starts, gaze_ns, side="right") - 1
        hit = (index >= 0) & (gaze_ns <= stops[np.clip(index, 0, None)])
        fixation_id = np.where(hit, ids[np.clip(index, 0, None)], -1)
    return make_recording(
        "neon", folder, videos[0], frame_timestamps=frame_ns, sample_timestamps=gaze_ns, unit_s=1e-9,
        x_px=point[:, 0], y_px=point[:, 1], reason=reason, camera=SceneCamera(width, height, matrix),
        num_video_frames=num_frames, fixation_id=fixation_id, fixations=fixations, events=events,
    )
