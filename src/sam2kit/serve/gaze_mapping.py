"""Recording mode: a video session on an eye-tracking recording's scene video, with its gaze, and the
gaze-mapping job.

A :class:`RecordingSession` is a :class:`~sam2kit.serve.sessions.VideoSession` (every video route
works on it: frames, prompts, propagation, exports) that also holds the
:class:`~sam2kit.io.eyetracking.Recording` and the latest mapping's :class:`GazeResult`.

A :class:`GazeMappingJob` is a :class:`~sam2kit.serve.propagation.PropagationJob` (same thread, same
progress, same cancel, same SSE stream): it tracks the session's prompted objects (the AOIs) through
the video as a propagation does, then runs :func:`sam2kit.gaze.analyse_gaze` over the tracked masks
(or, with a folder of AOI masks, over those, which then become the session's objects) and writes
the three CSV files into the session's folder, each atomically.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..gaze import AOISource, GazeTables, MaskFolderAOIs, Tolerance, analyse_gaze
from .propagation import PropagationJob
from .sessions import VideoSession

if TYPE_CHECKING:
    from ..io.eyetracking import Fixations, Recording
    from .sessions import ModelWorker

__all__ = ["GazeMappingJob", "GazeResult", "RecordingSession", "SessionAOIs", "aoi_timeline", "frame_gaze", "records"]


@dataclass
class GazeResult:
    """A finished mapping: the tables, each sample's AOIs, the frames each AOI is visible on, the CSVs."""

    tables: GazeTables
    sample_aois: list[list[int]]  # per sample, in input order
    visible_frames: dict[int, list[int]]  # AOI -> frames where its mask is not empty
    files: dict[str, Path]  # table -> CSV file (gaze_samples.csv, fixations.csv, aoi_metrics.csv)
    aoi_source: str  # "objects" or "aoi_masks"


@dataclass
class RecordingSession(VideoSession):
    """A video session on a recording's scene video, with the recording and the latest mapping."""

    recording: Recording | None = None
    source: str = ""  # the recording's path as the client gave it (relative to the media root)
    gaze: GazeResult | None = None

    @classmethod
    def from_video(cls, video: VideoSession, recording: Recording, source: str) -> RecordingSession:
        """The recording session of an opened video session (which it replaces)."""
        base = {f.name: getattr(video, f.name) for f in fields(VideoSession)}
        return cls(**base, recording=recording, source=source)

    def summary(self) -> dict[str, Any]:
        """What the client needs to know of the recording (times in seconds from the first scene frame)."""
        recording = self.recording
        if recording is None:
            return {}
        samples = recording.samples
        return {
            "format": recording.format, "path": self.source, "num_samples": len(samples),
            "valid_samples": int(samples.valid.sum()),
            "num_fixations": None if recording.fixations is None else len(recording.fixations),
            "num_frames": recording.num_frames, "frame_times_s": recording.frame_times_s.round(6).tolist(),
            "duration_s": float(recording.frame_times_s[-1]), "focal_px": recording.camera.focal_px,
            "events": [{"time_s": round(t, 6), "name": name} for t, name in recording.events[:1000]],
        }

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["recording"] = self.summary()
        data["gaze_mapping"] = None if self.gaze is None else {
            "aoi_source": self.gaze.aoi_source, "tolerance_px": self.gaze.tables.tolerance_px,
            "fixations_source": self.gaze.tables.fixations_source, "aois": self.gaze.tables.aoi_metrics["aoi"].tolist()}
        return data

    def close(self) -> None:
        super().close()
        self.recording = None
        self.gaze = None


class _Cancelled(Exception):
    """Raised inside the analysis when the job is cancelled."""


