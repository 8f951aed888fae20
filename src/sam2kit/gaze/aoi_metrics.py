"""The AOI metrics: one row per AOI, every time in seconds (definitions in the README, "Gaze and AOIs").

Fixation based (as Tobii Pro Lab and Pupil Cloud define them): a fixation is on an AOI when the
AOI is among its AOIs (majority of its valid samples). Visits: a visit starts with a fixation on
the AOI and runs to the end of the last fixation on it before a fixation that is not on it.
Sample based: each valid sample on the AOI lasts until the next sample (the last one for the
median sample interval). Visibility: each (tracked) scene frame lasts until the next one (the last
one for the median frame interval); the AOI is visible on a frame where its mask is not empty.
Undefined values (no fixation on the AOI, never visible) are NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["METRIC_COLUMNS", "AOIMetrics", "aoi_metrics"]

METRIC_COLUMNS = (
    "aoi", "name", "visible_s", "fixation_count", "total_fixation_duration_s", "average_fixation_duration_s",
    "time_to_first_fixation_s", "time_to_first_fixation_visible_s", "first_fixation_duration_s", "visit_count",
    "total_visit_duration_s", "dwell_s", "time_to_first_gaze_s", "dwell_share_of_visible",
)


@dataclass
class AOIMetrics:
    """The inputs of :func:`aoi_metrics` for one AOI: its visible time and first visible time (NaN if never)."""

    visible_s: float = 0.0
    first_visible_s: float = math.nan


def _durations(times: np.ndarray) -> np.ndarray:
    """Each entry lasts until the next; the last for the median step (0 with a single entry)."""
    if len(times) == 0:
        return np.zeros(0)
    steps = np.diff(times)
    last = float(np.median(steps)) if len(steps) else 0.0
    return np.append(steps, last)


def _visits(on_aoi: np.ndarray, start_s: np.ndarray, end_s: np.ndarray) -> list[tuple[float, float]]:
    visits: list[tuple[float, float]] = []
    current: list[float] | None = None
    for on, start, end in zip(on_aoi, start_s, end_s, strict=True):
        if on:
            if current is None:
                current = [start, end]
            else:
                current[1] = end
        elif current is not None:
            visits.append((current[0], current[1]))
            current = None
    if current is not None:
        visits.append((current[0], current[1]))
    return visits


def aoi_metrics(
    aoi_ids: list[int],
    names: dict[int, str],
    visibility: dict[int, AOIMetrics],
    sample_time_s: np.ndarray,
    sample_valid: np.ndarray,
    sample_hits: list[frozenset[int]],
    fixation_start_s: np.ndarray,
    fixation_end_s: np.ndarray,
    fixation_hits: list[frozenset[int]],
) -> list[dict[str, object]]:
    """One dict per AOI with :data:`METRIC_COLUMNS` (see the module docstring)."""
    sample_durations = _durations(sample_time_s)
    order = np.argsort(fixation_start_s, kind="stable")
    start_s, end_s = fixation_start_s[order], fixation_end_s[order]
    hits_in_order = [fixation_hits[i] for i in order]
    rows = []
    for aoi in aoi_ids:
        seen = visibility.get(aoi, AOIMetrics())
        on = np.array([aoi in hits for hits in hits_in_order], dtype=bool)
        durations = end_s[on] - start_s[on]
        count = int(on.sum())
        first = float(start_s[on][0]) if count else math.nan
        visits = _visits(on, start_s, end_s)
        gazed = np.array([valid and aoi in hits for valid, hits in zip(sample_valid, sample_hits, strict=True)], bool)
        dwell = float(sample_durations[gazed].sum()) if len(gazed) else 0.0
        rows.append({
            "aoi": aoi,
            "name": names.get(aoi, ""),
            "visible_s": seen.visible_s,
            "fixation_count": count,
            "total_fixation_duration_s": float(durations.sum()),
            "average_fixation_duration_s": float(durations.mean()) if count else math.nan,
            "time_to_first_fixation_s": first,
            "time_to_first_fixation_visible_s": first - seen.first_visible_s,
            "first_fixation_duration_s": float(durations[0]) if count else math.nan,
            "visit_count": len(visits),
            "total_visit_duration_s": float(sum(end - start for start, end in visits)),
            "dwell_s": dwell,
            "time_to_first_gaze_s": float(sample_time_s[gazed][0]) if gazed.any() else math.nan,
            "dwell_share_of_visible": dwell / seen.visible_s if seen.visible_s > 0 else math.nan,
        })
    return rows
