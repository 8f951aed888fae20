"""The gaze job: hit-test every gaze sample and fixation of a recording against its AOIs and report
the AOI metrics, as three pandas DataFrames (and, with :meth:`GazeTables.write`, three CSV files).

The AOI masks pass one scene frame at a time: each frame's hit tests and visibility are taken as it
comes and its masks dropped, so memory does not grow with the recording's length. With ``stride``
K only every K-th scene frame (0, K, 2K, ...) is read or tracked and each sample is tested against
the tracked frame nearest in time.

Tables (column names are the CSV headers; empty cells are NaN / missing):

- ``samples`` (``gaze_samples.csv``): one row per input sample in input order: ``time_s`` (from the
  first scene frame), ``timestamp`` (the recording's own), ``frame`` (nearest scene frame; empty
  outside the video), ``x_px``, ``y_px`` (origin top left), ``valid`` (1/0), ``fixation_id``,
  ``aois`` (AOI ids hit, ``;``-separated; empty for none and for every invalid sample).
- ``fixations`` (``fixations.csv``): ``fixation_id``, ``start_s``, ``end_s``, ``duration_s``,
  ``x_px``, ``y_px``, ``aois``.
- ``aoi_metrics`` (``aoi_metrics.csv``): see :mod:`sam2kit.gaze.aoi_metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError
from ..io.eyetracking import Recording
from ..io.eyetracking.recording import require_pandas
from .aoi_metrics import METRIC_COLUMNS, AOIMetrics, aoi_metrics
from .aois import AOISource
from .fixations import FixationOptions, assign_samples, detect_fixations, fixation_aois, fixation_positions
from .hits import Tolerance, hit_test, parse_tolerance

__all__ = ["FILES", "GazeTables", "analyse_gaze"]

logger = logging.getLogger(__name__)

#: table -> file name in the output folder
FILES = {"samples": "gaze_samples.csv", "fixations": "fixations.csv", "aoi_metrics": "aoi_metrics.csv"}
_DECIMALS = 9  # times and positions are rounded to 1e-9 (nanoseconds) in the tables


@dataclass
class GazeTables:
    """The three result tables (pandas DataFrames) and what produced them."""

    samples: Any
    fixations: Any
    aoi_metrics: Any
    tolerance_px: float
    stride: int
    fixations_source: str  # "recording" or "pymovements-idt" / "pymovements-ivt"
    #: AOI -> (start_s, length_s) stretches in which it is visible (for the summary plot)
    visible_intervals: dict[int, list[tuple[float, float]]]
    duration_s: float  # the scene video's length
    overlay: Path | None = None

    def write_summary(self, path: str | Path) -> Path:
        """``summary.png`` (see :func:`sam2kit.gaze.render.write_summary`)."""
        from .render import write_summary

        return write_summary(path, self.aoi_metrics, self.fixations, self.visible_intervals, self.duration_s)

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``gaze_samples.csv``, ``fixations.csv`` and ``aoi_metrics.csv`` into ``out_dir``
        (created), each atomically; returns table -> path."""
        from ..io.atomic import atomic_write

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise ArgumentError(f"out_dir {out} exists and is not a folder", argument="out_dir")
        paths = {}
        for table, name in FILES.items():
            paths[table] = atomic_write(out / name, getattr(self, table).to_csv(index=False, lineterminator="\n"))
        return paths


def _aoi_text(aois: Iterable[int]) -> str:
    return ";".join(str(a) for a in sorted(aois))


def _nearest_tracked(times_s: np.ndarray, tracked_times: np.ndarray) -> np.ndarray:
    """Position in ``tracked_times`` of the time nearest each of ``times_s`` (ties: earlier)."""
    right = np.clip(np.searchsorted(tracked_times, times_s), 0, len(tracked_times) - 1)
    left = np.clip(right - 1, 0, None)
    nearer_left = np.abs(times_s - tracked_times[left]) <= np.abs(tracked_times[right] - times_s)
    return np.where(nearer_left, left, right)


