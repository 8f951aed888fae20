"""AOIs without clicks: every fixation longer than a threshold prompts a point (the fixation's
position) on the scene frame nearest its middle; the segments are tracked through the video like
prompted AOIs, and segments of the same object merge into one AOI: two segments merge when their
masks overlap with IoU >= ``merge_iou`` on some frame where both are tracked (transitively).

AOI ids are 1, 2, ... in the order of each AOI's first prompting fixation; an AOI's name lists the
fixations that prompted it (``fixations 3,7,12``). Only the ``max_segments`` longest fixations
prompt (tracking cost grows with the number of segments). With a stride the prompt goes on the
used frame nearest the fixation's middle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import ArgumentError
from ..io.eyetracking import Fixations, Recording, nearest_frames
from ..model_spec import LoadedModel, ModelSpec
from .tracked import AOIPrompt, PromptAOIs

__all__ = ["FixationAOIs"]

logger = logging.getLogger(__name__)


class FixationAOIs:
    """AOIs from long fixations (see the module docstring).

    Args:
        min_duration_ms: fixations at least this long prompt a segment (default 300).
        merge_iou: mask IoU on a shared frame at which two segments are one object (default 0.5).
        max_segments: at most this many (longest) fixations prompt, 1..255 (default 32).
        model, fill_hole_area, show_progress: as for :class:`~sam2kit.gaze.tracked.PromptAOIs`.
    """

    def __init__(self, *, min_duration_ms: float = 300.0, merge_iou: float = 0.5, max_segments: int = 32,
                 model: ModelSpec | LoadedModel | None = None, fill_hole_area: int = 8,
                 show_progress: bool = False) -> None:
        if not 1 <= max_segments <= 255:
            raise ArgumentError(f"max_segments must be 1..255, got {max_segments}", argument="max_segments")
        if not 0 < merge_iou <= 1:
            raise ArgumentError(f"merge_iou must be in (0, 1], got {merge_iou}", argument="merge_iou")
        self.min_duration_ms, self.merge_iou, self.max_segments = min_duration_ms, merge_iou, max_segments
        self.model, self.fill_hole_area, self.show_progress = model, fill_hole_area, show_progress
        self.names: dict[int, str] = {}
        #: segment id -> (fixation id, frame of the fixation's middle, x, y)
        self.segments: dict[int, tuple[int, int, float, float]] = {}
        self._parent: dict[int, int] = {}

    def prepare(self, recording: Recording, fixations: Fixations) -> None:
        duration_ms = (fixations.end_s - fixations.start_s) * 1000
        frame = nearest_frames((fixations.start_s + fixations.end_s) / 2, recording.frame_times_s)
        width, height = recording.camera.width, recording.camera.height
        usable = np.flatnonzero((duration_ms >= self.min_duration_ms) & (frame >= 0)
                                & (fixations.x_px >= 0) & (fixations.x_px < width)
                                & (fixations.y_px >= 0) & (fixations.y_px < height))
        chosen = sorted(usable[np.argsort(-duration_ms[usable], kind="stable")][: self.max_segments],
                        key=lambda i: fixations.start_s[i])
        self.segments = {k: (int(fixations.fixation_id[i]), int(frame[i]), float(fixations.x_px[i]),
                             float(fixations.y_px[i])) for k, i in enumerate(chosen, 1)}
        self._parent = {k: k for k in self.segments}
        if not self.segments:
            logger.warning("no fixation of %g ms or longer with a position on the frame: no AOIs", self.min_duration_ms)
        else:
            logger.info("%d fixation(s) prompt AOI segments (of %d at least %g ms long)", len(self.segments),
                        len(usable), self.min_duration_ms)

    def _find(self, segment: int) -> int:
        while self._parent[segment] != segment:
            self._parent[segment] = self._parent[self._parent[segment]]
            segment = self._parent[segment]
        return segment

    def _merge_overlapping(self, masks: dict[int, np.ndarray]) -> None:
        present = [(s, m) for s, m in masks.items() if m.any()]
        for a in range(len(present)):
            for b in range(a + 1, len(present)):
                (first, mask_a), (second, mask_b) = present[a], present[b]
                if self._find(first) == self._find(second):
                    continue
                inter = np.count_nonzero(mask_a & mask_b)
                if inter and inter >= self.merge_iou * np.count_nonzero(mask_a | mask_b):
                    self._parent[self._find(second)] = self._find(first)

    def prompts(self, frames: Sequence[int]) -> list[AOIPrompt]:
        """One click per segment, on the used frame nearest its fixation's middle."""
        used = np.asarray(frames)
        return [AOIPrompt(int(used[np.argmin(np.abs(used - frame))]), segment, ((x, y),), (1,))
                for segment, (_, frame, x, y) in self.segments.items()]

    def masks(
        self, video: Path, num_frames: int, size: tuple[int, int], frames: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        if not self.segments:
            return
        tracker = PromptAOIs(self.prompts(frames), model=self.model, fill_hole_area=self.fill_hole_area,
                             show_progress=self.show_progress)
        for frame, masks in tracker.masks(video, num_frames, size, frames):
            self._merge_overlapping(masks)
            yield frame, masks

    def relabel(self) -> dict[int, int]:
        roots: dict[int, int] = {}
        for segment in sorted(self.segments):  # in time order: AOI ids follow first prompts
            roots.setdefault(self._find(segment), len(roots) + 1)
        mapping = {segment: roots[self._find(segment)] for segment in self.segments}
        self.names = {aoi: "fixations " + ",".join(str(self.segments[s][0]) for s in sorted(self.segments)
                                                   if mapping[s] == aoi) for aoi in roots.values()}
        return mapping