class SessionAOIs(AOISource):
    """The AOIs of a session for :func:`~sam2kit.gaze.analyse_gaze`: its prompted objects' masks as
    tracked (COCO RLE per frame, decoded one frame at a time); AOI id = object id."""

    def __init__(self, session: VideoSession) -> None:
        prompted = {obj_id for _, obj_id in session.prompts}
        self.names = {obj_id: name for obj_id, name in session.names.items() if obj_id in prompted}
        self._masks = session.masks

    def masks(
        self, video: Path, num_frames: int, size: tuple[int, int], frames: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        from ..errors import ArgumentError
        from ..io.masks import coco_rle_to_mask

        for frame in frames:
            masks = {aoi: coco_rle_to_mask(rle) for aoi, rle in dict(self._masks.get(frame, {})).items()
                     if aoi in self.names}
            for aoi, mask in masks.items():
                if mask.shape != size:
                    raise ArgumentError(f"the mask of AOI {aoi} is {mask.shape[1]}x{mask.shape[0]} pixels but the "
                                        f"recording's scene camera is {size[1]}x{size[0]}", argument="aois")
            yield frame, masks


class _Observed(AOISource):
    """Passes another source's masks to the analysis, counting progress, noting the frames each AOI
    is visible on, stopping when cancelled and, for a mask folder, keeping them as the session's masks."""

    def __init__(self, source: AOISource, job: GazeMappingJob, keep: bool) -> None:
        self.source, self.job, self.keep = source, job, keep
        self.names = source.names
        self.visible: dict[int, list[int]] = {}

    def prepare(self, recording: Recording, fixations: Fixations) -> None:
        self.source.prepare(recording, fixations)

    def relabel(self) -> dict[int, int]:
        return self.source.relabel()

    def masks(
        self, video: Path, num_frames: int, size: tuple[int, int], frames: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        session = self.job.session
        for frame, masks in self.source.masks(video, num_frames, size, frames):
            if self.job.cancelled:
                raise _Cancelled
            for aoi, mask in masks.items():
                if mask.any():
                    self.visible.setdefault(aoi, []).append(frame)
            if self.keep and frame < session.num_frames:
                session.masks[frame] = {aoi: _rle(mask) for aoi, mask in masks.items()}
                for aoi in masks:
                    session.names.setdefault(aoi, self.names.get(aoi) or f"AOI {aoi}")
            self.job.done += 1
            self.job.last_frame = frame
            session.last_used = time.monotonic()
            yield frame, masks


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from ..io.masks import to_coco_rle

    rle = to_coco_rle(mask)
    assert isinstance(rle, dict)
    return rle


class GazeMappingJob(PropagationJob):
    """Track the AOIs (unless ``aoi_masks`` gives them), then analyse the gaze (see the module docstring).

    ``phase`` is ``"tracking"`` then ``"analysing"``; ``done`` / ``total`` count tracked frames and
    analysed frames together.
    """

    def __init__(self, session: RecordingSession, worker: ModelWorker, tolerance: Tolerance, tolerance_px: float,
                 aoi_masks: MaskFolderAOIs | None = None) -> None:
        assert session.recording is not None
        prompted = sorted({frame for frame, _ in session.prompts})
        start = prompted[0] if prompted and aoi_masks is None else 0
        super().__init__(session, worker, "both" if start > 0 else "forward", start)
        self.recording_session = session
        self.tolerance, self.tolerance_px, self.aoi_masks = tolerance, tolerance_px, aoi_masks
        self.total = (0 if aoi_masks is not None else self.total) + session.recording.num_frames
        self.phase = "analysing" if aoi_masks is not None else "tracking"

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "kind": "gaze_mapping", "phase": self.phase, "tolerance": str(self.tolerance),
                "tolerance_px": self.tolerance_px, "aoi_source": "objects" if self.aoi_masks is None else "aoi_masks"}

    def _run(self) -> None:
        session = self.recording_session
        try:
            with session.lock:  # no prompt changes while tracking and analysing
                if self.aoi_masks is None:
                    passes = [False] if self.direction == "forward" else [False, True]
                    tracked = all(self._track(reverse, skip_start=reverse) for reverse in passes)
                else:
                    session.masks.clear()
                    session.names.clear()
                    tracked = True
                if tracked and not self.cancelled:
                    self.phase = "analysing"
                    session.gaze = self._analyse(session)
            self.status = "cancelled" if self.cancelled else "done"
        except _Cancelled:
            self.status = "cancelled"
        except Exception as error:  # reported to observers; the service keeps serving
            from ..errors import ArgumentError

            message = str(error) if isinstance(error, ArgumentError) else f"{type(error).__name__}: {error}"
            self.status, self.error = "failed", message
        finally:
            self.finished = time.monotonic()

    def _analyse(self, session: RecordingSession) -> GazeResult:
        assert session.recording is not None and session.folder is not None
        source: AOISource = self.aoi_masks if self.aoi_masks is not None else SessionAOIs(session)
        observed = _Observed(source, self, keep=self.aoi_masks is not None)
        tables = analyse_gaze(session.recording, observed, tolerance=self.tolerance)
        files = tables.write(session.folder / "gaze")
        sample_aois = [[int(v) for v in text.split(";")] if text else [] for text in tables.samples["aois"]]
        return GazeResult(tables, sample_aois, observed.visible, files,
                          "objects" if self.aoi_masks is None else "aoi_masks")


def frame_gaze(session: RecordingSession, start: int, stop: int) -> list[dict[str, Any]]:
    """One gaze point per scene frame in ``[start, stop)`` that has samples: the valid sample nearest
    the frame's time (else the nearest sample), with its AOIs when the gaze has been mapped."""
    recording = session.recording
    assert recording is not None
    samples = recording.samples
    on_video = np.flatnonzero((samples.frame >= start) & (samples.frame < stop))
    if not len(on_video):
        return []
    frames = samples.frame[on_video]
    distance = np.abs(samples.time_s[on_video] - recording.frame_times_s[frames])
    order = np.lexsort((distance, ~samples.valid[on_video], frames))  # by frame, valid first, nearest first
    first_frames, first_at, counts = np.unique(frames[order], return_index=True, return_counts=True)
    gaze = session.gaze
    points = []
    for frame, position, count in zip(first_frames.tolist(), first_at.tolist(), counts.tolist(), strict=True):
        index = int(on_video[order[position]])
        x, y = float(samples.x_px[index]), float(samples.y_px[index])
        fixation = int(samples.fixation_id[index])
        points.append({
            "frame": frame, "time_s": round(float(samples.time_s[index]), 9),
            "x": round(x, 6) if np.isfinite(x) else None, "y": round(y, 6) if np.isfinite(y) else None,
            "valid": bool(samples.valid[index]), "reason": str(samples.reason[index]),
            "fixation_id": fixation if fixation >= 0 else None, "samples": count,
            "aois": gaze.sample_aois[index] if gaze is not None else None,
        })
    return points


def _runs(frames: list[int] | np.ndarray) -> list[list[int]]:
    """Sorted frames -> ``[[first, last], ...]`` runs of consecutive frames (inclusive)."""
    values = np.unique(np.asarray(frames, dtype=np.int64))
    if not len(values):
        return []
    breaks = np.flatnonzero(np.diff(values) > 1)
    starts = np.append(values[0], values[breaks + 1])
    ends = np.append(values[breaks], values[-1])
    return [[int(a), int(b)] for a, b in zip(starts, ends, strict=True)]


def aoi_timeline(session: RecordingSession) -> dict[str, Any]:
    """Per AOI of the latest mapping: the frame runs where it is visible and where gaze hits it."""
    recording, gaze = session.recording, session.gaze
    assert recording is not None and gaze is not None
    samples = recording.samples
    looked: dict[int, list[int]] = {}
    for index in np.flatnonzero(samples.valid & (samples.frame >= 0)).tolist():
        for aoi in gaze.sample_aois[index]:
            looked.setdefault(aoi, []).append(int(samples.frame[index]))
    metrics = gaze.tables.aoi_metrics
    aois = [{"aoi": int(aoi), "name": str(name) or session.names.get(int(aoi), ""),
             "visible": _runs(gaze.visible_frames.get(int(aoi), [])), "looked": _runs(looked.get(int(aoi), []))}
            for aoi, name in zip(metrics["aoi"], metrics["name"], strict=True)]
    return {"num_frames": recording.num_frames, "valid": _runs(samples.frame[samples.valid & (samples.frame >= 0)]),
            "aois": aois}


def records(table: Any) -> list[dict[str, Any]]:
    """A DataFrame's rows as JSON-ready dicts (NaN / missing -> None, numpy scalars -> Python)."""
    rows = []
    for row in table.to_dict("records"):
        clean = {}
        for key, value in row.items():
            if hasattr(value, "item"):
                value = value.item()
            if value is None or (isinstance(value, float) and not np.isfinite(value)) or _is_missing(value):
                value = None
            clean[key] = value
        rows.append(clean)
    return rows


def _is_missing(value: Any) -> bool:
    import pandas

    return value is pandas.NA or value is pandas.NaT