def analyse_gaze(
    recording: Recording,
    aois: AOISource,
    *,
    tolerance: str | float | Tolerance = 0.0,
    stride: int = 1,
    fixation_options: FixationOptions | None = None,
    overlay: str | Path | None = None,
) -> GazeTables:
    """Hit-test ``recording``'s samples and fixations against ``aois`` and compute the AOI metrics.

    Args:
        recording: from :func:`sam2kit.io.eyetracking.read_recording` (or a format's reader).
        aois: an :class:`~sam2kit.gaze.aois.AOISource` (mask folder, prompts tracked, ...).
        tolerance: ``"20px"``, ``"1.5deg"`` (needs the scene intrinsics) or a number of pixels.
        stride: use every ``stride``-th scene frame (>= 1).
        fixation_options: detection (default :class:`FixationOptions`), used only when the recording has no fixations.
        overlay: also write this video (the used frames with masks, gaze and fixation drawn).
    Returns:
        a :class:`GazeTables`.
    Raises:
        ArgumentError: a bad tolerance or stride, AOI masks that do not fit the video.
        ImportError: pandas, or pymovements when fixations must be detected, is missing.
    """
    pandas = require_pandas()
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ArgumentError(f"stride must be an integer >= 1, got {stride!r}", argument="stride")
    radius = parse_tolerance(tolerance).pixels(recording.camera)
    samples, frame_times = recording.samples, recording.frame_times_s

    if recording.fixations is not None:
        fixations, source = recording.fixations, "recording"
        fixation_of_sample = samples.fixation_id if (samples.fixation_id >= 0).any() else assign_samples(
            samples, fixations)
    else:
        options = fixation_options or FixationOptions()
        fixations = detect_fixations(samples, recording.camera, options)
        source = f"pymovements-{options.method}"
        fixation_of_sample = assign_samples(samples, fixations)
    fixation_positions(fixations, samples, fixation_of_sample)

    tracked = np.arange(0, recording.num_frames, stride)
    tracked_times = frame_times[tracked]
    testable = samples.valid & (samples.frame >= 0)
    hit_slot = _nearest_tracked(samples.time_s, tracked_times)
    by_frame: dict[int, np.ndarray] = {}
    for slot in np.unique(hit_slot[testable]):
        by_frame[int(tracked[slot])] = np.flatnonzero(testable & (hit_slot == slot))

    video_end = frame_times[-1] + (float(np.median(np.diff(frame_times))) if len(frame_times) > 1 else 0.0)
    frame_duration = dict(zip(tracked.tolist(), np.diff(np.append(tracked_times, video_end)).tolist(), strict=True))
    hits: list[set[int]] = [set() for _ in range(len(samples))]
    visible_on: dict[int, set[int]] = {}  # frame -> ids with a non-empty mask (a few ints per frame)
    size = (recording.camera.height, recording.camera.width)
    aois.prepare(recording, fixations)
    overlay_writer = None
    if overlay is not None:
        from .render import OverlayWriter

        fps = 1 / float(np.median(np.diff(frame_times))) / stride if len(frame_times) > 1 else 30.0
        overlay_writer = OverlayWriter(overlay, recording.video, fps, radius)
    try:
        for frame, masks in aois.masks(recording.video, recording.num_frames, size, tracked.tolist()):
            if overlay_writer is not None:
                overlay_writer.add(frame, masks)
            members = by_frame.get(frame)
            for aoi, mask in masks.items():
                if not mask.any():
                    continue
                visible_on.setdefault(frame, set()).add(aoi)
                if members is not None:
                    for index in members[hit_test(mask, samples.x_px[members], samples.y_px[members], radius)]:
                        hits[index].add(aoi)
        aoi_of = aois.relabel()  # segments of one object -> one AOI (AOIs from fixations); else identity
        sample_hits = [frozenset(aoi_of.get(a, a) for a in h) for h in hits]
        if overlay_writer is not None:
            overlay_writer.finish(samples, by_frame, sample_hits, fixations, fixation_of_sample, aoi_of)
    finally:
        if overlay_writer is not None:
            overlay_writer.close()
    visibility: dict[int, AOIMetrics] = {}
    intervals: dict[int, list[tuple[float, float]]] = {}
    for frame in sorted(visible_on):
        for aoi in {aoi_of.get(a, a) for a in visible_on[frame]}:
            seen = visibility.setdefault(aoi, AOIMetrics(first_visible_s=float(frame_times[frame])))
            seen.visible_s += frame_duration[frame]
            stretches, start = intervals.setdefault(aoi, []), float(frame_times[frame])
            if stretches and abs(stretches[-1][0] + stretches[-1][1] - start) < 1e-9:
                stretches[-1] = (stretches[-1][0], stretches[-1][1] + frame_duration[frame])
            else:
                stretches.append((start, frame_duration[frame]))
    fix_hits = fixation_aois(fixations.fixation_id, samples, sample_hits, fixation_of_sample)
    aoi_ids = sorted(set(aois.names) | set(visibility))

    frame_column = pandas.array(np.where(samples.frame >= 0, samples.frame, 0), dtype="Int64")
    frame_column[samples.frame < 0] = pandas.NA
    fixation_column = pandas.array(fixation_of_sample, dtype="Int64")
    fixation_column[fixation_of_sample < 0] = pandas.NA
    sample_table = pandas.DataFrame({
        "time_s": np.round(samples.time_s, _DECIMALS),
        "timestamp": samples.timestamp,
        "frame": frame_column,
        "x_px": np.round(samples.x_px, _DECIMALS),
        "y_px": np.round(samples.y_px, _DECIMALS),
        "valid": samples.valid.astype(np.int64),
        "fixation_id": fixation_column,
        "aois": [_aoi_text(h) for h in sample_hits],
    })
    fixation_table = pandas.DataFrame({
        "fixation_id": fixations.fixation_id,
        "start_s": np.round(fixations.start_s, _DECIMALS),
        "end_s": np.round(fixations.end_s, _DECIMALS),
        "duration_s": np.round(fixations.end_s - fixations.start_s, _DECIMALS),
        "x_px": np.round(fixations.x_px, _DECIMALS),
        "y_px": np.round(fixations.y_px, _DECIMALS),
        "aois": [_aoi_text(h) for h in fix_hits],
    })
    rows = aoi_metrics(aoi_ids, aois.names, visibility, samples.time_s, samples.valid, sample_hits,
                       fixations.start_s, fixations.end_s, fix_hits)
    metric_table = pandas.DataFrame(rows, columns=list(METRIC_COLUMNS))
    float_columns = [c for c in METRIC_COLUMNS if c.endswith("_s") or c == "dwell_share_of_visible"]
    metric_table[float_columns] = metric_table[float_columns].astype(np.float64).round(_DECIMALS)
    logger.info("%d sample(s) (%d valid), %d fixation(s) (%s), %d AOI(s), tolerance %.1f px, stride %d",
                len(samples), int(samples.valid.sum()), len(fixations), source, len(aoi_ids), radius, stride)
    return GazeTables(sample_table, fixation_table, metric_table, radius, stride, source, intervals,
                      float(video_end), None if overlay is None else Path(overlay))
