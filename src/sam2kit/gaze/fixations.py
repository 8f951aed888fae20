"""Fixations: the recording's own, or detected with ``pymovements`` when it has none; which
samples belong to which fixation; and a fixation's AOIs by majority of its valid samples.

Detection (``pymovements.events.idt`` or ``ivt`` on plain arrays) runs in degrees when the scene
camera has intrinsics (azimuth / elevation of each gaze point through the pinhole model), else in
pixels. Invalid samples are passed as NaN (no fixation spans them).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError
from ..io.eyetracking import Fixations, GazeSamples, SceneCamera

__all__ = ["FixationOptions", "assign_samples", "detect_fixations", "fixation_aois"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FixationOptions:
    """Fixation detection (used only when the recording has no fixations of its own).

    Attributes:
        method: ``"idt"`` (dispersion threshold) or ``"ivt"`` (velocity threshold).
        minimum_duration_ms: shortest fixation (default 100 ms, pymovements' default).
        dispersion_deg / dispersion_px: I-DT dispersion threshold (x range + y range) in degrees
            with intrinsics (default 1.0, pymovements' default), else pixels (default 25).
        velocity_deg_s / velocity_px_s: I-VT velocity threshold (default 20 deg/s, pymovements'
            default; 500 px/s without intrinsics).
    """

    method: str = "idt"
    minimum_duration_ms: float = 100.0
    dispersion_deg: float = 1.0
    dispersion_px: float = 25.0
    velocity_deg_s: float = 20.0
    velocity_px_s: float = 500.0

    def __post_init__(self) -> None:
        if self.method not in ("idt", "ivt"):
            raise ArgumentError(f"fixation_method must be idt or ivt, got {self.method!r}", argument="fixation_method")


def _positions(samples: GazeSamples, camera: SceneCamera) -> tuple[np.ndarray, bool]:
    """``(N, 2)`` gaze positions in degrees (with intrinsics) or pixels; NaN for invalid samples."""
    x, y = samples.x_px.copy(), samples.y_px.copy()
    x[~samples.valid] = np.nan
    y[~samples.valid] = np.nan
    if camera.camera_matrix is None:
        return np.stack([x, y], axis=1), False
    matrix = camera.camera_matrix
    azimuth = np.degrees(np.arctan((x - matrix[0, 2]) / matrix[0, 0]))
    elevation = np.degrees(np.arctan((y - matrix[1, 2]) / matrix[1, 1]))
    return np.stack([azimuth, elevation], axis=1), True


def detect_fixations(samples: GazeSamples, camera: SceneCamera, options: FixationOptions | None = None) -> Fixations:
    """Fixations of the valid samples, detected with pymovements (ids 1, 2, ...; position = mean of
    the fixation's valid samples in pixels).

    Raises:
        ImportError: pymovements is not installed (the message says how to install it).
    """
    try:
        import pymovements
    except ImportError as error:
        raise ImportError(
            "this recording has no fixations; detecting them needs pymovements: pip install pymovements  "
            "(or pip install 'sam2kit[eyetracking]')"
        ) from error
    options = options or FixationOptions()
    positions, degrees = _positions(samples, camera)
    micros = np.round(samples.time_s * 1e6).astype(np.int64)  # integer timesteps, as pymovements wants
    minimum = int(round(options.minimum_duration_ms * 1000))
    if options.method == "idt":
        threshold = options.dispersion_deg if degrees else options.dispersion_px
        events = pymovements.events.idt(positions, timesteps=micros, minimum_duration=minimum,
                                        dispersion_threshold=threshold)
    else:
        threshold = options.velocity_deg_s if degrees else options.velocity_px_s
        seconds = np.maximum.accumulate(samples.time_s)
        velocities = np.gradient(positions, seconds, axis=0) if len(seconds) > 1 else np.zeros_like(positions)
        events = pymovements.events.ivt(velocities, timesteps=micros, minimum_duration=minimum,
                                        velocity_threshold=threshold)
    frame = events.frame
    onsets = np.asarray(frame["onset"].to_list(), np.int64)
    offsets = np.asarray(frame["offset"].to_list(), np.int64)
    order = np.argsort(onsets)
    start_s, end_s = onsets[order] / 1e6, offsets[order] / 1e6
    ids = np.arange(1, len(order) + 1, dtype=np.int64)
    fixations = Fixations(ids, start_s, end_s, np.full(len(ids), np.nan), np.full(len(ids), np.nan))
    logger.info("detected %d fixation(s) with pymovements %s (threshold %g %s, minimum %g ms)", len(ids),
                options.method.upper(), threshold,
                ("deg" if degrees else "px") + ("/s" if options.method == "ivt" else ""),
                options.minimum_duration_ms)
    return fixations


def assign_samples(samples: GazeSamples, fixations: Fixations) -> np.ndarray:
    """``(N,)`` fixation id of each sample whose time lies in a fixation's ``[start_s, end_s]``
    (the earliest one when fixations overlap), -1 for none."""
    result = np.full(len(samples), -1, dtype=np.int64)
    for index in np.argsort(fixations.start_s)[::-1]:
        inside = (samples.time_s >= fixations.start_s[index]) & (samples.time_s <= fixations.end_s[index])
        result[inside] = fixations.fixation_id[index]
    return result


def fixation_aois(fixation_ids: np.ndarray, samples: GazeSamples, hits: list[frozenset[int]],
                  fixation_of_sample: np.ndarray) -> list[frozenset[int]]:
    """Each fixation's AOIs: those hit by more than half of its valid samples (none without valid samples)."""
    result = []
    for fixation in fixation_ids:
        members = np.flatnonzero((fixation_of_sample == fixation) & samples.valid)
        counts: dict[int, int] = {}
        for index in members:
            for aoi in hits[index]:
                counts[aoi] = counts.get(aoi, 0) + 1
        result.append(frozenset(aoi for aoi, count in counts.items() if 2 * count > len(members)))
    return result


def fixation_positions(fixations: Fixations, samples: GazeSamples, fixation_of_sample: np.ndarray) -> None:
    """Fill a NaN fixation position with the mean of its valid samples (in place)."""
    for index, fixation in enumerate(fixations.fixation_id):
        if math.isnan(fixations.x_px[index]) or math.isnan(fixations.y_px[index]):
            members = (fixation_of_sample == fixation) & samples.valid
            if members.any():
                fixations.x_px[index] = float(samples.x_px[members].mean())
                fixations.y_px[index] = float(samples.y_px[members].mean())
